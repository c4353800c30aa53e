"""``filepipe status``: its numbers agree with SQS and the state table, for people and for scripts."""

from __future__ import annotations

import pytest

from filepipe.handler.settings import FileStatus
from filepipe.local.runtime import RunningStack
from tests.ops.conftest import HANG_GUARD_SECONDS, POISON_TRANSACTIONS, Ops, good_transactions, upload

pytestmark = pytest.mark.e2e


def test_status_counts_processed_and_parked_files_as_the_state_table_and_queues_hold_them(
    running: RunningStack, ops: Ops
) -> None:
    for index in range(3):
        upload(running, "transactions", f"status/good-{index}.json", good_transactions())
    upload(running, "transactions", "status/poison.json", POISON_TRANSACTIONS)
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    result = ops("status --json transactions")

    assert result.exit_code == 0, result.stderr
    status = result.json()["pipelines"]["transactions"]
    assert status["files"][FileStatus.SUCCEEDED] == 3
    assert status["files"][FileStatus.FAILED] == 1
    assert status["queue"]["visible"] == 0
    assert status["queue"]["inFlight"] == 0
    assert status["dlq"]["visible"] == 1
    assert status["mapping"] == {"enabled": True, "state": "Enabled", "maximumConcurrency": None}
    assert [failure["errorType"] for failure in status["recentFailures"]] == ["InvalidContentError"]
    assert status["recentFailures"][0]["file"].endswith("status/poison.json")
    outputs = running.pipeline_outputs("transactions")
    assert set(status["alarms"]) == set(outputs["alarmNames"])


def test_status_without_a_pipeline_name_reports_every_pipeline(ops: Ops) -> None:
    result = ops("status --json")

    assert result.exit_code == 0, result.stderr
    assert set(result.json()["pipelines"]) == {"transactions", "invoices"}


def test_status_of_an_unknown_pipeline_is_one_clear_line_and_a_failing_exit_code(ops: Ops) -> None:
    result = ops("status nosuch")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "filepipe: unknown pipeline nosuch in stack dev (it has: invoices, transactions)"
    ]


def test_status_for_people_names_the_stack_and_each_pipeline(ops: Ops) -> None:
    result = ops("status")

    assert result.exit_code == 0, result.stderr
    assert "stack dev on local endpoint http://127.0.0.1:" in result.stdout
    assert "transactions" in result.stdout
    assert "invoices" in result.stdout
