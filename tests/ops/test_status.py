"""``filepipe status``: its numbers agree with SQS and the state table, for people and for scripts."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from filepipe.handler.continuation import Checkpoint, DurablePoint
from filepipe.handler.events import ObjectRef
from filepipe.handler.readers import ReaderState
from filepipe.handler.settings import FileStatus
from filepipe.handler.state import DynamoStateStore, Lease
from filepipe.handler.writers import UploadState
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


def test_status_shows_a_file_being_continued_and_the_byte_it_resumes_at(
    running: RunningStack, ops: Ops
) -> None:
    # GIVEN a file checkpointed by the handler's own state store, as an invocation that ran out of time
    # leaves it
    outputs = running.pipeline_outputs("transactions")
    dynamodb = running.address.client("dynamodb")
    store = DynamoStateStore(
        SimpleNamespace(dynamodb=dynamodb), outputs["tableName"], lease_seconds=60, ttl_days=1
    )
    ref = ObjectRef(
        outputs["bucket"], f"{outputs['inputPrefix']}status/big.json", version_id="v1", sequencer="00AA"
    )
    lease = store.begin(ref, "message-1", 1)
    assert isinstance(lease, Lease)
    point = DurablePoint(
        ReaderState(offset=123_456_789, seen_content=True), 900, 900, UploadState("u", ['"e"'], b"")
    )
    store.checkpoint(lease, Checkpoint(ref.version_token, point, None, {}, time.time(), 2), 123_456_789)
    try:
        # WHEN status is asked
        as_json = ops("status --json transactions")
        for_people = ops("status transactions")

        # THEN the file is in progress, with where the next invocation resumes
        assert as_json.exit_code == 0, as_json.stderr
        [entry] = as_json.json()["pipelines"]["transactions"]["inProgress"]
        assert entry["file"] == f"{outputs['bucket']}/{ref.key}"
        assert (entry["resumeOffset"], entry["continuations"]) == (123_456_789, 2)
        assert "resumes at byte 123,456,789 (2 invocation(s) so far)" in for_people.stdout
    finally:
        dynamodb.delete_item(TableName=outputs["tableName"], Key={"pk": {"S": ref.state_pk}})
