"""REQUEUED: an operator puts a version back on the queue; its next delivery is processed exactly once."""

from __future__ import annotations

import json

from filepipe.handler.errors import PermanentError
from filepipe.handler.events import parse_body
from filepipe.handler.settings import DlqAttribute, FileStatus
from filepipe.handler.state import DynamoStateStore, order_token, requeue

from .conftest import STATE_TABLE, Aws, FakeContext, failures, ids
from .events import s3_body


def _park_after_transient_failures(aws: Aws, context: FakeContext, key: str) -> str:
    """Upload a good file whose reads fail until the last delivery parks it; returns the DLQ body."""
    put = aws.put(key, json.dumps([1, 2]))
    aws.faults.fail(aws.s3, "GetObject", times=2)
    handler = aws.handler(max_receive_count=2)
    event = aws.batch(s3_body(key=key, put=put))
    assert handler(event, context) == failures(*ids(event))
    assert handler(aws.redeliver(event), context) == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert parked["MessageAttributes"][DlqAttribute.ERROR_TYPE]["StringValue"] == "RetriesExhaustedError"
    body: str = parked["Body"]
    return body


def test_a_requeued_version_is_processed_once_and_its_duplicates_are_skipped(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a file parked after its reads kept failing, the cause now gone
    body = _park_after_transient_failures(aws, context, "in/flaky.json")
    [ref] = parse_body(body).objects
    handler = aws.handler()
    # (without a requeue, sending the parked message back changes nothing: the version is final)
    assert handler(aws.batch(body), context) == {"batchItemFailures": []}
    assert aws.keys("out/") == []

    # WHEN an operator requeues the version and sends its message back, twice
    found = requeue(aws.dynamodb, STATE_TABLE, ref, parked_only=True)
    responses = [handler(aws.batch(body), context), handler(aws.batch(body), context)]

    # THEN it is processed once: one output written, the item SUCCEEDED and out of the attention index
    assert (found.ready, found.status) == (True, FileStatus.REQUEUED)
    assert responses == [{"batchItemFailures": []}] * 2
    assert aws.versions("out/flaky.json") == 1
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert "attention" not in item
    assert "dlq_message_id" not in item


def test_requeue_removes_the_park_and_the_attention_entry_and_is_idempotent(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a parked poison file
    put = aws.put("in/poison.json", "{nope")
    body = s3_body(key="in/poison.json", put=put)
    assert aws.handler()(aws.batch(body), context) == {"batchItemFailures": []}
    [ref] = parse_body(body).objects

    # WHEN it is requeued twice (a resumed retry)
    first = requeue(aws.dynamodb, STATE_TABLE, ref, parked_only=True)
    second = requeue(aws.dynamodb, STATE_TABLE, ref, parked_only=True)

    # THEN both succeed; the item keeps its sequencer and reason but is no longer parked or listed
    assert (first.ready, second.ready) == (True, True)
    assert second.sequencer == order_token(put["sequencer"])
    [item] = aws.state_items()
    assert item["status"] == FileStatus.REQUEUED
    assert item["error_type"] == "InvalidContentError"
    assert {"attention", "dlq_message_id", "lease_until"}.isdisjoint(item)


def test_requeue_waits_while_a_failed_version_is_being_parked(aws: Aws) -> None:
    # GIVEN a version recorded FAILED whose lease is still held (its message is being parked)
    put = aws.put("in/k.json", "{nope")
    [ref] = parse_body(s3_body(key="in/k.json", put=put)).objects
    store = DynamoStateStore(aws.clients, STATE_TABLE, lease_seconds=900, ttl_days=1)
    lease = store.begin(ref, "m-1", 1)
    assert not isinstance(lease, FileStatus)
    store.fail(lease, PermanentError("bad content"))

    # WHEN an operator retries it
    found = requeue(aws.dynamodb, STATE_TABLE, ref, parked_only=True)

    # THEN it is not ready (a copy sent now would be skipped once the park is recorded), nothing changed
    assert not found.ready
    [item] = aws.state_items()
    assert item["status"] == FileStatus.FAILED


def test_requeue_leaves_a_newer_version_alone(aws: Aws, context: FakeContext) -> None:
    # GIVEN a parked old version, then a newer version of the key processed
    old = aws.put("in/k.json", "{nope")
    new = aws.put("in/k.json", json.dumps([1, 2, 3]))
    handler = aws.handler()
    handler(aws.batch(s3_body(key="in/k.json", put=old)), context)
    handler(aws.batch(s3_body(key="in/k.json", put=new)), context)
    [old_ref] = parse_body(s3_body(key="in/k.json", put=old)).objects

    # WHEN the old version's message is retried
    found = requeue(aws.dynamodb, STATE_TABLE, old_ref, parked_only=True)
    response = handler(aws.batch(s3_body(key="in/k.json", put=old)), context)

    # THEN the item still describes the newer version, whose output stays
    assert found.ready  # sending it is harmless: it is superseded
    assert response == {"batchItemFailures": []}
    [item] = aws.state_items()
    assert (item["status"], item["sequencer"]) == (FileStatus.SUCCEEDED, order_token(new["sequencer"]))
    assert json.loads(aws.read("out/k.json"))["record_count"] == 3


def test_a_retry_does_not_requeue_a_succeeded_version_but_a_reprocess_does(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a processed file and a late event for an older version of it
    old = aws.put("in/k.json", json.dumps([1]))
    put = aws.put("in/k.json", json.dumps([1, 2]))
    handler = aws.handler()
    handler(aws.batch(s3_body(key="in/k.json", put=put)), context)
    [ref] = parse_body(s3_body(key="in/k.json", put=put)).objects

    # WHEN a retry, then a reprocess, asks for it again, and the reprocess's event arrives twice
    retried = requeue(aws.dynamodb, STATE_TABLE, ref, parked_only=True)
    reprocessed = requeue(aws.dynamodb, STATE_TABLE, ref, parked_only=False)
    again = json.loads(s3_body(key="in/k.json", put=put))
    again["Records"][0]["s3"]["object"]["sequencer"] = reprocessed.sequencer
    handler(aws.batch(json.dumps(again)), context)
    handler(aws.batch(json.dumps(again)), context)
    handler(aws.batch(s3_body(key="in/k.json", put=old)), context)

    # THEN the retry left it (already SUCCEEDED); the reprocess wrote the output once more, and only once;
    # the older version still cannot replace it
    assert (retried.ready, retried.status) == (True, FileStatus.SUCCEEDED)
    assert (reprocessed.status, reprocessed.sequencer) == (FileStatus.REQUEUED, order_token(put["sequencer"]))
    assert aws.versions("out/k.json") == 2
    assert json.loads(aws.read("out/k.json"))["record_count"] == 2
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
