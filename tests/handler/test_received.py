"""RECEIVED: every version a batch announces is recorded before any file starts, and never downgraded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from filepipe.handler.events import ObjectRef, parse_body
from filepipe.handler.settings import STATUS_INDEX, FileStatus, StateAttribute

from .conftest import BUCKET, STATE_TABLE, Aws, FakeContext
from .events import load_event, s3_body
from .test_handler import failures, ids

# Plenty of time for the first file only: with a 10 s margin, the next deadline check says "near".
FIRST_FILE_ONLY = (60_000, 60_000, 5_000)
MARGIN_MS = 10_000


def keys_of(record: dict[str, Any]) -> list[str]:
    return [ref.key for ref in parse_body(record["body"]).objects]


def items_by_key(aws: Aws) -> dict[str, dict[str, Any]]:
    return {item["object_key"]: item for item in aws.state_items()}


def listed(aws: Aws, status: FileStatus) -> list[str]:
    """Object keys the ``by-status`` index lists for ``status``, oldest update first."""
    response = aws.dynamodb.query(
        TableName=STATE_TABLE,
        IndexName=STATUS_INDEX,
        KeyConditionExpression="#status = :status",
        ExpressionAttributeNames={"#status": StateAttribute.STATUS.value},
        ExpressionAttributeValues={":status": {"S": status.value}},
    )
    return [item["object_key"]["S"] for item in response["Items"]]


def received_writes(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for call in params if ":received" in call.get("ExpressionAttributeValues", {})]


def three_messages(aws: Aws) -> dict[str, Any]:
    bodies = []
    for index in range(3):
        put = aws.put(f"in/t{index}.json", json.dumps([{"n": index}]))
        bodies.append(s3_body(key=f"in/t{index}.json", put=put))
    return aws.batch(*bodies)


def two_files_in_one_message(aws: Aws) -> dict[str, Any]:
    event = load_event("s3_two_records")
    for record in event["Records"]:
        put = aws.put(record["s3"]["object"]["key"], "[1]")
        record["s3"]["object"].update(
            eTag=put["ETag"].strip('"'), versionId=put["VersionId"], size=put["size"]
        )
    return aws.batch(json.dumps(event))


@pytest.mark.parametrize(
    "make_event",
    [
        pytest.param(three_messages, id="later-messages-not-started"),
        pytest.param(two_files_in_one_message, id="later-file-of-the-same-message-not-started"),
    ],
)
def test_files_the_deadline_keeps_from_starting_are_received(
    aws: Aws, make_event: Callable[[Aws], dict[str, Any]]
) -> None:
    # GIVEN a batch with time for its first file only
    event = make_event(aws)
    [done, *waiting] = [key for record in event["Records"] for key in keys_of(record)]
    before = int(time.time())

    # WHEN
    response = aws.handler(timeout_margin_ms=MARGIN_MS)(event, FakeContext(*FIRST_FILE_ONLY))

    # THEN the first file is done; every other one is RECEIVED (waiting) and its message retried
    assert response == failures(*[r["messageId"] for r in event["Records"] if set(keys_of(r)) & set(waiting)])
    assert aws.keys("out/") == ["out/" + done.removeprefix("in/")]
    items = items_by_key(aws)
    assert items[done]["status"] == FileStatus.SUCCEEDED
    assert {key: items[key]["status"] for key in waiting} == dict.fromkeys(waiting, FileStatus.RECEIVED)
    message_of = {key: record["messageId"] for record in event["Records"] for key in keys_of(record)}
    for key in waiting:
        item = items[key]
        assert item["pk"] == f"{BUCKET}/{key}"
        assert item["sk"] == f"v#{item['version_id']}"
        assert (item["pipeline"], item["message_id"], item["bucket"]) == ("orders", message_of[key], BUCKET)
        assert item["etag"]
        assert item["received_at"] == item["updated_at"]
        assert int(item["expires_at"]) >= before + 90 * 86400
        assert not {"attempts", "lease_token", "lease_until", "started_at"} & item.keys()


def test_waiting_files_are_listed_by_status_until_the_retry_finishes_them(aws: Aws) -> None:
    # GIVEN a batch cut by the deadline after its first file
    event = three_messages(aws)
    handler = aws.handler(timeout_margin_ms=MARGIN_MS)
    handler(event, FakeContext(*FIRST_FILE_ONLY))
    [done, *waiting] = [keys_of(record)[0] for record in event["Records"]]

    # WHEN the index is queried, then the unfinished messages come back with time to spare
    waiting_listed = listed(aws, FileStatus.RECEIVED)
    done_listed = listed(aws, FileStatus.SUCCEEDED)
    received_at = {key: item["received_at"] for key, item in items_by_key(aws).items()}
    retry = aws.redeliver(event)
    retry["Records"] = [record for record in retry["Records"] if keys_of(record)[0] in waiting]
    response = handler(retry, FakeContext())

    # THEN the index listed exactly the waiting files; after the retry none waits and all succeeded once
    assert sorted(waiting_listed) == sorted(waiting)
    assert done_listed == [done]
    assert response == {"batchItemFailures": []}
    assert listed(aws, FileStatus.RECEIVED) == []
    assert sorted(listed(aws, FileStatus.SUCCEEDED)) == sorted([done, *waiting])
    items = items_by_key(aws)
    assert {key: (items[key]["attempts"], items[key]["received_at"]) for key in waiting} == {
        key: ("1", received_at[key]) for key in waiting
    }


def test_a_redelivered_succeeded_file_stays_succeeded(aws: Aws, context: FakeContext) -> None:
    # GIVEN a file processed to SUCCEEDED
    put = aws.put("in/once.json", "[1]")
    event = aws.batch(s3_body(key="in/once.json", put=put))
    handler = aws.handler()
    assert handler(event, context) == {"batchItemFailures": []}
    [succeeded] = aws.state_items()
    writes = aws.faults.record(aws.dynamodb, "UpdateItem")

    # WHEN its message is delivered again
    response = handler(aws.redeliver(event), context)

    # THEN the RECEIVED write was tried and changed nothing: same item, one output
    assert response == {"batchItemFailures": []}
    assert len(received_writes(writes)) == 1
    assert aws.state_items() == [succeeded]
    assert succeeded["status"] == FileStatus.SUCCEEDED
    assert aws.versions("out/once.json") == 1


def _succeeded(aws: Aws, ref: ObjectRef, body: str) -> None:
    aws.handler()(aws.batch(body), FakeContext())


def _failed(aws: Aws, ref: ObjectRef, body: str) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=ref.key, Body=b"{nope")
    aws.s3.delete_object(Bucket=BUCKET, Key=ref.key, VersionId=ref.version_id)  # gone: permanent
    aws.handler()(aws.batch(body), FakeContext())


def _processing(aws: Aws, ref: ObjectRef, body: str) -> None:
    aws.handler().files._state.begin(ref, "other-invocation")


@pytest.mark.parametrize(
    ("make_item", "status"),
    [
        pytest.param(_succeeded, FileStatus.SUCCEEDED, id="succeeded"),
        pytest.param(_failed, FileStatus.FAILED, id="failed"),
        pytest.param(_processing, FileStatus.PROCESSING, id="processing-under-a-lease"),
    ],
)
def test_the_received_write_never_changes_an_existing_item(
    aws: Aws, make_item: Callable[[Aws, ObjectRef, str], None], status: FileStatus
) -> None:
    # GIVEN a version whose item is already past RECEIVED
    put = aws.put("in/seen.json", "[1]")
    body = s3_body(key="in/seen.json", put=put)
    [ref] = parse_body(body).objects
    make_item(aws, ref, body)
    [before] = aws.state_items()
    assert before["status"] == status

    # WHEN the version is announced again
    aws.handler().files.receive(ref, "redelivered")

    # THEN a condition failure is normal: no error, the item is untouched
    assert aws.state_items() == [before]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("ProvisionedThroughputExceededException", 400, id="throttled"),
        pytest.param("InternalServerError", 500, id="server-error"),
    ],
)
def test_a_failing_received_write_retries_its_message_and_writes_nothing(
    aws: Aws, context: FakeContext, code: str, status: int
) -> None:
    # GIVEN two messages, and a state table that fails the RECEIVED write of the first one's file
    bodies = {}
    for name in ("a", "b"):
        put = aws.put(f"in/{name}.json", "[1]")
        bodies[name] = s3_body(key=f"in/{name}.json", put=put)
    event = aws.batch(bodies["a"], bodies["b"])
    [message_a] = [record["messageId"] for record in event["Records"] if record["body"] == bodies["a"]]
    aws.faults.fail(
        aws.dynamodb,
        "UpdateItem",
        code=code,
        status=status,
        times=1,
        when=lambda params: (
            ":received" in params["ExpressionAttributeValues"]
            and params["Key"]["pk"]["S"] == f"{BUCKET}/in/a.json"
        ),
    )
    visibility = aws.faults.record(aws.sqs, "ChangeMessageVisibilityBatch")
    handler = aws.handler()

    # WHEN the batch is processed, then the failed message comes back
    first = handler(event, context)
    items_after_failure = items_by_key(aws)
    outputs_after_failure = aws.keys("out/")
    retry = aws.redeliver(event)
    retry["Records"] = [record for record in retry["Records"] if record["messageId"] == message_a]
    second = handler(retry, context)

    # THEN only that message is retried (base backoff, never parked, no output); the retry finishes it
    assert first == failures(message_a)
    assert [entry["VisibilityTimeout"] for call in visibility for entry in call["Entries"]] == [30]
    assert outputs_after_failure == ["out/b.json"]
    assert {key: item["status"] for key, item in items_after_failure.items()} == {
        "in/b.json": FileStatus.SUCCEEDED
    }
    assert aws.dlq_messages() == []
    assert second == {"batchItemFailures": []}
    assert aws.keys("out/") == ["out/a.json", "out/b.json"]
    assert {item["status"] for item in aws.state_items()} == {FileStatus.SUCCEEDED}
    assert ids(retry) == [message_a]


@pytest.mark.parametrize(
    ("key", "overrides"),
    [
        pytest.param("out/x.json", {"input_prefix": ""}, id="own-output"),
        pytest.param("elsewhere/x.json", {}, id="outside-the-input-prefix"),
    ],
)
def test_versions_that_will_never_be_processed_are_not_received(
    aws: Aws, context: FakeContext, key: str, overrides: dict[str, Any]
) -> None:
    # GIVEN an announced version the pipeline never leases
    put = aws.put(key, "[1]")
    writes = aws.faults.record(aws.dynamodb, "UpdateItem")

    # WHEN
    aws.handler(**overrides)(aws.batch(s3_body(key=key, put=put)), context)

    # THEN it is not left waiting in the table
    assert received_writes(writes) == []
    assert aws.state_items() == []
