"""The cost model's arithmetic and counting, on hand-computed examples (no endpoint, moto in-process)."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bench.cost_model import (
    DURATION_ITEM,
    LAMBDA_GB_SECONDS,
    LAMBDA_ITEM,
    LAMBDA_REQUESTS,
    LIST_PRICES,
    LOG_BYTES,
    LOG_EVENT_OVERHEAD_BYTES,
    MODELLED_DURATION_ITEM,
    S3_BYTES_READ,
    S3_BYTES_WRITTEN,
    S3_GET_REQUESTS,
    S3_PUT_REQUESTS,
    SQS_REQUESTS,
    FileShape,
    IndexSpec,
    LogCapture,
    Meter,
    Prices,
    TableReader,
    by_service,
    dollars_per_million,
    file_units,
    index_writes,
    item_size,
    metered,
    platform_lines,
    sqs_payload_bytes,
    sqs_requests,
    storage_per_month,
    table_write_units,
    upload_requests,
    write_units,
)
from tests.conftest import REGION

ATTENTION = IndexSpec("needs-attention", ("attention", "updated_at"))
TABLE_KEYS = ("pk",)


def _item(**attributes: str) -> dict[str, dict[str, str]]:
    return {name: {"S": value} for name, value in attributes.items()}


# --- sizes and units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "size"),
    [
        pytest.param({"pk": {"S": "b/k"}}, 2 + 3, id="string: name + UTF-8 value"),
        pytest.param({"pk": {"S": "é"}}, 2 + 2, id="string: UTF-8 bytes, not characters"),
        pytest.param({"n": {"N": "123.40"}}, 1 + 3, id="number: 4 significant digits -> 2 + 1"),
        pytest.param({"n": {"N": "-0.00500"}}, 1 + 2, id="number: zeros and sign trimmed"),
        pytest.param({"n": {"N": "1700000000"}}, 1 + 2, id="number: trailing zeros trimmed"),
        pytest.param({"f": {"BOOL": True}, "z": {"NULL": True}}, 1 + 1 + 1 + 1, id="bool and null: 1 byte"),
        pytest.param({"m": {"M": {"a": {"S": "xy"}}}}, 1 + 3 + (1 + 2 + 1), id="map: 3 + entries + 1 each"),
        pytest.param({"l": {"L": [{"S": "x"}, {"N": "7"}]}}, 1 + 3 + (1 + 1) + (2 + 1), id="list"),
    ],
)
def test_item_size_follows_dynamodb_rules(item: dict[str, Any], size: int) -> None:
    assert item_size(item) == size


def test_write_units_are_one_per_started_kilobyte() -> None:
    assert [write_units(size) for size in (0, 1, 1024, 1025, 2048, 2049)] == [1, 1, 1, 2, 2, 3]


def test_a_table_write_is_sized_by_the_larger_of_before_and_after() -> None:
    big = _item(pk="k", blob="x" * 1500)
    small = _item(pk="k")
    assert table_write_units(big, small) == 2
    assert table_write_units(None, big) == 2
    assert table_write_units(small, small) == 1


# --- the sparse index ----------------------------------------------------------------------------

PROCESSING = _item(pk="b/k", status="PROCESSING", updated_at="t1")
SUCCEEDED = _item(pk="b/k", status="SUCCEEDED", updated_at="t2")
FAILED = _item(pk="b/k", status="FAILED", updated_at="t2", attention="FAILED")
PARKED = _item(pk="b/k", status="FAILED", updated_at="t3", attention="FAILED", dlq_message_id="m")


@pytest.mark.parametrize(
    ("before", "after", "writes"),
    [
        pytest.param(None, PROCESSING, [], id="new item without attention: no index write"),
        pytest.param(PROCESSING, SUCCEEDED, [], id="never in the index: none"),
        pytest.param(PROCESSING, FAILED, [1], id="enters the index: one put"),
        pytest.param(FAILED, PARKED, [1, 1], id="index sort key changes: delete and put"),
        pytest.param(FAILED, {**FAILED, "error": {"S": "e"}}, [1], id="projected attribute changes: one put"),
        pytest.param(FAILED, FAILED, [], id="nothing changes: none"),
        pytest.param(PARKED, PROCESSING, [1], id="leaves the index: one delete"),
    ],
)
def test_index_writes_follow_the_gsi_rules(before: Any, after: Any, writes: list[int]) -> None:
    assert index_writes(ATTENTION, TABLE_KEYS, before, after) == writes


def test_index_writes_are_sized_by_the_projected_entry() -> None:
    # GIVEN an item over 1 KB that enters the index
    big = {**FAILED, "error": {"S": "x" * 1500}}
    # THEN with every attribute projected the put costs 2 WRU, with only the keys projected 1
    assert index_writes(ATTENTION, TABLE_KEYS, PROCESSING, big) == [2]
    keys_only = IndexSpec("needs-attention", ("attention", "updated_at"), projection="KEYS_ONLY")
    assert index_writes(keys_only, TABLE_KEYS, PROCESSING, big) == [1]


# --- SQS requests --------------------------------------------------------------------------------


def test_sqs_bills_one_request_per_started_64_kb_chunk() -> None:
    assert [sqs_requests(size) for size in (0, 1, 65536, 65537, 256 * 1024)] == [1, 1, 1, 2, 4]


def test_a_send_payload_counts_body_and_attribute_names_types_and_values() -> None:
    params = {
        "MessageBody": "héllo",  # 6 bytes
        "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "bad"}},  # 6 + 6 + 3
    }
    assert sqs_payload_bytes(params) == 6 + 15
    batch = {"Entries": [{"MessageBody": "ab"}, {"MessageBody": "cde"}]}
    assert sqs_payload_bytes(batch) == 5


# --- pricing -------------------------------------------------------------------------------------

ROUND = Prices(
    region="test",
    as_of="test",
    lambda_gb_second=0.00001,
    lambda_request=0.2e-6,
    sqs_request=0.4e-6,
    s3_put_request=5e-6,
    s3_get_request=0.4e-6,
    dynamodb_wru=1e-6,
    dynamodb_rru=0.25e-6,
    logs_per_gb=0.5,
    custom_metric_month=0.3,
)


def test_pricing_on_a_hand_computed_example() -> None:
    # GIVEN 1,000 files: a GET and a PUT each, 100 invocations of 0.5 GB for 100 ms, 1,200 SQS
    # requests, 2 WRU a file and 500 log bytes a file
    units = {
        ("get", S3_GET_REQUESTS): 1000,
        ("put", S3_PUT_REQUESTS): 1000,
        ("invoke", LAMBDA_REQUESTS): 100,
        ("duration", LAMBDA_GB_SECONDS): 100 * 0.5 * 0.1,
        ("queue", SQS_REQUESTS): 1200,
        ("state", "DynamoDB WRU"): 2000,
        ("logs", LOG_BYTES): 500_000,
    }
    # THEN per million files: S3 1e6 x (0.4e-6 + 5e-6) = 5.40; Lambda 1e5 x 0.2e-6 = 0.02 plus
    # 5,000 GB-s x 1e-5 = 0.05; SQS 1.2e6 x 0.4e-6 = 0.48; DynamoDB 2e6 x 1e-6 = 2.00;
    # logs 500 bytes x 1e6 = 0.5 GB x $0.5 = 0.25
    cost = by_service(units, files=1000, prices=ROUND)
    assert cost == pytest.approx(
        {"S3": 5.40, "Lambda": 0.07, "SQS": 0.48, "DynamoDB": 2.00, "CloudWatch Logs": 0.25}
    )
    assert dollars_per_million(units, files=1000, prices=ROUND)["duration"] == pytest.approx(0.05)


def test_list_prices_give_the_known_price_of_a_get_and_a_put() -> None:
    units = {("get", S3_GET_REQUESTS): 1, ("put", S3_PUT_REQUESTS): 1}
    assert by_service(units, files=1, prices=LIST_PRICES)["S3"] == pytest.approx(5.40)


# --- metering ------------------------------------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def _table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName="state",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "attention", "AttributeType": "S"},
            {"AttributeName": "updated_at", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "needs-attention",
                "KeySchema": [
                    {"AttributeName": "attention", "KeyType": "HASH"},
                    {"AttributeName": "updated_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def _update(
    dynamodb: Any, status: str, updated_at: str, attention: bool, condition: str | None = None
) -> None:
    expression = "SET #status = :status, #updated_at = :updated_at" + (
        ", #attention = :status" if attention else ""
    )
    names = {"#status": "status", "#updated_at": "updated_at"}
    if attention:
        names["#attention"] = "attention"
    request: dict[str, Any] = {
        "TableName": "state",
        "Key": {"pk": {"S": "bucket/key.json"}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {":status": {"S": status}, ":updated_at": {"S": updated_at}},
    }
    if condition is not None:
        request["ConditionExpression"] = condition
    dynamodb.update_item(**request)


def test_state_writes_are_counted_with_their_table_and_index_units(aws: None) -> None:
    # GIVEN a state table with the sparse index, and a metered client
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    _table(dynamodb)
    meter = Meter(512, "arn:fn", TableReader(boto3.client("dynamodb", region_name=REGION)))
    meter.watch("dynamodb", dynamodb)
    # WHEN a file is leased, fails (enters the index), is re-stamped (index key changes), and a
    # conditional write on it is refused
    _update(dynamodb, "PROCESSING", "t1", attention=False)
    _update(dynamodb, "FAILED", "t2", attention=True)
    _update(dynamodb, "FAILED", "t3", attention=True)
    with pytest.raises(ClientError):
        _update(dynamodb, "SUCCEEDED", "t4", attention=False, condition="attribute_not_exists(pk)")
    # THEN every write costs 1 WRU on the table; the index costs 1 (put), then 2 (delete and put)
    assert meter.calls == {
        "DynamoDB UpdateItem PROCESSING": 1,
        "DynamoDB UpdateItem FAILED": 2,
        "DynamoDB UpdateItem SUCCEEDED (condition failed)": 1,
        "DynamoDB needs-attention index writes": 3,
    }
    assert meter.units[("DynamoDB needs-attention index writes", "DynamoDB WRU")] == 3
    assert sum(units for (_, dimension), units in meter.units.items() if dimension == "DynamoDB WRU") == 7


def test_s3_and_sqs_calls_are_counted_by_operation_and_tier(aws: None) -> None:
    s3: Any = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    s3.create_bucket(Bucket="cost-model", CreateBucketConfiguration={"LocationConstraint": REGION})
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    meter = Meter(512, "arn:fn", TableReader(boto3.client("dynamodb", region_name=REGION)))
    meter.watch("s3", s3)
    meter.watch("sqs", sqs)
    s3.put_object(Bucket="cost-model", Key="k", Body=b"x")
    s3.get_object(Bucket="cost-model", Key="k")["Body"].read()
    s3.head_object(Bucket="cost-model", Key="k")
    s3.delete_object(Bucket="cost-model", Key="k")
    sqs.send_message(QueueUrl=url, MessageBody="x" * 70_000)
    assert meter.calls == {
        "S3 PutObject": 1,
        "S3 GetObject": 1,
        "S3 HeadObject": 1,
        "S3 DeleteObject (free)": 1,
        "SQS SendMessage (handler: DLQ)": 1,
    }
    assert meter.units[("S3 HeadObject", S3_GET_REQUESTS)] == 1
    assert meter.units[("SQS SendMessage (handler: DLQ)", SQS_REQUESTS)] == 2  # 70,000 bytes: two chunks


def _record(message_id: str, receive_count: int = 1, body: str = "x" * 100) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receive_count)},
        "messageAttributes": {},
    }


def test_an_invocation_counts_what_aws_does_per_batch(aws: None) -> None:
    # GIVEN a batch of 12 messages, one of them a redelivery, and a handler that fails one message
    meter = Meter(512, "arn:fn", TableReader(boto3.client("dynamodb", region_name=REGION)))
    records = [_record(f"m{i}") for i in range(11)] + [_record("again", receive_count=2)]

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": "m0"}]}

    # WHEN it is invoked through the meter
    metered(handler, meter)({"Records": records}, None)
    # THEN one Lambda request and one receive; S3 sent the 11 first deliveries; 11 deletes in two calls
    assert meter.calls[LAMBDA_ITEM] == 1
    assert meter.calls["SQS ReceiveMessage (event source mapping)"] == 1
    assert meter.calls["SQS SendMessage (S3 event notification)"] == 11
    assert meter.calls["SQS DeleteMessageBatch (event source mapping)"] == 2
    billed_ms = math.ceil(meter.durations_ms[0])
    assert meter.units[(DURATION_ITEM, LAMBDA_GB_SECONDS)] == pytest.approx(0.5 * billed_ms / 1000)
    assert meter.units[("log: Lambda platform.start/report", LOG_BYTES)] > 2 * LOG_EVENT_OVERHEAD_BYTES


def test_a_failed_invocation_deletes_nothing(aws: None) -> None:
    meter = Meter(512, "arn:fn", TableReader(boto3.client("dynamodb", region_name=REGION)))

    def crash(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        metered(crash, meter)({"Records": [_record("m1")]}, None)
    assert meter.calls[LAMBDA_ITEM] == 1
    assert meter.calls["SQS DeleteMessageBatch (event source mapping)"] == 0


def test_lines_written_during_an_invocation_are_its_log_bytes(aws: None) -> None:
    # GIVEN a capture in front of a terminal, and a handler that logs one line and prints one EMF line
    terminal = io.StringIO()
    capture = LogCapture(terminal)
    meter = Meter(512, "arn:fn", TableReader(boto3.client("dynamodb", region_name=REGION)))
    log_line = json.dumps({"level": "INFO", "message": "file processed", "key": "a.json"})
    emf = {
        "_aws": {
            "CloudWatchMetrics": [
                {"Namespace": "ns", "Dimensions": [["pipeline"]], "Metrics": [{"Name": "M"}]}
            ]
        }
    }
    emf_line = json.dumps({**emf, "pipeline": "p", "M": [1.0]})

    def handler(event: dict[str, Any], context: Any) -> None:
        capture.write(log_line + "\n")
        capture.write(emf_line)  # print() writes the newline separately
        capture.write("\n")

    # WHEN it runs, and something else writes outside the invocation
    metered(handler, meter)({"Records": []}, None)
    capture.write("alert!\n")
    # THEN each line is billed with its event overhead, and the other write reaches the terminal
    assert meter.units[("log: INFO 'file processed'", LOG_BYTES)] == len(log_line) + LOG_EVENT_OVERHEAD_BYTES
    assert (
        meter.units[("log: EMF metrics (one per batch)", LOG_BYTES)]
        == len(emf_line) + LOG_EVENT_OVERHEAD_BYTES
    )
    assert meter.metrics == {("ns", "M", (("pipeline", "p"),))}
    assert terminal.getvalue() == "alert!\n"


def test_platform_lines_are_start_and_report_in_json() -> None:
    start, report = (json.loads(line) for line in platform_lines("arn:fn", 512, 12.34))
    assert start["type"] == "platform.start"
    assert report["type"] == "platform.report"
    assert report["record"]["metrics"]["billedDurationMs"] == 13
    assert report["record"]["metrics"]["memorySizeMB"] == 512


# --- compressed files and whole-file processors ----------------------------------------------------

MIB = 1024 * 1024


def test_an_output_below_the_first_part_is_one_put_and_above_it_a_multipart_upload() -> None:
    # The writer sends 8 MiB parts (doubling only after many parts): create + parts + complete.
    assert upload_requests(0) == 1
    assert upload_requests(8 * MIB - 1) == 1
    assert upload_requests(8 * MIB) == 1 + 1 + 1
    assert upload_requests(20 * MIB) == 1 + 3 + 1


def test_compression_cuts_the_output_requests_and_storage_not_the_time_or_the_get() -> None:
    # GIVEN a CSV of 40 MB processed (decompressed) at 1,769 MB (one vCPU): read from a 4 MB gzip, and
    # written as 48 MB of NDJSON, or 6 MB of it gzip-compressed
    plain = FileShape(stored_bytes=40_000_000, processed_bytes=40_000_000, output_bytes=(48_000_000,))
    gzipped = FileShape(stored_bytes=4_000_000, processed_bytes=40_000_000, output_bytes=(6_000_000,))

    plain_units, gzip_units = (file_units(shape, "csv", 1769) for shape in (plain, gzipped))

    # THEN one GET either way, 48 MB is 6 parts (create + 6 + complete) and 6 MB one PutObject
    assert (
        plain_units[("S3 GetObject", S3_GET_REQUESTS)] == gzip_units[("S3 GetObject", S3_GET_REQUESTS)] == 1
    )
    assert plain_units[("S3 output writes", S3_PUT_REQUESTS)] == 8
    assert gzip_units[("S3 output writes", S3_PUT_REQUESTS)] == 1
    # AND the time goes with the 40 MB processed (CSV at 25 MB per vCPU-second: 1.6 s of 1769/1024 GB)
    duration = (MODELLED_DURATION_ITEM, LAMBDA_GB_SECONDS)
    assert plain_units[duration] == gzip_units[duration] == pytest.approx(1769 / 1024 * 1.6)
    # AND a month of storage per million files: inputs 40,000 GB vs 4,000, outputs 48,000 vs 6,000 at $0.023/GB
    assert storage_per_month(plain) == pytest.approx({"inputs": 40_000 * 0.023, "outputs": 48_000 * 0.023})
    assert storage_per_month(gzipped) == pytest.approx({"inputs": 4_000 * 0.023, "outputs": 6_000 * 0.023})


def test_a_parquet_output_adds_its_conversion_time_to_the_reading() -> None:
    # GIVEN 60 MB of NDJSON at one vCPU, written as NDJSON or as Parquet
    shape = FileShape(stored_bytes=60_000_000, processed_bytes=60_000_000, output_bytes=(9_000_000,))

    ndjson, parquet = (file_units(shape, "ndjson", 1769, output_format=f) for f in ("ndjson", "parquet"))

    # THEN reading takes 60 MB / 50 MB per vCPU-second = 1.2 s, and Parquet adds 60 / 100 = 0.6 s
    duration = (MODELLED_DURATION_ITEM, LAMBDA_GB_SECONDS)
    assert ndjson[duration] == pytest.approx(1769 / 1024 * 1.2)
    assert parquet[duration] == pytest.approx(1769 / 1024 * 1.8)


def test_a_whole_file_processor_pays_a_put_per_output_and_no_modelled_time() -> None:
    # GIVEN a zip of three CSVs, one of which becomes a 10 MiB NDJSON
    archive = FileShape(stored_bytes=2 * MIB, processed_bytes=2 * MIB, output_bytes=(1000, 2000, 10 * MIB))

    units = file_units(archive, "json", 512, whole_file=True)

    assert units == {("S3 GetObject", S3_GET_REQUESTS): 1, ("S3 output writes", S3_PUT_REQUESTS): 1 + 1 + 4}


def test_the_meter_counts_the_s3_bytes_read_and_written(aws: None) -> None:
    s3: Any = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="cost-model", CreateBucketConfiguration={"LocationConstraint": REGION})
    meter = Meter(512, "arn:fn", TableReader(boto3.client("dynamodb", region_name=REGION)))
    meter.watch("s3", s3)

    s3.put_object(Bucket="cost-model", Key="a.gz", Body=b"x" * 300)
    s3.put_object(Bucket="cost-model", Key="b", Body=io.BytesIO(b"y" * 50))
    s3.get_object(Bucket="cost-model", Key="a.gz")["Body"].read()

    assert meter.s3_bytes == {S3_BYTES_WRITTEN: 350, S3_BYTES_READ: 300}
