"""``filepipe pause`` / ``resume``: while paused uploads wait in the queue; resumed, they are processed."""

from __future__ import annotations

from typing import Any

import pytest

from filepipe.handler.settings import FileStatus, StateAttribute
from filepipe.local.runtime import RunningStack
from tests.local.conftest import wait_until
from tests.ops.conftest import HANG_GUARD_SECONDS, Ops, file_state, good_transactions, upload

pytestmark = pytest.mark.e2e


def test_paused_uploads_wait_in_the_queue_and_are_processed_once_resumed(
    running: RunningStack, ops: Ops
) -> None:
    paused = ops("pause transactions --json")

    assert paused.exit_code == 0, paused.stderr
    assert paused.json()["pipelines"]["transactions"] == {"previous": "Enabled", "state": "Disabled"}
    keys = [upload(running, "transactions", f"paused/file-{i}.json", good_transactions()) for i in range(3)]
    outputs = running.pipeline_outputs("transactions")
    assert wait_until(lambda: running.queue_depth(outputs["queueUrl"]) == 3, timeout=HANG_GUARD_SECONDS)

    def queue_status() -> dict[str, Any]:
        status: dict[str, Any] = ops("status --json transactions").json()["pipelines"]["transactions"]
        return status

    # The age of the oldest message comes from CloudWatch (SQS publishes it; so does the local endpoint).
    assert wait_until(
        lambda: (queue_status()["queue"]["oldestAgeSeconds"] or 0) >= 1, timeout=HANG_GUARD_SECONDS
    )
    status = queue_status()
    assert status["mapping"]["enabled"] is False
    assert status["queue"]["visible"] == 3
    assert [file_state(running, key).get(StateAttribute.STATUS) for key in keys] == [None, None, None]

    resumed = ops("resume transactions --json")

    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["pipelines"]["transactions"] == {"previous": "Disabled", "state": "Enabled"}
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    assert [file_state(running, key).get(StateAttribute.STATUS) for key in keys] == [FileStatus.SUCCEEDED] * 3


def test_pause_of_an_unknown_pipeline_changes_nothing_and_says_so(running: RunningStack, ops: Ops) -> None:
    result = ops("pause transactions nosuch")

    assert result.exit_code == 2
    assert "unknown pipeline nosuch" in result.stderr
    assert ops("status --json transactions").json()["pipelines"]["transactions"]["mapping"]["enabled"]
