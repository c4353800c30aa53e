"""Transient faults: throttling, state-table failures, DLQ outages, leases and the function timeout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from filepipe.handler.settings import FileStatus

from .conftest import BUCKET, Aws, FakeContext, failures, ids
from .events import s3_body


def bodies(aws: Aws, count: int) -> list[str]:
    result = []
    for index in range(count):
        put = aws.put(f"in/t{index}.json", json.dumps([{"n": index}]))
        result.append(s3_body(key=f"in/t{index}.json", put=put))
    return result


def test_s3_throttling_is_retried_with_backoff_not_parked(aws: Aws, context: FakeContext) -> None:
    # GIVEN S3 throttles the first GetObject
    [body] = bodies(aws, 1)
    event = aws.batch(body)
    aws.faults.fail(aws.s3, "GetObject", code="SlowDown", status=503, times=1)
    visibility = aws.faults.record(aws.sqs, "ChangeMessageVisibilityBatch")
    handler = aws.handler()

    # WHEN the batch is processed, then delivered again
    first = handler(event, context)
    retried = aws.redeliver(event)
    retried["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    second = handler(retried, context)

    # THEN the first attempt is reported and delayed by the base backoff, never parked; the retry succeeds
    assert first == failures(*ids(event))
    assert [entry["VisibilityTimeout"] for call in visibility for entry in call["Entries"]] == [30]
    assert second == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    [item] = aws.state_items()
    assert (item["status"], item["attempts"]) == (FileStatus.SUCCEEDED, "2")
    assert aws.keys("out/") == ["out/t0.json"]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("SlowDown", 503, id="slow-down"),
        pytest.param("InternalError", 500, id="internal-error"),
        pytest.param("RequestTimeout", 400, id="request-timeout"),
    ],
)
def test_every_record_failing_transiently_reports_them_all(
    aws: Aws, context: FakeContext, code: str, status: int
) -> None:
    # GIVEN every GetObject fails transiently, and messages delivered for the third time
    event = aws.batch(*bodies(aws, 3))
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = "3"
    aws.faults.fail(aws.s3, "GetObject", code=code, status=status)
    visibility = aws.faults.record(aws.sqs, "ChangeMessageVisibilityBatch")

    # WHEN
    response = aws.handler()(event, context)

    # THEN all are reported (exact shape, only this batch's ids), each delayed by base * 2**2
    assert response == failures(*ids(event))
    assert [entry["VisibilityTimeout"] for call in visibility for entry in call["Entries"]] == [120, 120, 120]
    assert aws.dlq_messages() == []
    assert {item["status"] for item in aws.state_items()} == {FileStatus.PROCESSING}
    assert aws.keys("out/") == []


def test_backoff_is_capped(aws: Aws, context: FakeContext) -> None:
    # GIVEN a message delivered many times
    event = aws.batch(*bodies(aws, 1))
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "20"
    aws.faults.fail(aws.s3, "GetObject")
    visibility = aws.faults.record(aws.sqs, "ChangeMessageVisibilityBatch")

    # WHEN (the queue allows more deliveries than that)
    aws.handler(backoff_max_seconds=600, max_receive_count=100)(event, context)

    # THEN
    assert [entry["VisibilityTimeout"] for call in visibility for entry in call["Entries"]] == [600]


def test_state_table_failure_before_processing_is_retried_and_nothing_is_written(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN DynamoDB fails every UpdateItem
    event = aws.batch(*bodies(aws, 1))
    aws.faults.fail(aws.dynamodb, "UpdateItem", code="ProvisionedThroughputExceededException", status=400)

    # WHEN
    response = aws.handler()(event, context)

    # THEN
    assert response == failures(*ids(event))
    assert aws.keys("out/") == []
    assert aws.state_items() == []
    assert aws.dlq_messages() == []


def test_state_table_failure_after_writing_never_marks_the_file_done(aws: Aws, context: FakeContext) -> None:
    # GIVEN the table accepts the lease but fails when the outcome is recorded
    event = aws.batch(*bodies(aws, 1))
    aws.faults.fail(
        aws.dynamodb,
        "UpdateItem",
        code="InternalServerError",
        status=500,
        times=1,
        when=lambda params: ":output_key" in params.get("ExpressionAttributeValues", {}),
    )
    handler = aws.handler()

    # WHEN the batch is processed, then the redelivery
    first = handler(event, context)
    [item_after_failure] = aws.state_items()
    second = handler(aws.redeliver(event), context)

    # THEN the first attempt is retried, not done (its lease was released), and the retry finishes it
    assert first == failures(*ids(event))
    assert item_after_failure["status"] == FileStatus.PROCESSING
    assert item_after_failure["error_type"] == "StateTableError"
    assert second == {"batchItemFailures": []}
    [item] = aws.state_items()
    assert (item["status"], item["attempts"]) == (FileStatus.SUCCEEDED, "2")
    assert aws.versions("out/t0.json") == 2  # same key overwritten, never a second output object
    assert aws.keys("out/") == ["out/t0.json"]


def test_an_unexpired_lease_makes_the_duplicate_retry_later(aws: Aws, context: FakeContext) -> None:
    # GIVEN another invocation holds the lease on this version
    [body] = bodies(aws, 1)
    event = aws.batch(body)
    handler = aws.handler()
    files: Any = handler.files
    ref = json.loads(body)["Records"][0]["s3"]["object"]
    from filepipe.handler.events import parse_body

    [object_ref] = parse_body(body).objects
    assert object_ref.version_id == ref["versionId"]
    files._state.begin(object_ref, "other-message", 1)

    # WHEN
    response = handler(event, context)

    # THEN
    assert response == failures(*ids(event))
    assert aws.keys("out/") == []
    assert aws.dlq_messages() == []


def test_an_expired_lease_is_taken_over(aws: Aws, context: FakeContext) -> None:
    # GIVEN a lease that expired (an invocation died mid-file)
    [body] = bodies(aws, 1)
    event = aws.batch(body)
    from filepipe.handler.events import parse_body

    [object_ref] = parse_body(body).objects
    aws.handler(lease_seconds=-5).files._state.begin(object_ref, "dead-invocation", 1)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"

    # WHEN
    response = aws.handler()(event, context)

    # THEN
    assert response == {"batchItemFailures": []}
    [item] = aws.state_items()
    assert (item["status"], item["attempts"]) == (FileStatus.SUCCEEDED, "2")


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="dlq-send-fails"),
        pytest.param({"dlq_url": None}, id="no-dlq-configured"),
    ],
)
def test_a_permanent_failure_that_cannot_be_parked_is_reported(
    aws: Aws, context: FakeContext, overrides: dict[str, Any]
) -> None:
    # GIVEN a poison file and a DLQ that cannot take it
    put = aws.put("in/poison.json", "{nope")
    event = aws.batch(s3_body(key="in/poison.json", put=put))
    if not overrides:
        aws.faults.fail(aws.sqs, "SendMessage", code="InternalError", status=500)

    # WHEN
    response = aws.handler(**overrides)(event, context)

    # THEN it is not lost: reported for retry (SQS's own redrive is the backstop)
    assert response == failures(*ids(event))
    [item] = aws.state_items()
    assert item["status"] == FileStatus.FAILED


def test_near_timeout_unstarted_records_are_returned_as_failures(aws: Aws) -> None:
    # GIVEN plenty of time for the first message only
    event = aws.batch(*bodies(aws, 3))
    context = FakeContext(60_000, 60_000, 5_000)
    visibility = aws.faults.record(aws.sqs, "ChangeMessageVisibilityBatch")

    # WHEN
    response = aws.handler(timeout_margin_ms=10_000)(event, context)

    # THEN the first is done; the rest are reported untouched and made visible again at once
    _done, *unfinished = ids(event)
    assert response == failures(*unfinished)
    assert len(aws.keys("out/")) == 1
    assert [entry["VisibilityTimeout"] for call in visibility for entry in call["Entries"]] == [0, 0]
    assert aws.dlq_messages() == []


def test_near_timeout_for_the_whole_batch_reports_every_record(aws: Aws) -> None:
    # GIVEN an invocation that starts inside the margin
    event = aws.batch(*bodies(aws, 2))

    # WHEN
    response = aws.handler(timeout_margin_ms=10_000)(event, FakeContext(3_000))

    # THEN
    assert response == failures(*ids(event))
    assert aws.keys("out/") == []
    assert aws.state_items() == []


def test_a_file_started_late_and_cut_by_the_deadline_without_a_state_table_is_aborted_and_retried(
    aws: Aws,
) -> None:
    # GIVEN a pipeline without a state table (nowhere to keep a checkpoint), and a file that starts with
    # a third of the invocation left, then runs out of time while it is streamed
    put = aws.put("in/long.json", json.dumps([{"n": n} for n in range(2000)]))
    event = aws.batch(s3_body(key="in/long.json", put=put))
    context = FakeContext(60_000, 20_000, 20_000, 1_000)

    # WHEN
    response = aws.handler(timeout_margin_ms=10_000, state_table=None)(event, context)

    # THEN it is retried (a fresh invocation gives it the whole time), and nothing is left behind
    assert response == failures(*ids(event))
    assert aws.keys("out/") == []
    assert aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert aws.dlq_messages() == []
