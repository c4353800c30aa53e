"""A poison file is parked exactly once, however often its event is delivered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from filepipe.handler.settings import DlqAttribute, FileStatus

from .conftest import BUCKET, Aws, FakeContext, failures, ids
from .events import s3_body


def test_a_duplicate_of_a_parked_poison_file_is_acknowledged_not_parked_again(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a poison file whose event is delivered twice, in two batches
    put = aws.put("in/poison.json", "{nope")
    first = aws.batch(s3_body(key="in/poison.json", put=put))
    duplicate = aws.batch(s3_body(key="in/poison.json", put=put))
    handler = aws.handler()

    # WHEN both batches are handled
    responses = [handler(first, context), handler(duplicate, context)]

    # THEN both messages are handled, one DLQ message exists, and the item records the park
    assert responses == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    [parked] = aws.dlq_messages()
    assert parked["MessageAttributes"][DlqAttribute.SOURCE_KEY]["StringValue"] == "in/poison.json"
    [item] = aws.state_items()
    assert item["status"] == FileStatus.FAILED
    assert item["attempts"] == "1"
    assert item["dlq_message_id"] == parked["MessageId"]


def _dlq_refuses_once(aws: Aws) -> None:
    aws.faults.fail(aws.sqs, "SendMessage", code="InternalError", status=500, times=1)


def _failed_status_write_fails_once(aws: Aws) -> None:
    aws.faults.fail(
        aws.dynamodb,
        "UpdateItem",
        code="InternalServerError",
        status=500,
        times=1,
        when=lambda params: params.get("ExpressionAttributeValues", {}).get(":status") == {"S": "FAILED"},
    )


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(_dlq_refuses_once, id="dlq-send-fails"),
        pytest.param(_failed_status_write_fails_once, id="failed-status-write-fails-lease-released"),
    ],
)
def test_a_poison_file_whose_first_attempt_faulted_is_parked_once_on_the_retry(
    aws: Aws, context: FakeContext, fault: Callable[[Aws], None]
) -> None:
    # GIVEN a poison file and a fault on its first attempt
    put = aws.put("in/poison.json", "{nope")
    event = aws.batch(s3_body(key="in/poison.json", put=put))
    fault(aws)
    handler = aws.handler()

    # WHEN the first attempt fails transiently, then the same message is redelivered
    first = handler(event, context)
    retry = handler(aws.redeliver(event), context)

    # THEN nothing is lost and nothing blocks the retry: parked exactly once, and recorded
    assert first == failures(*ids(event))
    assert retry == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    [item] = aws.state_items()
    assert (item["status"], item["dlq_message_id"]) == (FileStatus.FAILED, parked["MessageId"])


def test_a_failed_park_record_does_not_fail_the_message(aws: Aws, context: FakeContext) -> None:
    # GIVEN a poison file, and a state table that rejects the update recording the park
    put = aws.put("in/poison.json", "{nope")
    event = aws.batch(s3_body(key="in/poison.json", put=put))
    aws.faults.fail(
        aws.dynamodb,
        "UpdateItem",
        code="InternalServerError",
        status=500,
        when=lambda params: ":dlq_message_id" in params.get("ExpressionAttributeValues", {}),
    )

    # WHEN
    response = aws.handler()(event, context)

    # THEN the message is handled: it is already in the DLQ, with its reason
    assert response == {"batchItemFailures": []}
    assert len(aws.dlq_messages()) == 1
    [item] = aws.state_items()
    assert item["status"] == FileStatus.FAILED
    assert "dlq_message_id" not in item


def _two_record_body(first: str, second: str) -> str:
    # One notification body announcing two objects (S3 may batch several Records in one message).
    body = json.loads(first)
    body["Records"] += json.loads(second)["Records"]
    return json.dumps(body)


def test_a_message_naming_two_poison_files_is_parked_once_even_when_redelivered(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN one message announcing two invalid files, delivered twice
    put_a, put_b = aws.put("in/a.json", "{nope"), aws.put("in/b.json", "[1,")
    body = _two_record_body(s3_body(key="in/a.json", put=put_a), s3_body(key="in/b.json", put=put_b))
    handler = aws.handler()

    # WHEN both deliveries are handled
    responses = [handler(aws.batch(body), context), handler(aws.batch(body), context)]

    # THEN one DLQ message, and both files are FAILED and marked parked by it
    assert responses == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    [parked] = aws.dlq_messages()
    items = aws.state_items()
    assert sorted(item["pk"] for item in items) == [f"{BUCKET}/in/a.json", f"{BUCKET}/in/b.json"]
    assert {(item["status"], item["dlq_message_id"]) for item in items} == {
        (FileStatus.FAILED, parked["MessageId"])
    }


def test_the_outcome_write_updates_the_index_attributes(aws: Aws, context: FakeContext) -> None:
    # GIVEN a good file
    put = aws.put("in/good.json", '[{"n": 1}]')
    event = aws.batch(s3_body(key="in/good.json", put=put))

    # WHEN it is processed
    assert aws.handler()(event, context) == {"batchItemFailures": []}

    # THEN updated_at (the needs-attention sort key) is the finish time, and no stray attributes exist
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert item["updated_at"] == item["finished_at"]
    assert "updated" not in item
    assert "expires" not in item
    assert "lease_until" not in item
    assert "lease_token" not in item


def test_a_duplicate_arriving_while_the_first_delivery_parks_waits_and_is_not_parked_again(
    aws: Aws, context: FakeContext
) -> None:
    """The interleaving that parked a poison file twice: the first invocation has recorded the version
    FAILED and is sending its message to the DLQ when a duplicate of the same event starts. The parking
    invocation keeps the key's lease until the park is recorded, so the duplicate must wait."""
    # GIVEN a poison file whose event is delivered twice
    put = aws.put("in/poison.json", "{nope")
    first = aws.batch(s3_body(key="in/poison.json", put=put))
    duplicate = aws.batch(s3_body(key="in/poison.json", put=put))
    handler = aws.handler()
    during_park: list[dict[str, Any]] = []
    sends: list[str] = []

    def run_the_duplicate(params: dict[str, Any], **_: Any) -> None:
        sends.append(params["QueueUrl"])
        if sends == [aws.dlq_url]:  # the first delivery's park; a park by the duplicate passes through
            during_park.append(handler(duplicate, context))

    aws.sqs.meta.events.register("before-parameter-build.sqs.SendMessage", run_the_duplicate)

    # WHEN the duplicate runs exactly while the first delivery sends the file to the DLQ
    response = handler(first, context)
    # ... and is delivered again once the first has finished
    retry = handler(aws.redeliver(duplicate), context)

    # THEN the duplicate was told to retry (not parked), its retry is acknowledged, and the file is
    # parked exactly once
    assert during_park == [failures(*ids(duplicate))]
    assert response == {"batchItemFailures": []}
    assert retry == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    [item] = aws.state_items()
    assert (item["status"], item["dlq_message_id"]) == (FileStatus.FAILED, parked["MessageId"])


