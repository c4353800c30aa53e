"""A poison file is parked exactly once, however often its event is delivered."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from filepipe.handler.settings import DlqAttribute, FileStatus

from .conftest import Aws, FakeContext
from .events import s3_body
from .test_handler import failures, ids


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
    assert sorted(item["object_key"] for item in items) == ["in/a.json", "in/b.json"]
    assert {(item["status"], item["dlq_message_id"]) for item in items} == {
        (FileStatus.FAILED, parked["MessageId"])
    }


def test_the_outcome_write_updates_the_index_attributes(aws: Aws, context: FakeContext) -> None:
    # GIVEN a good file
    put = aws.put("in/good.json", '[{"n": 1}]')
    event = aws.batch(s3_body(key="in/good.json", put=put))

    # WHEN it is processed
    assert aws.handler()(event, context) == {"batchItemFailures": []}

    # THEN updated_at (the by-status sort key) is the finish time, and no stray attributes exist
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert item["updated_at"] == item["finished_at"]
    assert "updated" not in item
    assert "expires" not in item
    assert "lease_until" not in item
    assert "lease_token" not in item
