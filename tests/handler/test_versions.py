"""Object versions and event order: S3 delivers events at least once and in no particular order."""

from __future__ import annotations

import json

import pytest

from filepipe.handler.settings import ATTENTION_INDEX, FileStatus
from filepipe.handler.state import order_token

from .conftest import BUCKET, PLAIN_BUCKET, Aws, FakeContext, failures, ids
from .events import s3_body


@pytest.mark.parametrize(
    "bucket", [pytest.param(BUCKET, id="versioned"), pytest.param(PLAIN_BUCKET, id="unversioned")]
)
def test_a_late_event_for_an_older_version_never_replaces_the_newer_output(
    aws: Aws, context: FakeContext, bucket: str
) -> None:
    # GIVEN a key uploaded with 2 records, then with 5, and the newer version's event processed first
    old = aws.put("in/k.json", json.dumps([1, 2]), bucket=bucket)
    new = aws.put("in/k.json", json.dumps([1, 2, 3, 4, 5]), bucket=bucket)
    handler = aws.handler()
    assert handler(aws.batch(s3_body(key="in/k.json", put=new, bucket=bucket)), context) == {
        "batchItemFailures": []
    }

    # WHEN the older version's event arrives late
    response = handler(aws.batch(s3_body(key="in/k.json", put=old, bucket=bucket)), context)

    # THEN it is acknowledged as superseded: the output keeps the newer content, nothing is parked
    assert response == {"batchItemFailures": []}
    assert json.loads(aws.read("out/k.json", bucket=bucket))["record_count"] == 5
    assert aws.versions("out/k.json", bucket=bucket) == 1  # written once, by the newer version
    assert aws.dlq_messages() == []
    [item] = aws.state_items()
    assert (item["status"], item["records"], item["sequencer"]) == (
        FileStatus.SUCCEEDED,
        "5",
        order_token(new["sequencer"]),
    )


def test_versions_processed_in_any_order_leave_the_newest_output(aws: Aws, context: FakeContext) -> None:
    # GIVEN three versions of one key whose events arrive newest, oldest, middle
    puts = [aws.put("in/k.json", json.dumps(list(range(n)))) for n in (1, 2, 3)]
    handler = aws.handler()

    # WHEN each event is handled, in that order
    for put in (puts[2], puts[0], puts[1]):
        assert handler(aws.batch(s3_body(key="in/k.json", put=put)), context) == {"batchItemFailures": []}

    # THEN only the newest version was written
    assert json.loads(aws.read("out/k.json"))["record_count"] == 3
    assert aws.versions("out/k.json") == 1


def test_a_newer_version_waits_while_an_older_one_is_processed(aws: Aws, context: FakeContext) -> None:
    # GIVEN two versions of one key, and the older one's processing in progress (its lease held)
    old = aws.put("in/k.json", "[1]")
    new = aws.put("in/k.json", "[1, 2]")
    handler = aws.handler()
    newer = aws.batch(s3_body(key="in/k.json", put=new))
    during: list[dict[str, object]] = []

    def handle_the_newer_meanwhile(params: dict[str, object], **_: object) -> None:
        if params.get("VersionId") == old["VersionId"]:
            during.append(handler(newer, context))

    aws.s3.meta.events.register("before-parameter-build.s3.GetObject", handle_the_newer_meanwhile)

    # WHEN the newer version's event arrives during the older one's processing, then again later
    first = handler(aws.batch(s3_body(key="in/k.json", put=old)), context)
    retry = handler(aws.redeliver(newer), context)

    # THEN the newer one was told to retry, then processed: two outputs in order, the newest last
    assert during == [failures(*ids(newer))]
    assert (first, retry) == ({"batchItemFailures": []}, {"batchItemFailures": []})
    assert json.loads(aws.read("out/k.json"))["record_count"] == 2
    assert aws.versions("out/k.json") == 2


