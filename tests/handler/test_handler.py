"""The Lambda handler end to end on moto: the bad inputs and faults a pipeline must survive."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from filepipe.handler.settings import DlqAttribute, FileFormat, FileStatus, InvalidRecordPolicy

from .conftest import BUCKET, PLAIN_BUCKET, Aws, FakeContext, dlq_attributes
from .events import eventbridge_body, load_event, s3_body

ORDERS = [{"id": 1, "qty": 2, "price": 3.5}, {"id": 2, "qty": 1, "price": 10.0}]
SCHEMA = {
    "type": "object",
    "required": ["id", "qty"],
    "properties": {"id": {"type": "integer"}, "qty": {"type": "integer", "minimum": 1}},
}


def test_good_file_is_written_once_with_the_envelope_and_marked_succeeded(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a JSON array uploaded under the input prefix
    put = aws.put("in/orders/2024-05-01.json", json.dumps(ORDERS))
    event = aws.batch(s3_body(key="in/orders/2024-05-01.json", put=put))

    # WHEN the handler processes the batch
    response = aws.handler()(event, context)

    # THEN the exact partial-batch shape reports nothing, and the output has the JSON envelope
    assert response == {"batchItemFailures": []}
    output = json.loads(aws.read("out/orders/2024-05-01.json"))
    assert output["source_file"] == f"s3://{BUCKET}/in/orders/2024-05-01.json"
    assert output["record_count"] == 2
    assert output["data"] == ORDERS
    assert "processed_at" in output
    head = aws.s3.head_object(Bucket=BUCKET, Key="out/orders/2024-05-01.json")
    assert head["Metadata"] == {
        "source-bucket": BUCKET,
        "source-key": "in/orders/2024-05-01.json",
        "source-version-id": put["VersionId"],
        "source-etag": put["ETag"].strip('"'),
        "pipeline": "orders",
    }
    [item] = aws.state_items()
    assert item["pk"] == f"{BUCKET}/in/orders/2024-05-01.json"
    assert item["version"] == f"v#{put['VersionId']}"
    assert item["status"] == FileStatus.SUCCEEDED
    assert item["output_key"] == "out/orders/2024-05-01.json"
    assert item["attempts"] == "1"
    assert item["records"] == "2"
    assert int(item["expires_at"]) > 0
    assert "lease_token" not in item
    assert aws.dlq_messages() == []


@pytest.mark.parametrize(
    ("input_format", "output_format", "key", "content", "expected_key", "expected"),
    [
        pytest.param(
            FileFormat.NDJSON,
            FileFormat.NDJSON,
            "in/a.ndjson",
            '{"id": 1}\n\n{"id": 2}\n',
            "out/a.ndjson",
            b'{"id":1}\n{"id":2}\n',
            id="ndjson-to-ndjson",
        ),
        pytest.param(
            FileFormat.CSV,
            FileFormat.NDJSON,
            "in/a.csv",
            '\ufeffid,name\r\n1,caf\u00e9\r\n2,"x, y"\r\n',
            "out/a.ndjson",
            '{"id":"1","name":"café"}\n{"id":"2","name":"x, y"}\n'.encode(),
            id="csv-with-bom-to-ndjson",
        ),
        pytest.param(
            FileFormat.JSON,
            FileFormat.CSV,
            "in/a.json",
            '[{"id": 1, "tags": ["x"]}, {"id": 2}]',
            "out/a.csv",
            b'id,tags\n1,"[""x""]"\n2,\n',
            id="json-array-to-csv",
        ),
        pytest.param(
            FileFormat.JSON,
            FileFormat.NDJSON,
            "in/doc.json",
            '{"id": 1, "nested": {"a": [1, 2]}}',
            "out/doc.ndjson",
            b'{"id":1,"nested":{"a":[1,2]}}\n',
            id="json-document-is-one-record",
        ),
    ],
)
def test_formats_are_converted(
    aws: Aws,
    context: FakeContext,
    input_format: FileFormat,
    output_format: FileFormat,
    key: str,
    content: str,
    expected_key: str,
    expected: bytes,
) -> None:
    # GIVEN a pipeline converting between formats
    put = aws.put(key, content)
    event = aws.batch(s3_body(key=key, put=put))

    # WHEN
    response = aws.handler(input_format=input_format, output_format=output_format)(event, context)

    # THEN
    assert response == {"batchItemFailures": []}
    assert aws.keys("out/") == [expected_key]
    assert aws.read(expected_key) == expected


def test_test_event_is_acknowledged_and_skipped(aws: Aws, context: FakeContext) -> None:
    # GIVEN the s3:TestEvent S3 sends when a notification is configured
    event = aws.batch(json.dumps(load_event("s3_test_event")))

    # WHEN
    response = aws.handler()(event, context)

    # THEN it is neither a failure nor parked, and nothing is written
    assert response == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    assert aws.state_items() == []
    assert aws.keys("out/") == []


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param("s3_key_special_s3_encoding", id="s3-encoding"),
        pytest.param("s3_key_special_moto_encoding", id="moto-encoding-slash-as-%2F"),
    ],
)
def test_keys_with_spaces_plus_percent_at_and_unicode_are_decoded(
    aws: Aws, context: FakeContext, fixture: str
) -> None:
    # GIVEN an object whose key needs every kind of encoding, announced with the fixture's encoding
    key = "in/reports/q1 summary + draft@v2 100% été 日本.json"
    put = aws.put(key, "[1]")
    event = load_event(fixture)
    event["Records"][0]["s3"]["object"].update(eTag=put["ETag"].strip('"'), versionId=put["VersionId"])
    batch = aws.batch(json.dumps(event))

    # WHEN
    response = aws.handler()(batch, context)

    # THEN the decoded key was read and the output key mirrors it exactly
    assert response == {"batchItemFailures": []}
    assert aws.keys("out/") == ["out/reports/q1 summary + draft@v2 100% été 日本.json"]
    [item] = aws.state_items()
    assert item["pk"] == f"{BUCKET}/{key}"


def test_a_1000_byte_key_is_processed(aws: Aws, context: FakeContext) -> None:
    # GIVEN a key close to S3's 1,024-byte limit, with multi-byte characters
    key = "in/" + "é" * 496 + ".json"
    assert len(key.encode()) == 1000
    put = aws.put(key, "[1]")

    # WHEN
    response = aws.handler()(aws.batch(s3_body(key=key, put=put)), context)

    # THEN
    assert response == {"batchItemFailures": []}
    assert aws.keys("out/") == ["out/" + "é" * 496 + ".json"]


def test_duplicate_delivery_and_replayed_batch_give_one_output_and_one_success(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN the same notification twice in one batch
    put = aws.put("in/dup.json", json.dumps(ORDERS))
    body = s3_body(key="in/dup.json", put=put)
    event = aws.batch(body, body)
    handler = aws.handler()

    # WHEN the batch is processed, then replayed as a whole
    first = handler(event, context)
    replay = handler(aws.redeliver(event), context)

    # THEN one output version exists, one SUCCEEDED item with one attempt, nothing failed or parked
    assert first == {"batchItemFailures": []}
    assert replay == {"batchItemFailures": []}
    assert aws.versions("out/dup.json") == 1
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert item["attempts"] == "1"
    assert aws.dlq_messages() == []


def test_a_new_version_of_the_same_key_is_processed_again(aws: Aws, context: FakeContext) -> None:
    # GIVEN two versions of one key, each announced in upload order
    first = aws.put("in/v.json", "[1]")
    second = aws.put("in/v.json", "[1, 2]")
    event = aws.batch(s3_body(key="in/v.json", put=first), s3_body(key="in/v.json", put=second))

    # WHEN
    response = aws.handler()(event, context)

    # THEN both versions succeed, each read exactly, into the same output key; the newer one last
    assert response == {"batchItemFailures": []}
    [item] = aws.state_items()
    assert (item["version"], item["status"], item["records"]) == (
        f"v#{second['VersionId']}",
        FileStatus.SUCCEEDED,
        "2",
    )
    assert aws.versions("out/v.json") == 2
    assert json.loads(aws.read("out/v.json"))["data"] == [1, 2]


def put_and_body(aws: Aws, key: str, content: bytes | str | None, bucket: str = BUCKET) -> str:
    if content is None:  # announced, then deleted before processing
        put = aws.put(key, "[1]", bucket=bucket)
        aws.s3.delete_object(
            Bucket=bucket, Key=key, **({"VersionId": put["VersionId"]} if bucket == BUCKET else {})
        )
    else:
        put = aws.put(key, content, bucket=bucket)
    return s3_body(key=key, put=put, bucket=bucket)


@pytest.mark.parametrize(
    ("key", "content", "overrides", "error_type", "reason_part"),
    [
        pytest.param("in/gone.json", None, {}, "ObjectMissingError", "does not exist", id="deleted-object"),
        pytest.param("in/empty.json", b"", {}, "EmptyFileError", "empty", id="empty-file"),
        pytest.param(
            "in/blank.json", b"\xef\xbb\xbf \n", {}, "EmptyFileError", "no content", id="bom-and-space"
        ),
        pytest.param(
            "in/bad.json", b'[{"id": 1}, {"id": ', {}, "InvalidContentError", "invalid JSON", id="bad-json"
        ),
        pytest.param(
            "in/trail.json", b"[1] [2]", {}, "InvalidContentError", "trailing garbage", id="json-garbage"
        ),
        pytest.param(
            "in/latin1.json",
            '[{"name": "café"}]'.encode("latin-1"),
            {},
            "InvalidEncodingError",
            "invalid UTF-8",
            id="invalid-utf8",
        ),
        pytest.param(
            "in/bad.ndjson",
            b'{"id": 1}\n{oops}\n',
            {"input_format": FileFormat.NDJSON},
            "InvalidContentError",
            "line 2",
            id="bad-ndjson-line",
        ),
        pytest.param(
            "in/bad.csv",
            b"id,name\n1,a,extra\n",
            {"input_format": FileFormat.CSV},
            "InvalidContentError",
            "3 fields, header has 2",
            id="csv-ragged-row",
        ),
        pytest.param(
            "in/big.json",
            b"[" + b"1," * 600 + b"1]",
            {"max_file_bytes": 1000},
            "FileTooLargeError",
            "size cap of 1000",
            id="over-size",
        ),
        pytest.param(
            "in/invalid.json",
            json.dumps([{"id": 1, "qty": 1}, {"id": "x", "qty": 1}, {"qty": 0, "id": 3}]),
            {"schema_file": "SCHEMA"},
            "SchemaValidationError",
            "record 1: $.id: $.id must be integer",
            id="schema-violations",
        ),
        pytest.param(
            "in/proc.json",
            "[{}]",
            {"processor": "tests.handler.processors:explode"},
            "ProcessorError",
            "record 0: KeyError",
            id="processor-raises",
        ),
        pytest.param(
            "in/scalars.json",
            "[1, 2]",
            {"output_format": FileFormat.CSV},
            "OutputShapeError",
            "CSV output needs object records",
            id="csv-output-of-scalars",
        ),
    ],
)
def test_permanent_errors_go_to_the_dlq_with_a_reason_and_are_marked_failed(
    aws: Aws,
    context: FakeContext,
    tmp_path: Any,
    key: str,
    content: bytes | None,
    overrides: dict[str, Any],
    error_type: str,
    reason_part: str,
) -> None:
    # GIVEN a poison file
    if overrides.get("schema_file") == "SCHEMA":
        schema = tmp_path / "schema.json"
        schema.write_text(json.dumps(SCHEMA))
        overrides = {**overrides, "schema_file": str(schema)}
    body = put_and_body(aws, key, content)
    event = aws.batch(body)

    # WHEN
    response = aws.handler(**overrides)(event, context)

    # THEN the message is handled (not retried), parked with its original body and the reason
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert parked["Body"] == body
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == error_type
    assert reason_part in attributes[DlqAttribute.REASON]
    assert attributes[DlqAttribute.SOURCE_KEY] == key
    assert attributes[DlqAttribute.SOURCE_BUCKET] == BUCKET
    assert attributes[DlqAttribute.PIPELINE] == "orders"
    [item] = aws.state_items()
    assert item["status"] == FileStatus.FAILED
    assert item["error_type"] == error_type
    assert aws.keys("out/") == []


def test_schema_errors_name_record_index_and_field_path_up_to_the_limit(
    aws: Aws, context: FakeContext, tmp_path: Any
) -> None:
    # GIVEN five invalid records and a limit of two errors
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    records = [{"id": 1, "qty": 1}] + [{"id": i, "qty": 0} for i in range(5)]
    put = aws.put("in/many.json", json.dumps(records))

    # WHEN
    aws.handler(schema_file=str(schema), max_schema_errors=2)(
        aws.batch(s3_body(key="in/many.json", put=put)), context
    )

    # THEN
    [parked] = aws.dlq_messages()
    assert dlq_attributes(parked)[DlqAttribute.REASON] == (
        "record 1: $.qty: $.qty must be bigger than or equal to 1; "
        "record 2: $.qty: $.qty must be bigger than or equal to 1 (more errors not shown)"
    )


def test_write_rejects_policy_writes_valid_records_and_a_rejects_object(
    aws: Aws, context: FakeContext, tmp_path: Any
) -> None:
    # GIVEN a file with one invalid record and the write-rejects policy
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    put = aws.put(
        "in/mixed.json", json.dumps([{"id": 1, "qty": 1}, {"id": 2, "qty": 0}, {"id": 3, "qty": 3}])
    )
    handler = aws.handler(
        schema_file=str(schema),
        invalid_records=InvalidRecordPolicy.WRITE_REJECTS,
        output_format=FileFormat.NDJSON,
    )

    # WHEN
    response = handler(aws.batch(s3_body(key="in/mixed.json", put=put)), context)

    # THEN
    assert response == {"batchItemFailures": []}
    assert aws.keys("out/") == ["out/mixed.ndjson", "out/mixed.ndjson.rejects.ndjson"]
    assert aws.read("out/mixed.ndjson") == b'{"id":1,"qty":1}\n{"id":3,"qty":3}\n'
    [reject] = [json.loads(line) for line in aws.read("out/mixed.ndjson.rejects.ndjson").splitlines()]
    assert reject == {
        "index": 1,
        "error": "$.qty: $.qty must be bigger than or equal to 1",
        "record": {"id": 2, "qty": 0},
    }
    [item] = aws.state_items()
    assert (item["status"], item["records"], item["rejected"]) == (FileStatus.SUCCEEDED, "2", "1")
    assert aws.dlq_messages() == []


def test_processor_transforms_and_drops_records(aws: Aws, context: FakeContext) -> None:
    # GIVEN a user processor
    put = aws.put("in/p.json", json.dumps([*ORDERS, {"id": 3, "skip": True}]))

    # WHEN
    handler = aws.handler(processor="tests.handler.processors:add_total")
    response = handler(aws.batch(s3_body(key="in/p.json", put=put)), context)

    # THEN
    assert response == {"batchItemFailures": []}
    output = json.loads(aws.read("out/p.json"))
    assert [record["total"] for record in output["data"]] == [7.0, 10.0]
    assert output["record_count"] == 2


def test_overwritten_object_in_an_unversioned_bucket_is_superseded_not_failed(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN an event for content that was overwritten before processing (no versioning: only the ETag)
    old = aws.put("in/over.json", "[1]", bucket=PLAIN_BUCKET)
    aws.put("in/over.json", "[1, 2]", bucket=PLAIN_BUCKET)
    event = aws.batch(s3_body(key="in/over.json", put=old, bucket=PLAIN_BUCKET))

    # WHEN
    response = aws.handler()(event, context)

    # THEN the stale event is acknowledged as SUPERSEDED: no DLQ message, no output, not retried;
    # the newer content has its own event
    assert response == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    assert aws.keys("out/", bucket=PLAIN_BUCKET) == []
    [item] = aws.state_items()
    assert (item["version"], item["status"]) == (f"e#{old['ETag'].strip(chr(34))}", FileStatus.SUPERSEDED)
    assert "attention" not in item


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps(load_event("body_not_s3_cloudwatch_alarm")), id="other-json"),
        pytest.param(json.dumps(load_event("body_records_not_s3")), id="records-not-s3"),
        pytest.param("hello, not json", id="not-json"),
        pytest.param("[1, 2]", id="json-array"),
    ],
)
def test_a_body_that_is_not_an_s3_event_goes_to_the_dlq(aws: Aws, context: FakeContext, body: str) -> None:
    # GIVEN
    event = aws.batch(body)

    # WHEN
    response = aws.handler()(event, context)

    # THEN
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert parked["Body"] == body
    assert dlq_attributes(parked)[DlqAttribute.ERROR_TYPE] == "UnknownBodyError"
    assert aws.state_items() == []


def test_mixed_batch_only_the_poison_leaves_to_the_dlq(aws: Aws, context: FakeContext) -> None:
    # GIVEN good files around a poison file
    good_a = put_and_body(aws, "in/a.json", "[1]")
    poison = put_and_body(aws, "in/poison.json", "{nope")
    good_b = put_and_body(aws, "in/b.json", "[2]")
    event = aws.batch(good_a, poison, good_b)

    # WHEN
    response = aws.handler()(event, context)

    # THEN nothing is reported (Lambda deletes all three), only the poison is parked
    assert response == {"batchItemFailures": []}
    assert [m["Body"] for m in aws.dlq_messages()] == [poison]
    assert aws.keys("out/") == ["out/a.json", "out/b.json"]


def test_ignored_events_are_acknowledged(aws: Aws, context: FakeContext) -> None:
    # GIVEN a deletion notification
    event = aws.batch(json.dumps(load_event("s3_object_removed")))

    # WHEN / THEN
    assert aws.handler()(event, context) == {"batchItemFailures": []}
    assert aws.dlq_messages() == []


def test_objects_under_the_output_prefix_are_never_processed(aws: Aws, context: FakeContext) -> None:
    # GIVEN an event for the pipeline's own output (input and output prefixes nested)
    put = aws.put("out/x.json", "[1]")
    handler = aws.handler(input_prefix="")

    # WHEN
    response = handler(aws.batch(s3_body(key="out/x.json", put=put)), context)

    # THEN
    assert response == {"batchItemFailures": []}
    assert aws.state_items() == []
    assert aws.keys("out/") == ["out/x.json"]


def test_several_records_in_one_body_are_all_processed(aws: Aws, context: FakeContext) -> None:
    # GIVEN one body announcing two objects
    first = aws.put("in/batch/first.json", "[1]")
    second = aws.put("in/batch/second.json", "[2]")
    event = load_event("s3_two_records")
    for record, put in zip(event["Records"], (first, second), strict=True):
        record["s3"]["object"].update(
            eTag=put["ETag"].strip('"'), versionId=put["VersionId"], size=put["size"]
        )

    # WHEN
    response = aws.handler()(aws.batch(json.dumps(event)), context)

    # THEN
    assert response == {"batchItemFailures": []}
    assert aws.keys("out/") == ["out/batch/first.json", "out/batch/second.json"]


def test_eventbridge_object_created_is_processed_like_a_notification(aws: Aws, context: FakeContext) -> None:
    # GIVEN an EventBridge "Object Created" event in the queue
    put = aws.put("in/orders/from-eventbridge.json", json.dumps(ORDERS))
    event = aws.batch(eventbridge_body(key="in/orders/from-eventbridge.json", put=put))

    # WHEN
    response = aws.handler()(event, context)

    # THEN
    assert response == {"batchItemFailures": []}
    assert json.loads(aws.read("out/orders/from-eventbridge.json"))["data"] == ORDERS
    [item] = aws.state_items()
    assert item["version"] == f"v#{put['VersionId']}"


def test_at_the_default_level_a_successful_batch_logs_only_its_metrics_line(
    aws: Aws, context: FakeContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN three good files and the handler at INFO, the stack's default level
    puts = {key: aws.put(key, json.dumps(ORDERS)) for key in ("in/a.json", "in/b.json", "in/c.json")}
    event = aws.batch(*(s3_body(key=key, put=put) for key, put in puts.items()))
    capsys.readouterr()

    # WHEN
    assert aws.handler(log_level="INFO")(event, context) == {"batchItemFailures": []}

    # THEN one line for the whole batch: the EMF metrics that count the files (logs are billed by the byte)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0]["FilesProcessed"] == [1.0, 1.0, 1.0]


def test_a_second_handler_of_the_same_service_in_one_process_logs_at_its_own_level(aws: Aws) -> None:
    # GIVEN a handler built quiet, then another one of the same service (pipeline) at INFO
    quiet = aws.handler(log_level="CRITICAL")
    loud = aws.handler(log_level="INFO")

    # THEN the service's logger logs at the later handler's level: Powertools alone would keep the first
    assert quiet.service == loud.service
    assert loud.logger.log_level == logging.INFO
