"""``filepipe breaker status|open|close`` and ``filepipe resume`` against the dev stack (breaker on)."""

from __future__ import annotations

import pytest

from filepipe.local.runtime import RunningStack
from tests.local.conftest import wait_until
from tests.ops.conftest import HANG_GUARD_SECONDS, Ops

pytestmark = pytest.mark.e2e


def test_opened_by_hand_the_pipeline_pauses_until_resume_closes_the_breaker(
    running: RunningStack, ops: Ops
) -> None:
    # GIVEN a closed breaker
    status = ops("breaker status transactions --json")
    assert status.exit_code == 0, status.stderr
    assert status.json()["pipelines"]["transactions"]["state"] == "CLOSED"

    # WHEN an operator opens it by hand
    opened = ops("breaker open transactions --reason planned-maintenance --json")

    # THEN the mapping is disabled and the transition is kept with its reason, and shown by status
    assert opened.exit_code == 0, opened.stderr
    breaker = opened.json()["pipelines"]["transactions"]
    assert breaker["state"] == "OPEN" and breaker["held"] is True
    assert breaker["history"][-1]["reason"] == "planned-maintenance"
    pipeline = ops("status --json transactions").json()["pipelines"]["transactions"]
    assert pipeline["mapping"]["state"] == "Disabled"
    assert pipeline["breaker"]["state"] == "OPEN"
    # (held open: the timer does not probe however long it waits)
    assert not wait_until(lambda: running.runner("transactions").state != "Disabled", timeout=3)

    # WHEN the pipeline is resumed
    resumed = ops("resume transactions --json")

    # THEN the breaker is closed and the mapping enabled again
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["pipelines"]["transactions"]["state"] == "Enabled"
    closed = ops("breaker status transactions --json").json()["pipelines"]["transactions"]
    assert closed["state"] == "CLOSED"
    assert [(h["from"], h["to"]) for h in closed["history"]] == [("CLOSED", "OPEN"), ("OPEN", "CLOSED")]
    assert wait_until(lambda: running.runner("transactions").state == "Enabled", timeout=HANG_GUARD_SECONDS)


def test_breaker_of_an_unknown_pipeline_says_so(ops: Ops) -> None:
    result = ops("breaker open nosuch")

    assert result.exit_code == 2
    assert "unknown pipeline nosuch" in result.stderr