def test_an_invocation_whose_lease_expired_mid_file_does_not_park_what_another_one_parked(
    aws: Aws, context: FakeContext
) -> None:
    """A slow invocation outlives its lease; a duplicate takes the file over and parks it. The slow one
    then fails the file too, but it no longer holds the lease: it records nothing and parks nothing."""
    # GIVEN a poison file delivered twice, and a first invocation whose lease is already expired
    put = aws.put("in/poison.json", "{nope")
    first = aws.batch(s3_body(key="in/poison.json", put=put))
    duplicate = aws.batch(s3_body(key="in/poison.json", put=put))
    slow, prompt = aws.handler(lease_seconds=-5), aws.handler()
    took_over: list[dict[str, Any]] = []
    reads: list[str] = []

    def take_over(params: dict[str, Any], **_: Any) -> None:
        reads.append(params["Key"])
        if len(reads) == 1:  # the slow invocation's read; the duplicate's own read passes through
            took_over.append(prompt(duplicate, context))

    aws.s3.meta.events.register("before-parameter-build.s3.GetObject", take_over)

    # WHEN the duplicate takes over while the slow invocation reads the file
    response = slow(first, context)
    retry = slow(aws.redeliver(first), context)

    # THEN the duplicate parked it; the slow invocation's outcome was refused and its retry acknowledged
    assert took_over == [{"batchItemFailures": []}]
    assert response == failures(*ids(first))
    assert retry == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    [item] = aws.state_items()
    assert (item["status"], item["dlq_message_id"]) == (FileStatus.FAILED, parked["MessageId"])