def test_a_deleted_object_with_no_newer_version_is_parked_with_a_reason(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN an event for a version that was deleted before processing
    put = aws.put("in/gone.json", "[1]")
    aws.s3.delete_object(Bucket=BUCKET, Key="in/gone.json", VersionId=put["VersionId"])

    # WHEN
    response = aws.handler()(aws.batch(s3_body(key="in/gone.json", put=put)), context)

    # THEN a clear, parked failure that needs an operator
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert parked["MessageAttributes"]["filepipe-error-type"]["StringValue"] == "ObjectMissingError"
    [item] = aws.state_items()
    assert (item["status"], item["attention"]) == (FileStatus.FAILED, FileStatus.FAILED)


def test_only_files_that_need_attention_are_in_the_index(aws: Aws, context: FakeContext) -> None:
    # GIVEN a good file, a poison file and a superseded version
    good = aws.put("in/good.json", "[1]")
    bad = aws.put("in/bad.json", "{nope")
    stale = aws.put("in/over.json", "[1]", bucket=PLAIN_BUCKET)
    aws.put("in/over.json", "[1, 2]", bucket=PLAIN_BUCKET)

    # WHEN all three events are handled
    event = aws.batch(
        s3_body(key="in/good.json", put=good),
        s3_body(key="in/bad.json", put=bad),
        s3_body(key="in/over.json", put=stale, bucket=PLAIN_BUCKET),
    )
    assert aws.handler()(event, context) == {"batchItemFailures": []}

    # THEN the sparse index lists the failed file only, while the table has all three
    listed = aws.dynamodb.query(
        TableName=aws.settings.state_table,
        IndexName=ATTENTION_INDEX,
        KeyConditionExpression="attention = :failed",
        ExpressionAttributeValues={":failed": {"S": FileStatus.FAILED}},
    )["Items"]
    assert [item["pk"]["S"] for item in listed] == [f"{BUCKET}/in/bad.json"]
    statuses = {item["pk"]: item["status"] for item in aws.state_items()}
    assert statuses == {
        f"{BUCKET}/in/good.json": FileStatus.SUCCEEDED,
        f"{BUCKET}/in/bad.json": FileStatus.FAILED,
        f"{PLAIN_BUCKET}/in/over.json": FileStatus.SUPERSEDED,
    }


def test_a_success_after_a_failure_leaves_the_index(aws: Aws, context: FakeContext) -> None:
    # GIVEN a poison version that was parked, then a fixed version of the same key
    bad = aws.put("in/k.json", "{nope")
    handler = aws.handler()
    handler(aws.batch(s3_body(key="in/k.json", put=bad)), context)
    fixed = aws.put("in/k.json", "[1]")

    # WHEN the fixed version is processed
    assert handler(aws.batch(s3_body(key="in/k.json", put=fixed)), context) == {"batchItemFailures": []}

    # THEN the item describes the fixed version, with nothing of the failure left
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert not {"attention", "error", "error_type", "dlq_message_id"} & set(item)


def test_an_event_without_a_sequencer_is_processed(aws: Aws, context: FakeContext) -> None:
    # GIVEN a hand-made event with no sequencer (S3 and EventBridge always send one)
    put = aws.put("in/manual.json", "[1]")
    body = json.loads(s3_body(key="in/manual.json", put=put))
    del body["Records"][0]["s3"]["object"]["sequencer"]

    # WHEN it is handled twice
    handler = aws.handler()
    responses = [handler(aws.batch(json.dumps(body)), context) for _ in range(2)]

    # THEN it was processed once and the duplicate acknowledged
    assert responses == [{"batchItemFailures": []}] * 2
    assert aws.versions("out/manual.json") == 1


@pytest.mark.parametrize(
    ("shorter", "longer", "expected"),
    [
        pytest.param("0055AED6DCD90281E5", "0055AED6DCD90281E6", "<", id="same-length"),
        pytest.param("AB", "AB00", "=", id="right-padded-equal"),
        pytest.param("1", "0F", ">", id="right-pad-not-left-pad"),
        pytest.param("0055aed6", "0055AED7", "<", id="case-insensitive"),
    ],
)
def test_sequencers_compare_as_s3_documents(shorter: str, longer: str, expected: str) -> None:
    # S3: right-pad the shorter sequencer with zeros, then compare lexicographically.
    a, b = order_token(shorter), order_token(longer)
    assert {"<": a < b, "=": a == b, ">": a > b}[expected]
