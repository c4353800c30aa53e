"""The handler's configuration: environment variable names and their parsed form.

This module is the single contract between the component (which sets the variables on the Lambda
function, see ``filepipe.pipeline``) and the handler (which reads them). It imports nothing beyond the
standard library so that the component can use it without pulling the handler's runtime in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar


class EnvVar(StrEnum):
    """Environment variables the component sets and the handler reads."""

    PIPELINE_NAME = "FILEPIPE_PIPELINE_NAME"
    INPUT_PREFIX = "FILEPIPE_INPUT_PREFIX"
    OUTPUT_PREFIX = "FILEPIPE_OUTPUT_PREFIX"
    INPUT_FORMAT = "FILEPIPE_INPUT_FORMAT"
    INPUT_COMPRESSION = "FILEPIPE_INPUT_COMPRESSION"
    OUTPUT_COMPRESSION = "FILEPIPE_OUTPUT_COMPRESSION"
    OUTPUT_FORMAT = "FILEPIPE_OUTPUT_FORMAT"
    PARQUET_COMPRESSION = "FILEPIPE_PARQUET_COMPRESSION"
    PARQUET_ROW_GROUP_ROWS = "FILEPIPE_PARQUET_ROW_GROUP_ROWS"
    SCHEMA_FILE = "FILEPIPE_SCHEMA_FILE"
    """Path of the JSON Schema file, relative to the code archive root (Lambda's env is capped at 4 KB)."""
    PROCESSOR = "FILEPIPE_PROCESSOR"
    FILE_PROCESSOR = "FILEPIPE_FILE_PROCESSOR"
    """A whole-file processor (``module:function``), instead of the records' formats and processor."""
    INVALID_RECORDS = "FILEPIPE_INVALID_RECORDS"
    MAX_FILE_BYTES = "FILEPIPE_MAX_FILE_BYTES"
    MAX_SCHEMA_ERRORS = "FILEPIPE_MAX_SCHEMA_ERRORS"
    STATE_TABLE = "FILEPIPE_STATE_TABLE"
    STATE_TTL_DAYS = "FILEPIPE_STATE_TTL_DAYS"
    LEASE_SECONDS = "FILEPIPE_LEASE_SECONDS"
    DLQ_URL = "FILEPIPE_DLQ_URL"
    TIMEOUT_MARGIN_MS = "FILEPIPE_TIMEOUT_MARGIN_MS"
    BACKOFF_BASE_SECONDS = "FILEPIPE_BACKOFF_BASE_SECONDS"
    BACKOFF_MAX_SECONDS = "FILEPIPE_BACKOFF_MAX_SECONDS"
    MAX_RECEIVE_COUNT = "FILEPIPE_MAX_RECEIVE_COUNT"
    """The source queue's ``maxReceiveCount``: on that delivery the handler parks a still-failing message
    itself, with its last error as the reason, instead of letting the redrive move it without one."""
    BREAKER_TABLE = "FILEPIPE_BREAKER_TABLE"
    """The circuit breaker's state table (set only when the pipeline has a breaker). The handler reads it
    on a message's last delivery: while the breaker is not closed, a transient failure is re-sent as a
    fresh copy instead of parked (probes must not push good files into the DLQ)."""
    MAX_REQUEUES = "FILEPIPE_MAX_REQUEUES"
    """Fresh copies of one message the handler may send while the breaker is not closed."""
    # The breaker function's own settings.
    MAPPING_UUID = "FILEPIPE_MAPPING_UUID"
    TOPIC_ARN = "FILEPIPE_TOPIC_ARN"
    CLOSED_CONCURRENCY = "FILEPIPE_CLOSED_CONCURRENCY"
    """The mapping's configured ``MaximumConcurrency``, restored when the breaker closes; empty: none."""
    PROBE_CONCURRENCY = "FILEPIPE_PROBE_CONCURRENCY"
    COOL_DOWN_SECONDS = "FILEPIPE_COOL_DOWN_SECONDS"
    MAX_COOL_DOWN_SECONDS = "FILEPIPE_MAX_COOL_DOWN_SECONDS"
    PROBE_WINDOW_SECONDS = "FILEPIPE_PROBE_WINDOW_SECONDS"
    TRIP_ALARM = "FILEPIPE_TRIP_ALARM"
    PROBE_ALARM = "FILEPIPE_PROBE_ALARM"
    # Powertools' own variables, set by the component so logs and metrics are named per pipeline.
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"


class FileFormat(StrEnum):
    """What the handler reads (and can write)."""

    JSON = "json"
    NDJSON = "ndjson"
    CSV = "csv"


class OutputFormat(StrEnum):
    """What the handler writes: the formats it reads, and Parquet."""

    JSON = "json"
    NDJSON = "ndjson"
    CSV = "csv"
    PARQUET = "parquet"


class ParquetCompression(StrEnum):
    """How a Parquet output's column chunks are compressed (Parquet compresses inside the file, so a
    Parquet output takes no ``output_compression``)."""

    SNAPPY = "snappy"
    ZSTD = "zstd"


class InputCompression(StrEnum):
    AUTO = "auto"
    """By the key's suffix (``.gz``, ``.zst``), else by the object's ``Content-Encoding``."""
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


class OutputCompression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


class InvalidRecordPolicy(StrEnum):
    REJECT_FILE = "reject-file"
    """Any schema violation fails the whole file (it goes to the DLQ with the errors)."""
    WRITE_REJECTS = "write-rejects"
    """Valid records are written; invalid ones go to a ``.rejects.ndjson`` object beside the output."""


METRICS_NAMESPACE: Final = "filepipe"
"""CloudWatch namespace of the handler's EMF metrics; the component's dashboard reads the same one."""


PIPELINE_DIMENSION: Final = "pipeline"
"""The metric dimension naming the pipeline. Powertools adds ``service`` (the service name) to it, and
CloudWatch matches a metric only on its exact dimension set: the dashboard queries both."""


class Metric(StrEnum):
    """Metric names the handler emits (dimensions ``pipeline`` and ``service``) and the dashboard plots."""

    FILES_PROCESSED = "FilesProcessed"
    FILES_FAILED = "FilesFailed"
    FILES_RETRIED = "FilesRetried"
    FILES_SUPERSEDED = "FilesSuperseded"
    FILES_CONTINUED = "FilesContinued"
    """A file that outgrew its invocation was checkpointed and handed to a fresh message (not a failure)."""
    RECORDS_PROCESSED = "RecordsProcessed"
    RECORDS_REJECTED = "RecordsRejected"
    BYTES_READ = "BytesRead"
    END_TO_END_LATENCY_MS = "EndToEndLatency"


class DlqAttribute(StrEnum):
    """SQS message attributes the handler sets on a message it parks in the DLQ."""

    ERROR_TYPE = "filepipe-error-type"
    REASON = "filepipe-reason"
    SOURCE_BUCKET = "filepipe-source-bucket"
    SOURCE_KEY = "filepipe-source-key"
    SOURCE_VERSION = "filepipe-source-version"
    """``v#<versionId>`` or ``e#<etag>``: with the bucket and key, which file version this is, so two
    DLQ messages of one version (a duplicate park) show as one file."""
    PIPELINE = "filepipe-pipeline"


class QueueAttribute(StrEnum):
    """SQS message attributes the handler sets on a fresh copy it sends to its own queue."""

    REQUEUES = "filepipe-requeues"
    """How many fresh copies preceded this one (the bound on re-sending while the breaker is not closed)."""
    CONTINUATION = "filepipe-continuation"
    """Set on the fresh copy that continues a checkpointed file: how many invocations it took so far."""


class BreakerState(StrEnum):
    """The circuit breaker's states (the pipeline's mapping: enabled, disabled, enabled at probe
    concurrency)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class BreakerAttribute(StrEnum):
    """Attribute names of the breaker's single item in its table."""

    PK = "pk"
    STATE = "state"
    SINCE = "since"
    """Epoch seconds of the last transition."""
    COOL_DOWN_SECONDS = "cool_down_seconds"
    """The current (or next) wait in the open state; doubled on each failed probe."""
    HELD = "held"
    """Opened by hand: stays open until closed by hand (no automatic probing)."""
    REASON = "reason"
    REVISION = "revision"
    """Incremented on every write: writes are conditional on it (alarm and timer invocations race)."""
    HISTORY = "history"
    """The latest transitions, newest last, as a JSON list."""


BREAKER_ITEM_KEY: Final = "breaker"
"""The ``pk`` of the breaker's item."""
BREAKER_HISTORY_LIMIT: Final = 20
"""Transitions kept with the breaker's state (``filepipe breaker status`` shows them)."""


class StateAttribute(StrEnum):
    """Attribute names of the processing-state table (one item per object key)."""

    PK = "pk"
    """The table's only key: ``<bucket>/<key>``. The item describes the newest version started."""
    STATUS = "status"
    UPDATED_AT = "updated_at"
    """ISO-8601 UTC; the sort key of the ``needs-attention`` index."""
    ATTENTION = "attention"
    """Set (to the status) only while a file needs an operator: the partition key of the sparse
    ``needs-attention`` index, so the common path writes nothing to an index."""
    EXPIRES_AT = "expires_at"
    """Epoch seconds; the table's TTL attribute."""
    DLQ_MESSAGE_ID = "dlq_message_id"
    """Set on a FAILED version once its message is parked in the DLQ: duplicates are then skipped.
    Replaying a failed file means requeueing its item (REQUEUED removes this attribute) before re-sending
    its message."""
    VERSION = "version"
    """``v#<versionId>``, or ``e#<etag>`` in an unversioned bucket: which version the item describes."""
    SEQUENCER = "sequencer"
    """The event's S3 sequencer, padded so that string order is S3's event order for the key."""
    MESSAGE_ID = "message_id"
    ATTEMPTS = "attempts"
    """Deliveries of the message that started the current attempt (SQS ``ApproximateReceiveCount``)."""
    RECEIVED_AT = "received_at"
    """When S3 finished the upload (the event time), ISO-8601 UTC."""
    FINISHED_AT = "finished_at"
    LEASE_UNTIL = "lease_until"
    LEASE_TOKEN = "lease_token"
    OUTPUT_KEY = "output_key"
    REJECTS_KEY = "rejects_key"
    RECORDS = "records"
    REJECTED = "rejected"
    BYTES_READ = "bytes_read"
    DURATION_MS = "duration_ms"
    LATENCY_MS = "latency_ms"
    ERROR_TYPE = "error_type"
    ERROR = "error"
    """The reason of a FAILED or SUPERSEDED version, or the last transient error of a retried one."""
    CONTINUATION = "continuation"
    """While a file is continued across invocations: its checkpoint (JSON: where reading resumes, the
    multipart uploads and their parts' ETags, the counts so far). Removed with the outcome."""
    CARRY = "carry"
    """Output written after the last part at the checkpoint (zlib), the start of the next part."""
    REJECTS_CARRY = "rejects_carry"
    RESUME_OFFSET = "resume_offset"
    """Byte offset in the object where the next invocation resumes (``filepipe status`` shows it)."""
    CONTINUATIONS = "continuations"
    """How many times the file was handed to a fresh invocation so far."""


ATTENTION_INDEX: Final = "needs-attention"
"""Sparse global secondary index (``attention``, ``updated_at``): the files an operator must look at."""


class FileStatus(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SUPERSEDED = "SUPERSEDED"
    """A newer version of the key replaced this one before it was processed: final, not a failure."""
    REQUEUED = "REQUEUED"
    """An operator put this version back on the queue (``filepipe failed retry``, ``filepipe reprocess``):
    its next delivery is processed once, like a new version. Holds no lease and is not in the index."""


# Defaults used when a variable is absent; the component always sets them explicitly.
DEFAULT_MAX_FILE_BYTES: Final = 512 * 1024 * 1024
DEFAULT_MAX_SCHEMA_ERRORS: Final = 10
DEFAULT_LEASE_SECONDS: Final = 900
DEFAULT_STATE_TTL_DAYS: Final = 90
DEFAULT_TIMEOUT_MARGIN_MS: Final = 10_000
DEFAULT_BACKOFF_BASE_SECONDS: Final = 30
DEFAULT_BACKOFF_MAX_SECONDS: Final = 900
DEFAULT_MAX_RECEIVE_COUNT: Final = 5
DEFAULT_MAX_REQUEUES: Final = 3
DEFAULT_LOG_LEVEL: Final = "INFO"
DEFAULT_PARQUET_ROW_GROUP_ROWS: Final = 32_768
"""Rows per Parquet row group: readers skip and parallelise by row group, and the handler holds one in
memory while pyarrow encodes it. At 32,768 rows of ~150 bytes the handler's peak memory grows by about
62 MB on a 100 MB file, at 65,536 by about 72 MB and at 131,072 by 133 MB, at the same speed
(bench/throughput.py, docs/performance.md)."""


_Choice = TypeVar("_Choice", bound=StrEnum)


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    """The parsed configuration of one pipeline's handler."""

    pipeline_name: str
    input_prefix: str
    output_prefix: str
    input_format: FileFormat = FileFormat.JSON
    output_format: OutputFormat = OutputFormat.JSON
    parquet_compression: ParquetCompression = ParquetCompression.SNAPPY
    parquet_row_group_rows: int = DEFAULT_PARQUET_ROW_GROUP_ROWS
    input_compression: InputCompression = InputCompression.AUTO
    output_compression: OutputCompression = OutputCompression.NONE
    schema_file: str | None = None
    processor: str | None = None
    file_processor: str | None = None
    invalid_records: InvalidRecordPolicy = InvalidRecordPolicy.REJECT_FILE
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_schema_errors: int = DEFAULT_MAX_SCHEMA_ERRORS
    state_table: str | None = None
    state_ttl_days: int = DEFAULT_STATE_TTL_DAYS
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    dlq_url: str | None = None
    timeout_margin_ms: int = DEFAULT_TIMEOUT_MARGIN_MS
    backoff_base_seconds: int = DEFAULT_BACKOFF_BASE_SECONDS
    backoff_max_seconds: int = DEFAULT_BACKOFF_MAX_SECONDS
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    breaker_table: str | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    service_name: str | None = None
    """Powertools service name (logs, metrics dimension); ``None`` means the pipeline name."""
    metrics_namespace: str = METRICS_NAMESPACE
    log_level: str = DEFAULT_LOG_LEVEL

    def __post_init__(self) -> None:
        # The output format is named like an input format ("ndjson" for either): take either enum.
        object.__setattr__(self, "output_format", OutputFormat(self.output_format))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HandlerSettings:
        """Parse settings from ``env`` (default: ``os.environ``); raise :class:`SettingsError` if bad."""
        source = os.environ if env is None else env

        def required(var: EnvVar) -> str:
            value = source.get(var.value, "")
            if not value:
                raise SettingsError(f"environment variable {var.value} is required")
            return value

        def optional(var: EnvVar) -> str | None:
            return source.get(var.value) or None

        def integer(var: EnvVar, default: int) -> int:
            raw = source.get(var.value)
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise SettingsError(f"{var.value} must be an integer, got {raw!r}") from None

        def choice(var: EnvVar, enum: type[_Choice], default: _Choice) -> _Choice:
            raw = source.get(var.value)
            if not raw:
                return default
            try:
                return enum(raw)
            except ValueError:
                allowed = ", ".join(member.value for member in enum)
                raise SettingsError(f"{var.value} must be one of {allowed}; got {raw!r}") from None

        return cls(
            pipeline_name=required(EnvVar.PIPELINE_NAME),
            input_prefix=source.get(EnvVar.INPUT_PREFIX.value, ""),
            output_prefix=required(EnvVar.OUTPUT_PREFIX),
            input_format=choice(EnvVar.INPUT_FORMAT, FileFormat, FileFormat.JSON),
            output_format=choice(EnvVar.OUTPUT_FORMAT, OutputFormat, OutputFormat.JSON),
            parquet_compression=choice(
                EnvVar.PARQUET_COMPRESSION, ParquetCompression, ParquetCompression.SNAPPY
            ),
            parquet_row_group_rows=integer(EnvVar.PARQUET_ROW_GROUP_ROWS, DEFAULT_PARQUET_ROW_GROUP_ROWS),
            input_compression=choice(EnvVar.INPUT_COMPRESSION, InputCompression, InputCompression.AUTO),
            output_compression=choice(EnvVar.OUTPUT_COMPRESSION, OutputCompression, OutputCompression.NONE),
            schema_file=optional(EnvVar.SCHEMA_FILE),
            processor=optional(EnvVar.PROCESSOR),
            file_processor=optional(EnvVar.FILE_PROCESSOR),
            invalid_records=choice(
                EnvVar.INVALID_RECORDS, InvalidRecordPolicy, InvalidRecordPolicy.REJECT_FILE
            ),
            max_file_bytes=integer(EnvVar.MAX_FILE_BYTES, DEFAULT_MAX_FILE_BYTES),
            max_schema_errors=integer(EnvVar.MAX_SCHEMA_ERRORS, DEFAULT_MAX_SCHEMA_ERRORS),
            state_table=optional(EnvVar.STATE_TABLE),
            state_ttl_days=integer(EnvVar.STATE_TTL_DAYS, DEFAULT_STATE_TTL_DAYS),
            lease_seconds=integer(EnvVar.LEASE_SECONDS, DEFAULT_LEASE_SECONDS),
            dlq_url=optional(EnvVar.DLQ_URL),
            timeout_margin_ms=integer(EnvVar.TIMEOUT_MARGIN_MS, DEFAULT_TIMEOUT_MARGIN_MS),
            backoff_base_seconds=integer(EnvVar.BACKOFF_BASE_SECONDS, DEFAULT_BACKOFF_BASE_SECONDS),
            backoff_max_seconds=integer(EnvVar.BACKOFF_MAX_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS),
            max_receive_count=integer(EnvVar.MAX_RECEIVE_COUNT, DEFAULT_MAX_RECEIVE_COUNT),
            breaker_table=optional(EnvVar.BREAKER_TABLE),
            max_requeues=integer(EnvVar.MAX_REQUEUES, DEFAULT_MAX_REQUEUES),
            service_name=optional(EnvVar.POWERTOOLS_SERVICE_NAME),
            metrics_namespace=optional(EnvVar.POWERTOOLS_METRICS_NAMESPACE) or METRICS_NAMESPACE,
            log_level=optional(EnvVar.POWERTOOLS_LOG_LEVEL) or DEFAULT_LOG_LEVEL,
        )
