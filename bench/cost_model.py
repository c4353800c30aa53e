"""Modelled AWS cost per million small files: filepipe with its defaults against a bare pipeline.

    python -m bench.cost_model [--files 300] [--stack dev] [--pipeline transactions] [--concurrency 1]

Both pipelines run on the local endpoint from the same captured stack: the same bucket notification,
queue, event source mapping (batch size) and function (memory). The only difference is the handler:

(a) bare: GET each announced object and PUT it under the output prefix; no state table, no Powertools,
    no log line of its own;
(b) filepipe: the real handler with the stack's settings (state table, INFO logs, EMF metrics).

N small JSON files are uploaded while the mapping is paused, then drained. Every billed request is
counted per file: the handler's own calls (botocore hooks on the clients it is given), DynamoDB write
request units from the items before and after each write (table and index writes), the calls AWS makes
on the pipeline's behalf (S3's event notification to SQS, the mapping's receive and delete per batch,
one Lambda request per batch), and the CloudWatch Logs bytes: the handler's log and EMF lines as it
writes them, and Lambda's platform lines per invocation. Lambda duration is measured in-process around
each handler call, against moto: its latencies are not AWS's (moto's DynamoDB costs ~10 ms a call).
The counts are exact; the Lambda duration line is indicative.

Compressed files and whole-file processors change what is billed per file, not per byte: S3 bills a GET
or a PUT per request whatever its size (in-region transfer is free), so compression moves cost through
the requests an output needs (one PutObject below the first part size, else a multipart upload) and
through storage, while the handler's time goes with the bytes it processes, which are the decompressed
ones. :func:`file_units` models one file from its sizes (stored, processed, each output as written);
the metered run counts the S3 bytes read and written besides the requests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import unquote_plus

from bench.handler_common import machine, workload_parser
from filepipe.handler.settings import StateAttribute

PROJECT_DIR: Final = Path(__file__).resolve().parents[1]
RECORDS: Final = [{"id": f"t-{i}", "amount": i * 1.5, "currency": "EUR"} for i in range(5)]
BODY: Final = json.dumps(RECORDS).encode()
POISON_BODY: Final = b'{"id": "t-9", "amount": '
"""Truncated JSON: a permanent failure, parked in the DLQ and recorded FAILED."""

# --- List prices ----------------------------------------------------------------------------------
#
# One table, US East (N. Virginia), list prices as of November 2026, free tiers left out. The dev
# stack's region is eu-west-1 (Europe, Ireland), but the pricing pages show a region's table only
# through their region selector, and the copies these prices were read from carry the US East
# (N. Virginia) tables; Ireland's prices are somewhat higher for DynamoDB and CloudWatch Logs.
#   Lambda      https://aws.amazon.com/lambda/pricing/ : Arm, $0.0000133334 per GB-second (first
#               7.5 billion GB-s a month), $0.20 per 1M requests. Duration is rounded up to 1 ms.
#   SQS         https://aws.amazon.com/sqs/pricing/ : standard queue, $0.40 per 1M requests (first
#               100 billion a month); each 64 KB chunk of a request's payload is billed as one request.
#   S3          https://aws.amazon.com/s3/pricing/ : S3 Standard, PUT, COPY, POST, LIST $0.005 per
#               1,000; GET, SELECT and all other requests (HEAD) $0.0004 per 1,000; DELETE free.
#   DynamoDB    https://aws.amazon.com/dynamodb/pricing/on-demand/ : $0.625 per million write request
#               units, $0.125 per million read request units (since the 2024-11-01 price reduction).
#   CloudWatch  https://aws.amazon.com/cloudwatch/pricing/ : Lambda logs delivered to CloudWatch Logs
#               (Standard class), $0.50 per GB for the first 10 TB a month (tiered since 2025-05-01);
#               custom metrics $0.30 per metric-month for the first 10,000.
#   S3 storage  https://aws.amazon.com/s3/pricing/ : S3 Standard, $0.023 per GB-month (first 50 TB);
#               data transfer from S3 to Lambda in the same region is free.


@dataclass(frozen=True, slots=True)
class Prices:
    region: str
    as_of: str
    lambda_gb_second: float
    lambda_request: float
    sqs_request: float
    s3_put_request: float
    s3_get_request: float
    dynamodb_wru: float
    dynamodb_rru: float
    logs_per_gb: float
    custom_metric_month: float
    s3_storage_gb_month: float = 0.023

    def per_unit(self, dimension: str) -> float:
        """Dollars per unit of a billing dimension (``DIMENSIONS``)."""
        return {
            LAMBDA_REQUESTS: self.lambda_request,
            LAMBDA_GB_SECONDS: self.lambda_gb_second,
            SQS_REQUESTS: self.sqs_request,
            S3_PUT_REQUESTS: self.s3_put_request,
            S3_GET_REQUESTS: self.s3_get_request,
            DYNAMODB_WRU: self.dynamodb_wru,
            DYNAMODB_RRU: self.dynamodb_rru,
            # A GB taken as 10^9 bytes: the higher of the two readings of "GB".
            LOG_BYTES: self.logs_per_gb / 1e9,
        }[dimension]


LIST_PRICES: Final = Prices(
    region="us-east-1",
    as_of="November 2026",
    lambda_gb_second=0.0000133334,
    lambda_request=0.20 / 1e6,
    sqs_request=0.40 / 1e6,
    s3_put_request=0.005 / 1000,
    s3_get_request=0.0004 / 1000,
    dynamodb_wru=0.625 / 1e6,
    dynamodb_rru=0.125 / 1e6,
    logs_per_gb=0.50,
    custom_metric_month=0.30,
    s3_storage_gb_month=0.023,
)

LAMBDA_REQUESTS: Final = "lambda requests"
LAMBDA_GB_SECONDS: Final = "lambda GB-s"
SQS_REQUESTS: Final = "SQS requests (64 KB chunks)"
S3_PUT_REQUESTS: Final = "S3 PUT/COPY/POST/LIST requests"
S3_GET_REQUESTS: Final = "S3 GET/HEAD requests"
DYNAMODB_WRU: Final = "DynamoDB WRU"
DYNAMODB_RRU: Final = "DynamoDB RRU"
LOG_BYTES: Final = "CloudWatch Logs bytes"
DIMENSIONS: Final = {
    LAMBDA_REQUESTS: "Lambda",
    LAMBDA_GB_SECONDS: "Lambda",
    SQS_REQUESTS: "SQS",
    S3_PUT_REQUESTS: "S3",
    S3_GET_REQUESTS: "S3",
    DYNAMODB_WRU: "DynamoDB",
    DYNAMODB_RRU: "DynamoDB",
    LOG_BYTES: "CloudWatch Logs",
}
"""Billing dimension -> the service it is billed under."""
UNIT_NAMES: Final = {
    LAMBDA_REQUESTS: "requests",
    LAMBDA_GB_SECONDS: "GB-s",
    SQS_REQUESTS: "requests",
    S3_PUT_REQUESTS: "PUT-tier requests",
    S3_GET_REQUESTS: "GET-tier requests",
    DYNAMODB_WRU: "WRU",
    DYNAMODB_RRU: "RRU",
    LOG_BYTES: "bytes",
}
SERVICES: Final = ("Lambda", "SQS", "S3", "DynamoDB", "CloudWatch Logs")

Units = Mapping[tuple[str, str], float]
"""``(item, dimension) -> units``: what each item of the pipeline (a call, a log line) consumed."""


def dollars_per_million(units: Units, files: int, prices: Prices = LIST_PRICES) -> dict[str, float]:
    """$ per million files of each item."""
    cost: defaultdict[str, float] = defaultdict(float)
    for (item, dimension), amount in units.items():
        cost[item] += amount * prices.per_unit(dimension) * 1e6 / files
    return dict(cost)


def by_service(units: Units, files: int, prices: Prices = LIST_PRICES) -> dict[str, float]:
    """$ per million files of each service (every service present, zero if unused)."""
    cost = dict.fromkeys(SERVICES, 0.0)
    for (_, dimension), amount in units.items():
        cost[DIMENSIONS[dimension]] += amount * prices.per_unit(dimension) * 1e6 / files
    return cost


# --- Request sizes ----------------------------------------------------------------------------------

SQS_CHUNK_BYTES: Final = 64 * 1024
DELETE_BATCH: Final = 10
"""Entries per DeleteMessageBatch (the mapping deletes a batch's successes in one call per ten)."""
LOG_EVENT_OVERHEAD_BYTES: Final = 26
"""Added to each log event's UTF-8 message, as CloudWatch Logs sizes a batch of events."""


def sqs_requests(payload_bytes: int) -> int:
    """Billed SQS requests for one call: one per started 64 KB chunk of its payload, at least one."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK_BYTES))


def _attributes_bytes(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """SQS message attributes count toward the payload: name, data type and value."""
    total = 0
    for name, value in attributes.items():
        data_type = value.get("DataType") or value.get("dataType") or ""
        text = value.get("StringValue") or value.get("stringValue") or ""
        binary = value.get("BinaryValue") or value.get("binaryValue") or b""
        total += len(name.encode()) + len(str(data_type).encode()) + len(str(text).encode()) + len(binary)
    return total


def sqs_payload_bytes(params: Mapping[str, Any]) -> int:
    """Payload of a send request (SendMessage, or every entry of SendMessageBatch)."""
    entries = params.get("Entries") or [params]
    return sum(
        len(str(entry.get("MessageBody", "")).encode())
        + _attributes_bytes(entry.get("MessageAttributes") or {})
        for entry in entries
    )


# --- DynamoDB request units -------------------------------------------------------------------------

Item = Mapping[str, Mapping[str, Any]]
WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096


def _number_size(text: str) -> int:
    """DynamoDB stores a number in about one byte per two significant digits, plus one."""
    mantissa = text.lower().split("e")[0].lstrip("+-").replace(".", "")
    digits = mantissa.strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def attribute_size(value: Mapping[str, Any]) -> int:
    """Size of one attribute value, by DynamoDB's item-size rules."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(text.encode()) for text in inner)
    if kind == "NS":
        return sum(_number_size(text) for text in inner)
    if kind == "BS":
        return sum(len(data) for data in inner)
    if kind == "L":
        return 3 + sum(attribute_size(element) + 1 for element in inner)
    if kind == "M":
        return 3 + sum(len(name.encode()) + attribute_size(element) + 1 for name, element in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Item) -> int:
    """Bytes of an item: every attribute's UTF-8 name plus its value."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    """WRU of a standard write of ``size`` bytes: one per started KB, at least one."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    """RRU of a read of ``size`` bytes: one per started 4 KB, half that if eventually consistent."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A global secondary index as DescribeTable reports it."""

    name: str
    keys: tuple[str, ...]
    projection: str = "ALL"
    non_key_attributes: tuple[str, ...] = ()

    def entry(self, item: Item | None, table_keys: Sequence[str]) -> dict[str, Any] | None:
        """The item's entry in this index, or ``None``: an item lacking a key attribute is not in it."""
        if item is None or any(key not in item for key in self.keys):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = {*table_keys, *self.keys}
        if self.projection == "INCLUDE":
            kept.update(self.non_key_attributes)
        return {name: value for name, value in item.items() if name in kept}


def index_writes(
    index: IndexSpec, table_keys: Sequence[str], before: Item | None, after: Item | None
) -> list[int]:
    """The WRU of each write a table write causes in ``index`` (DynamoDB's GSI rules):

    an item that enters the index is one put, one that leaves it one delete, one whose index key
    changes a delete and a put, one whose projected attributes change one put; an item in the index
    neither before nor after costs nothing. Each write is sized by its index entry.
    """
    old, new = index.entry(before, table_keys), index.entry(after, table_keys)
    if old is None and new is None:
        return []
    if old is None:
        return [write_units(item_size(new or {}))]
    if new is None:
        return [write_units(item_size(old))]
    if any(old[key] != new[key] for key in index.keys):
        return [write_units(item_size(old)), write_units(item_size(new))]
    if old != new:
        return [write_units(item_size(new))]
    return []


def table_write_units(before: Item | None, after: Item | None) -> int:
    """WRU of a write on the table: sized by the larger of the item before and after it (a write
    whose condition failed is sized by the item as it is)."""
    return write_units(max(item_size(before or {}), item_size(after or {})))


@dataclass(frozen=True, slots=True)
class TableSpec:
    keys: tuple[str, ...]
    indexes: tuple[IndexSpec, ...]

    @classmethod
    def from_description(cls, table: Mapping[str, Any]) -> TableSpec:
        indexes = tuple(
            IndexSpec(
                name=index["IndexName"],
                keys=tuple(key["AttributeName"] for key in index["KeySchema"]),
                projection=index.get("Projection", {}).get("ProjectionType", "ALL"),
                non_key_attributes=tuple(index.get("Projection", {}).get("NonKeyAttributes", ())),
            )
            for index in table.get("GlobalSecondaryIndexes") or []
        )
        return cls(keys=tuple(key["AttributeName"] for key in table["KeySchema"]), indexes=indexes)


class TableReader:
    """Reads items and table shapes with its own client, so that the metered handler's calls stay its
    own; the time it takes is not the handler's (it is subtracted from the measured duration)."""

    def __init__(self, dynamodb: Any) -> None:
        self._dynamodb = dynamodb
        self._tables: dict[str, TableSpec] = {}
        self._lock = threading.Lock()

    def table(self, name: str) -> TableSpec:
        with self._lock:
            spec = self._tables.get(name)
        if spec is None:
            spec = TableSpec.from_description(self._dynamodb.describe_table(TableName=name)["Table"])
            with self._lock:
                self._tables[name] = spec
        return spec

    def item(self, table: str, key: Item) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._dynamodb.get_item(
            TableName=table, Key=key, ConsistentRead=True
        ).get("Item")
        return found


# --- Metering -----------------------------------------------------------------------------------------

_local = threading.local()
"""Per thread: the meter of the invocation running on it, and the metering time to leave out of it."""

S3_FREE_PREFIXES: Final = ("Delete", "AbortMultipartUpload")
S3_PUT_TIER: Final = (
    "Put",
    "Copy",
    "List",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "RestoreObject",
    "PostObject",
)
DYNAMODB_WRITES: Final = ("UpdateItem", "PutItem", "DeleteItem")
DYNAMODB_READS: Final = ("GetItem",)
_BEFORE: Final = "cost_model_before"
_PARAMS: Final = "cost_model_params"
MODELLED_DURATION_ITEM: Final = "Lambda duration (modelled: processed bytes at the handler's rate)"
S3_WRITES_WITH_BODY: Final = ("PutObject", "UploadPart")
S3_BYTES_READ: Final = "S3 bytes read (GetObject)"
S3_BYTES_WRITTEN: Final = "S3 bytes written (PutObject, UploadPart)"
STATUS_PLACEHOLDER: Final = f":{StateAttribute.STATUS.value}"
"""The state store names each value after its attribute: labels a write by the status it sets."""


def _body_bytes(body: Any) -> int:
    """Bytes of a request body as the handler passes it (bytes, or a file-like object at its start)."""
    if isinstance(body, bytes | bytearray | memoryview):
        return len(body)
    if hasattr(body, "getbuffer"):
        return len(body.getbuffer())
    return 0


@contextlib.contextmanager
def _metering_time() -> Iterator[None]:
    """Time spent metering (hooks, extra reads) is added to the thread's overhead, not the handler's."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _local.overhead = getattr(_local, "overhead", 0.0) + time.perf_counter() - started


class Meter:
    """Everything one function's invocations are billed for, per item (a call, a kind of log line)."""

    def __init__(self, memory_mb: int, function_arn: str, reader: TableReader) -> None:
        self.memory_mb = memory_mb
        self.function_arn = function_arn
        self.reader = reader
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.units: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.durations_ms: list[float] = []
        self.metrics: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
        """Distinct EMF metrics seen (namespace, name, dimensions): custom metrics billed per month."""
        self.largest_item = 0
        """Bytes of the largest item a write left (or found): how close a write is to a second WRU."""
        self.s3_bytes: Counter[str] = Counter()
        """Object bytes moved (``S3_BYTES_READ``, ``S3_BYTES_WRITTEN``): a compressed file is fewer bytes
        here than the handler processes, for the same requests."""

    def reset(self) -> None:
        with self._lock:
            self.s3_bytes.clear()
            self.calls.clear()
            self.units.clear()
            self.durations_ms.clear()
            self.metrics.clear()
            self.largest_item = 0

    def add(self, item: str, dimension: str | None = None, units: float = 1, calls: int = 1) -> None:
        with self._lock:
            if calls:
                self.calls[item] += calls
            if dimension is not None:
                self.units[(item, dimension)] += units

    # -- the handler's own calls --------------------------------------------------------------------

    def watch(self, service: str, client: Any) -> None:
        """Meter every call ``client`` makes (register before the handler gets the client)."""
        client.meta.events.register(f"before-parameter-build.{service}", self._before)
        client.meta.events.register(f"after-call.{service}", self._after)

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        with _metering_time():
            context[_PARAMS] = params  # the after-call hook sees only the response
            service, operation = model.service_model.service_id.hyphenize(), model.name
            if service == "s3":
                self._s3(operation)
                if operation in S3_WRITES_WITH_BODY:
                    self._moved(S3_BYTES_WRITTEN, _body_bytes(params.get("Body")))
            elif service == "sqs":
                payload = sqs_payload_bytes(params) if operation.startswith("SendMessage") else 0
                label = "SQS SendMessage (handler: DLQ)" if operation == "SendMessage" else f"SQS {operation}"
                self.add(label, SQS_REQUESTS, sqs_requests(payload))
            elif service == "dynamodb" and operation in DYNAMODB_WRITES:
                context[_BEFORE] = self.reader.item(params["TableName"], params["Key"])
            elif service != "dynamodb":
                self.add(f"{service} {operation} (not priced)")

    def _s3(self, operation: str) -> None:
        if operation.startswith(S3_FREE_PREFIXES):
            self.add(f"S3 {operation} (free)")
        elif operation.startswith(S3_PUT_TIER):
            self.add(f"S3 {operation}", S3_PUT_REQUESTS)
        else:
            self.add(f"S3 {operation}", S3_GET_REQUESTS)

    def _moved(self, direction: str, size: int) -> None:
        with self._lock:
            self.s3_bytes[direction] += size

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_id.hyphenize()
        if service == "s3" and model.name == "GetObject":
            self._moved(S3_BYTES_READ, int(parsed.get("ContentLength") or 0))
        if service != "dynamodb":
            return
        with _metering_time():
            operation, request = model.name, context.get(_PARAMS) or {}
            if operation in DYNAMODB_READS:
                size = item_size(parsed.get("Item") or {})
                self.add(
                    f"DynamoDB {operation}",
                    DYNAMODB_RRU,
                    read_units(size, bool(request.get("ConsistentRead"))),
                )
            elif operation in DYNAMODB_WRITES:
                self._write(operation, request, context.get(_BEFORE), parsed)
            else:
                self.add(f"DynamoDB {operation} (not priced)")

    def _write(
        self, operation: str, request: Mapping[str, Any], before: Item | None, parsed: Mapping[str, Any]
    ) -> None:
        table = self.reader.table(request["TableName"])
        failed = parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
        after = before if failed else self.reader.item(request["TableName"], request["Key"])
        status = (request.get("ExpressionAttributeValues") or {}).get(STATUS_PLACEHOLDER, {}).get("S")
        label = f"DynamoDB {operation} {status}" if status else f"DynamoDB {operation} (status unchanged)"
        if failed:
            label += " (condition failed)"
        self.add(label, DYNAMODB_WRU, table_write_units(before, after))
        with self._lock:
            self.largest_item = max(self.largest_item, item_size(before or {}), item_size(after or {}))
        for index in table.indexes:
            writes = index_writes(index, table.keys, before, after)
            # A zero entry too: the report shows that an index was there and cost nothing.
            self.add(f"DynamoDB {index.name} index writes", DYNAMODB_WRU, sum(writes), calls=len(writes))

    # -- what AWS does per invocation -------------------------------------------------------------

    def invocation(self, records: Sequence[Mapping[str, Any]], failed: set[str], duration_ms: float) -> None:
        """One batch: S3's notifications, the mapping's receive and delete, the Lambda request and
        duration, and Lambda's platform log lines."""
        self.add(LAMBDA_ITEM, LAMBDA_REQUESTS)
        billed_ms = math.ceil(duration_ms)
        self.add(DURATION_ITEM, LAMBDA_GB_SECONDS, self.memory_mb / 1024 * billed_ms / 1000, calls=0)
        with self._lock:
            self.durations_ms.append(duration_ms)
        for record in records:
            # S3 sent each message once; a redelivery is the queue's, already counted.
            if str((record.get("attributes") or {}).get("ApproximateReceiveCount", "1")) == "1":
                self.add(
                    "SQS SendMessage (S3 event notification)",
                    SQS_REQUESTS,
                    sqs_requests(_record_bytes(record)),
                )
        payload = sum(_record_bytes(record) for record in records)
        self.add("SQS ReceiveMessage (event source mapping)", SQS_REQUESTS, sqs_requests(payload))
        done = [record for record in records if record.get("messageId") not in failed]
        for _ in range(0, len(done), DELETE_BATCH):
            self.add("SQS DeleteMessageBatch (event source mapping)", SQS_REQUESTS)
        for line in platform_lines(self.function_arn, self.memory_mb, duration_ms):
            self.add("log: Lambda platform.start/report", LOG_BYTES, _event_bytes(line), calls=0)

    def log_line(self, line: str) -> None:
        """One line the handler wrote to stdout: an EMF document or a log record."""
        if not line.strip():
            return
        document = _json_object(line)
        if document is not None and "_aws" in document:
            self.add("log: EMF metrics (one per batch)", LOG_BYTES, _event_bytes(line), calls=0)
            self._remember_metrics(document)
            return
        level = str(document.get("level", "")) if document else ""
        message = str(document.get("message", "")) if document else line[:40]
        self.add(f"log: {level} {message!r}".replace("  ", " "), LOG_BYTES, _event_bytes(line), calls=0)

    def _remember_metrics(self, document: Mapping[str, Any]) -> None:
        for directive in document["_aws"].get("CloudWatchMetrics") or []:
            for dimension_set in directive.get("Dimensions") or [[]]:
                dimensions = tuple((name, str(document.get(name, ""))) for name in dimension_set)
                for metric in directive.get("Metrics") or []:
                    with self._lock:
                        self.metrics.add(
                            (str(directive.get("Namespace")), str(metric.get("Name")), dimensions)
                        )


def _json_object(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _event_bytes(line: str) -> int:
    return len(line.encode()) + LOG_EVENT_OVERHEAD_BYTES


def _record_bytes(record: Mapping[str, Any]) -> int:
    """An SQS message's billed payload: body and message attributes."""
    return len(str(record.get("body", "")).encode()) + _attributes_bytes(
        record.get("messageAttributes") or {}
    )


MAX_MEMORY_USED_MB: Final = 100
"""Stands in for the report's ``maxMemoryUsedMB`` (only its number of digits matters here)."""


def platform_lines(function_arn: str, memory_mb: int, duration_ms: float) -> list[str]:
    """Lambda's system log lines for one invocation, as the stack configures them (JSON format, system
    log level INFO): ``platform.start`` and ``platform.report``. The END line's JSON counterpart,
    ``platform.runtimeDone``, is a DEBUG event, so INFO leaves it out."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    request_id = str(uuid.uuid4())
    start = {
        "time": now,
        "type": "platform.start",
        "record": {"requestId": request_id, "functionArn": function_arn, "version": "$LATEST"},
    }
    report = {
        "time": now,
        "type": "platform.report",
        "record": {
            "requestId": request_id,
            "metrics": {
                "durationMs": round(duration_ms, 3),
                "billedDurationMs": math.ceil(duration_ms),
                "memorySizeMB": memory_mb,
                "maxMemoryUsedMB": MAX_MEMORY_USED_MB,
            },
            "status": "success",
        },
    }
    return [json.dumps(line, separators=(",", ":")) for line in (start, report)]


Handler = Callable[[dict[str, Any], Any], Any]
DURATION_ITEM: Final = "Lambda duration (measured against moto)"
LAMBDA_ITEM: Final = "Lambda requests (one per batch)"


def metered(handler: Handler, meter: Meter) -> Handler:
    """``handler`` timed and metered: the time the meter itself spends is left out of the duration."""
    from filepipe.local.esm import failed_message_ids

    def invoke(event: dict[str, Any], context: Any) -> Any:
        records = [record for record in event.get("Records") or [] if isinstance(record, dict)]
        _local.meter, _local.overhead = meter, 0.0
        started = time.perf_counter()
        response: Any = None
        errored = True
        try:
            response = handler(event, context)
            errored = False
            return response
        finally:
            duration_ms = (time.perf_counter() - started - _local.overhead) * 1000
            _local.meter = None
            ids = [str(record.get("messageId")) for record in records]
            failed = set(ids) if errored else failed_message_ids(response, ids)
            meter.invocation(records, failed, duration_ms)

    return invoke


class LogCapture:
    """Stands in for stdout and for the handler's logging stream: a line written during an invocation
    is the invocation's (billed as CloudWatch Logs bytes); anything else goes to ``target``."""

    def __init__(self, target: TextIO) -> None:
        self._target = target
        self._pending = threading.local()
        self._adopted: list[tuple[logging.StreamHandler[Any], Any]] = []

    def write(self, text: str) -> int:
        meter: Meter | None = getattr(_local, "meter", None)
        if meter is None:
            return self._target.write(text)
        with _metering_time():
            # print() writes the text and the newline separately: buffer per thread until a full line.
            *lines, rest = (getattr(self._pending, "text", "") + text).split("\n")
            self._pending.text = rest
            for line in lines:
                meter.log_line(line)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", "utf-8")

    def adopt_logger(self, name: str) -> None:
        """Point the stream handlers of logger ``name`` here until :meth:`installed` ends: Powertools
        names its logger after the service and binds it to the stdout of the first Logger built for
        that service in the process, which may predate this capture."""
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                # Swapped without setStream(), which flushes the old stream first: that stream may be an
                # earlier runtime's capture whose own target is closed by now (a previous test's).
                with handler.lock or contextlib.nullcontext():
                    old, handler.stream = handler.stream, self
                self._adopted.append((handler, old))

    @contextlib.contextmanager
    def installed(self) -> Iterator[LogCapture]:
        """This capture as ``sys.stdout`` (Powertools prints EMF there) for the block."""
        real_stdout = sys.stdout
        sys.stdout = self
        try:
            yield self
        finally:
            sys.stdout = real_stdout
            for handler, stream in reversed(self._adopted):
                handler.setStream(stream)
            self._adopted.clear()


XRAY_TRACE_HEADER: Final = "Root=1-6746f1a2-3c1d2e4f5a6b7c8d9e0f1a2b;Parent=53995c3f42cd8ad8;Sampled=0"
"""Lambda sets ``_X_AMZN_TRACE_ID`` for every invocation (tracing active or not), and Powertools' Logger
adds its root to each log line as ``xray_trace_id``: the local lines carry one of the same length."""


@contextlib.contextmanager
def lambda_environment() -> Iterator[None]:
    previous = os.environ.get("_X_AMZN_TRACE_ID")
    os.environ["_X_AMZN_TRACE_ID"] = XRAY_TRACE_HEADER
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        else:
            os.environ["_X_AMZN_TRACE_ID"] = previous


# --- The two handlers -------------------------------------------------------------------------------


def bare_handler(s3: Any, input_prefix: str, output_prefix: str) -> Handler:
    """The least a handler of this pipeline must do: GET each announced object, PUT it under the
    output prefix; a message that fails is reported in ``batchItemFailures``."""

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for message in event.get("Records") or []:
            try:
                for record in json.loads(message["body"]).get("Records") or []:
                    if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                        continue
                    bucket = record["s3"]["bucket"]["name"]
                    key = unquote_plus(record["s3"]["object"]["key"])
                    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    s3.put_object(Bucket=bucket, Key=output_prefix + key[len(input_prefix) :], Body=data)
            except Exception:
                failures.append({"itemIdentifier": message["messageId"]})
        return {"batchItemFailures": failures}

    return handle


FUNCTION_TYPE: Final = "aws:lambda/function:Function"


def function_memory_mb(captured: Any, function_name: str) -> int:
    """The ``memorySize`` the stack declares for ``function_name`` (Lambda's default 128 if none)."""
    for resource in captured.of_type(FUNCTION_TYPE):
        if resource.get("name") == function_name:
            return int(resource.inputs.get("memorySize") or 128)
    raise KeyError(f"function {function_name} is not in the captured stack")


@dataclass
class Measurement:
    """One pipeline's metered run."""

    kind: str
    files: int
    meter: Meter
    batch_size: int
    concurrency: int
    invocations: int
    messages_deleted: int

    @property
    def units(self) -> Units:
        return self.meter.units

    def per_file(self, item: str) -> float:
        return self.meter.calls[item] / self.files


def measure(
    kind: str,
    *,
    files: int,
    poison: int = 0,
    project_dir: Path = PROJECT_DIR,
    stack: str = "dev",
    pipeline: str = "transactions",
    state_dir: Path | None = None,
    concurrency: int = 1,
    timeout: float = 600.0,
) -> Measurement:
    """Upload ``files`` small JSON files (and ``poison`` truncated ones) to ``pipeline`` while its
    mapping is paused, drain them with the ``kind`` handler ("bare" or "filepipe"), and return what
    the pipeline was billed for. Nothing before the upload (the s3:TestEvent) is counted."""
    from filepipe.handler.app import build_handler
    from filepipe.handler.clients import Clients
    from filepipe.handler.settings import EnvVar, HandlerSettings
    from filepipe.local.runtime import LocalRuntime, LocalTuning

    if kind not in ("bare", "filepipe"):
        raise ValueError(f"kind must be 'bare' or 'filepipe', got {kind!r}")
    capture = LogCapture(sys.stdout)
    meters: dict[str, Meter] = {}

    def factory(function: Any, environment: Mapping[str, str], address: Any) -> Handler:
        # The memory is set from the captured stack once it runs: nothing is counted before that.
        meter = Meter(0, function.arn, TableReader(address.client("dynamodb")))
        meters[function.name] = meter
        clients = Clients(
            s3=address.client("s3"), sqs=address.client("sqs"), dynamodb=address.client("dynamodb")
        )
        for service in ("s3", "sqs", "dynamodb"):
            meter.watch(service, getattr(clients, service))
        if kind == "bare":
            return metered(
                bare_handler(
                    clients.s3,
                    environment.get(EnvVar.INPUT_PREFIX.value, ""),
                    environment[EnvVar.OUTPUT_PREFIX.value],
                ),
                meter,
            )
        real = build_handler(HandlerSettings.from_env(environment), clients)
        capture.adopt_logger(real.service)
        return metered(real, meter)

    tuning = LocalTuning.fast(log_level=None, concurrency=concurrency)  # None: the stack's level (INFO)
    state = state_dir or PROJECT_DIR / ".filepipe" / f"cost-{kind}"
    runtime = LocalRuntime(project_dir, stack, state_dir=state, tuning=tuning, handler_factory=factory)
    with lambda_environment(), capture.installed(), runtime as running:
        out = running.pipeline_outputs(pipeline)
        runner = running.runner(pipeline)
        meter = meters[out["functionName"]]
        if not running.wait_until_idle(timeout=60):
            raise RuntimeError("the pipeline did not settle before the run")
        runner.set_enabled(False)
        if not runner.wait_until_paused():
            raise RuntimeError("the mapping did not pause")
        meter.memory_mb = function_memory_mb(running.captured, out["functionName"])
        meter.reset()
        invocations, deleted = runner.stats.invocations, runner.stats.messages_deleted
        s3 = running.address.client("s3")
        for index in range(files + poison):
            body = BODY if index < files else POISON_BODY
            key = f"{out['inputPrefix']}cost/{index:05d}.json"
            s3.put_object(Bucket=out["bucket"], Key=key, Body=body)
        total = files + poison
        deadline = time.monotonic() + timeout
        while running.queue_depth(out["queueUrl"]) < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{out['queueUrl']} did not reach {total} messages")
            time.sleep(0.05)
        runner.set_enabled(True)
        # The runner's own counter, not the endpoint: requests to it would compete with the handler's.
        while runner.stats.messages_deleted - deleted < total:
            if time.monotonic() > deadline:
                raise RuntimeError("the pipeline did not drain")
            time.sleep(0.25)
        if not running.wait_until_idle(timeout=max(1.0, deadline - time.monotonic()), settle=0.2):
            raise RuntimeError("the pipeline did not settle after the run")
        measured = Measurement(
            kind=kind,
            files=total,
            meter=meter,
            batch_size=runner.mapping.batch_size,
            concurrency=runner.concurrency,
            invocations=runner.stats.invocations - invocations,
            messages_deleted=runner.stats.messages_deleted - deleted,
        )
    # The mapping's calls are modelled from each invocation the meter saw; the runner counts its own.
    if measured.invocations != meter.calls[LAMBDA_ITEM]:
        raise RuntimeError(
            f"the runner made {measured.invocations} invocations, the meter saw {meter.calls[LAMBDA_ITEM]}"
        )
    return measured


# --- Compressed files and whole-file processors: one file, from its sizes -----------------------------


@dataclass(frozen=True, slots=True)
class FileShape:
    """One file as the bill sees it."""

    stored_bytes: int
    """The input object as stored: what the GET returns (compressed, when it is)."""
    processed_bytes: int
    """What the handler reads after decompressing: what the size cap holds and the handler's time goes with."""
    output_bytes: tuple[int, ...]
    """Each output object as written (compressed with ``output_compression``); a record pipeline writes
    one, a whole-file processor one per output it opens."""


def upload_requests(size: int, part_bytes: int | None = None) -> int:
    """PUT-tier requests the handler's writer makes for one object of ``size`` bytes: one PutObject while
    it stays below the first part's size, else CreateMultipartUpload, each part (sized by the writer's
    own :func:`~filepipe.handler.writers.part_size`) and CompleteMultipartUpload."""
    from filepipe.handler.writers import DEFAULT_PART_BYTES, part_size

    base = DEFAULT_PART_BYTES if part_bytes is None else part_bytes
    if size < part_size(1, base):
        return 1
    parts, sent = 0, 0
    while sent < size:
        parts += 1
        sent += part_size(parts, base)
    return parts + 2


def file_units(
    shape: FileShape,
    input_format: str,
    memory_mb: int,
    *,
    whole_file: bool = False,
    output_format: str | None = None,
) -> dict[tuple[str, str], float]:
    """What one file is billed for in S3 requests and Lambda GB-seconds.

    Time is the handler's measured rate over the processed (decompressed) bytes
    (:func:`filepipe.handler.capacity.expected_seconds`); decompressing and compressing are not in those
    rates and are left out; a Parquet ``output_format`` adds its conversion's measured rate. A whole-file
    processor's time is its own code's: only its requests are
    modelled. The state table, the queue and the logs cost per file whatever its size (``measure``).
    """
    from filepipe.handler.capacity import expected_seconds
    from filepipe.handler.settings import FileFormat, OutputFormat

    units: dict[tuple[str, str], float] = {
        ("S3 GetObject", S3_GET_REQUESTS): 1,
        ("S3 output writes", S3_PUT_REQUESTS): sum(upload_requests(size) for size in shape.output_bytes),
    }
    if not whole_file:
        output = OutputFormat(output_format) if output_format is not None else None
        seconds = expected_seconds(shape.processed_bytes, FileFormat(input_format), memory_mb, output)
        units[(MODELLED_DURATION_ITEM, LAMBDA_GB_SECONDS)] = memory_mb / 1024 * seconds
    return units


def storage_per_month(
    shape: FileShape, files: int = 1_000_000, prices: Prices = LIST_PRICES
) -> dict[str, float]:
    """$ a month to keep ``files`` such inputs and their outputs in S3 Standard (a GB taken as 10^9 bytes)."""
    per_byte = prices.s3_storage_gb_month / 1e9 * files
    return {"inputs": shape.stored_bytes * per_byte, "outputs": sum(shape.output_bytes) * per_byte}


# --- Report -----------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _per_file(units: Units, files: int, item: str, dimension: str) -> float:
    return units.get((item, dimension), 0.0) / files


def report(bare: Measurement, full: Measurement, prices: Prices = LIST_PRICES, target: float = 1.25) -> str:
    """The comparison as printed: workload, calls and billed units per file, $ per million, ratio."""
    lines = [
        f"machine:  {machine()}",
        f"workload: {full.files} JSON files of {len(BODY)} bytes, uploaded while the mapping was paused, "
        f"then drained; function memory {full.meter.memory_mb} MB (the stack's memorySize), batch size "
        f"{full.batch_size}, {full.concurrency} poller(s)",
    ]
    for run in (bare, full):
        lines.append(
            f"  {run.kind:8} {run.invocations} invocations, {run.files / max(run.invocations, 1):.1f} files "
            f"per batch, handler duration median {_median(run.meter.durations_ms):.1f} ms per invocation "
            "(measured against moto: its latencies are not AWS's)"
        )
    lines.append(
        f"prices:   {prices.region} list prices, {prices.as_of} (sources in bench/cost_model.py); "
        "free tiers left out"
    )
    lines += ["", f"{'calls per file':64} {'(a) bare':>9} {'(b) filepipe':>13}"]
    for item in sorted({*bare.meter.calls, *full.meter.calls}):
        lines.append(f"  {item:62} {bare.per_file(item):9.3f} {full.per_file(item):13.3f}")
    lines += ["", f"{'billed units per file':64} {'(a) bare':>9} {'(b) filepipe':>13}"]
    keys = sorted({*bare.units, *full.units}, key=lambda key: (DIMENSIONS[key[1]], key[0]))
    for item, dimension in keys:
        mine, theirs = (_per_file(run.units, run.files, item, dimension) for run in (bare, full))
        lines.append(f"  {item + ' [' + UNIT_NAMES[dimension] + ']':62} {mine:9.4g} {theirs:13.4g}")
    for run in (bare, full):
        read, written = run.meter.s3_bytes[S3_BYTES_READ], run.meter.s3_bytes[S3_BYTES_WRITTEN]
        lines.append(
            f"  {run.kind}: S3 bytes per file read {read / run.files:.0f}, written {written / run.files:.0f} "
            "(not billed per byte in-region; compressed files move fewer for the same requests)"
        )
    if full.meter.largest_item:
        lines.append(
            f"  largest item written: {full.meter.largest_item} bytes (a write costs 1 WRU up to "
            f"{WRITE_UNIT_BYTES:,} bytes)"
        )

    bare_cost, full_cost = (
        by_service(bare.units, bare.files, prices),
        by_service(full.units, full.files, prices),
    )
    bare_total, full_total = sum(bare_cost.values()), sum(full_cost.values())
    lines += ["", f"{'$ per million files':22} {'(a) bare':>16} {'(b) filepipe':>18}"]
    for service in SERVICES:
        lines.append(
            f"  {service:20} {bare_cost[service]:8.3f} {bare_cost[service] / bare_total:6.1%}"
            f"   {full_cost[service]:12.3f} {full_cost[service] / full_total:6.1%}"
        )
    lines.append(f"  {'total':20} {bare_total:8.3f} {'':6}   {full_total:12.3f}")
    ratio = full_total / bare_total
    lines.append(
        f"ratio (b)/(a): {ratio:.3f} (target <= {target:.2f}: {'met' if ratio <= target else 'missed'})"
    )

    bare_items = dollars_per_million(bare.units, bare.files, prices)
    full_items = dollars_per_million(full.units, full.files, prices)
    deltas = {
        item: full_items.get(item, 0.0) - bare_items.get(item, 0.0) for item in {*bare_items, *full_items}
    }
    lines += ["", "where (b) - (a) comes from, $ per million files:"]
    for item, delta in sorted(deltas.items(), key=lambda pair: (-abs(pair[1]), pair[0])):
        if abs(delta) >= 0.0005:
            lines.append(f"  {delta:+8.3f}  {item}")
    duration = deltas.get(DURATION_ITEM, 0.0)
    lines.append(
        f"ratio with the Lambda duration of (a) in both (moto's DynamoDB is slower than AWS's): "
        f"{(full_total - duration) / bare_total:.3f}"
    )
    metrics = len(full.meter.metrics)
    lines += [
        "",
        f"not per file: the {metrics} custom metrics in (b)'s EMF lines (their bytes are counted above) are "
        f"billed per metric-month: ${metrics * prices.custom_metric_month:.2f} a month per pipeline, whatever "
        "the traffic",
        "left out of both: the uploader's PUT of each input ($5 per million, paid whatever processes the "
        "file), storage (inputs, outputs, state items kept 90 days, point-in-time recovery), the mapping's "
        "empty long polls while idle, the init duration of cold starts (amortized over a container's batches)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = workload_parser(__doc__)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="pollers (one keeps the measured durations free of contention)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    options = {
        "files": args.files,
        "stack": args.stack,
        "pipeline": args.pipeline,
        "concurrency": args.concurrency,
    }
    bare = measure("bare", **options)
    full = measure("filepipe", **options)
    print(report(bare, full))
    return 0


if __name__ == "__main__":
    sys.exit(main())
