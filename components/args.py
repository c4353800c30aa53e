"""Typed inputs of :class:`~filepipe.pipeline.FileProcessingPipeline`.

Fields that decide the pipeline's shape or are validated before deploy (prefixes, formats, sizes,
timeouts) are plain Python values: a value that is only known at deploy time cannot be checked at
``pulumi preview``. Fields that are merely passed through to AWS (tags, an existing topic ARN, a KMS key)
accept ``pulumi.Input``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pulumi

from . import defaults
from .handler.settings import FileFormat, InvalidRecordPolicy

if TYPE_CHECKING:
    import pulumi_aws as aws

    from .bucket import PipelineBucket

Architecture = Literal["arm64", "x86_64"]
FormatName = Literal["json", "ndjson", "csv"]
InvalidRecordsName = Literal["reject-file", "write-rejects"]
NotificationMode = Literal["s3", "eventbridge"]
Encryption = Literal["sse-sqs", "kms"]


@dataclass(kw_only=True)
class PipelineArgs:
    """Inputs of one file-processing pipeline. Only ``input_prefix`` is required."""

    input_prefix: str
    """Key prefix files arrive under, e.g. ``incoming/transactions/``. Must end with ``/``."""

    pipeline_name: str | None = None
    """Name used in logs, metrics, alarms and the dashboard. Default: the component's resource name."""

    bucket: str | aws.s3.Bucket | PipelineBucket | None = None
    """The bucket files arrive in: ``None`` creates one (versioned, encrypted, private, TLS-only); a name or
    a bucket resource uses an existing one; a :class:`PipelineBucket` shares one created bucket."""

    input_suffixes: Sequence[str] | None = None
    """Key suffixes that trigger processing. Default: by input format (``.json``; ``.ndjson``/``.jsonl``;
    ``.csv``)."""

    output_prefix: str | None = None
    """Where results are written, mirroring the input's relative path. Default: ``processed/`` followed by
    the input prefix. Must lie outside every input filter on the bucket (recursion)."""

    input_format: FileFormat | FormatName = FileFormat.JSON
    """``json`` (a document or a top-level array), ``ndjson`` or ``csv`` (with a header row)."""

    output_format: FileFormat | FormatName = FileFormat.JSON
    """``json`` (the envelope with ``source_file``, ``processed_at``, ``record_count``, ``data``),
    ``ndjson`` or ``csv``."""

    schema: str | Path | Mapping[str, Any] | None = None
    """JSON Schema each record must satisfy: a path to a ``.json`` file or the schema itself."""

    invalid_records: InvalidRecordPolicy | InvalidRecordsName = InvalidRecordPolicy.REJECT_FILE
    """``reject-file``: one invalid record sends the whole file to the DLQ. ``write-rejects``: valid records
    are written, invalid ones go to ``<output>.rejects.ndjson``."""

    processor: str | None = None
    """Per-record transformation ``module:function`` (a record in, a record or ``None`` out)."""

    processor_code_dir: str | Path | None = None
    """Directory of user code shipped at the root of the function's archive, where ``processor`` lives."""

    max_file_bytes: int = defaults.MAX_FILE_BYTES
    """Files larger than this are rejected to the DLQ without being read."""

    memory_mb: int = defaults.MEMORY_MB
    """Function memory (128-10240 MB); CPU scales with it."""

    timeout_seconds: int = defaults.TIMEOUT_SECONDS
    """Function timeout (1-900 s)."""

    architecture: Architecture = defaults.ARCHITECTURE
    """``arm64`` (default, cheaper) or ``x86_64``."""

    python_runtime: str = defaults.PYTHON_RUNTIME
    """Lambda runtime, one of ``python3.11``, ``python3.12``, ``python3.13``."""

    reserved_concurrency: int | None = None
    """Reserved concurrent executions of the function; ``None`` leaves it unreserved."""

    log_level: str = defaults.LOG_LEVEL
    """Application log level (Powertools Logger)."""

    batch_size: int = defaults.BATCH_SIZE
    """Messages per invocation (1-10000; above 10 needs ``batching_window_seconds`` > 0)."""

    batching_window_seconds: int = defaults.BATCHING_WINDOW_SECONDS
    """How long the mapping gathers a batch (0-300 s)."""

    maximum_concurrency: int | None = None
    """Most concurrent invocations the queue may drive (2-1000); at most ``reserved_concurrency``."""

    visibility_timeout_seconds: int | None = None
    """Queue visibility timeout. Default: 6 x ``timeout_seconds`` + ``batching_window_seconds`` (AWS's
    recommendation); never below the function timeout."""

    message_retention_seconds: int = defaults.MESSAGE_RETENTION_SECONDS
    """How long an unprocessed file's message waits in the queue (60 s - 14 days)."""

    max_receive_count: int = defaults.MAX_RECEIVE_COUNT
    """Deliveries before a message is parked in the DLQ."""

    dlq_retention_seconds: int = defaults.DLQ_RETENTION_SECONDS
    """How long parked messages are kept; must exceed ``message_retention_seconds``."""

    encryption: Encryption = "sse-sqs"
    """``sse-sqs`` (SQS-managed keys) or ``kms`` (a customer-managed key for queues and alert topic;
    ``alias/aws/sqs`` is never used because S3 cannot write to queues encrypted with it)."""

    kms_key_arn: pulumi.Input[str] | None = None
    """With ``encryption="kms"``: an existing customer-managed key to use instead of creating one. Its
    policy must let ``s3.amazonaws.com`` and ``cloudwatch.amazonaws.com`` use it."""

    alert_emails: Sequence[str] = ()
    """Addresses subscribed to the alert topic (each must confirm the subscription)."""

    alert_topic_arn: pulumi.Input[str] | None = None
    """An existing SNS topic for alerts; when set no topic is created."""

    log_retention_days: int = defaults.LOG_RETENTION_DAYS
    """Retention of the function's log group."""

    queue_age_alarm_seconds: int = defaults.QUEUE_AGE_ALARM_SECONDS
    """Alarm when the oldest message in the queue is at least this old."""

    state_table: bool = True
    """Keep a DynamoDB table with each file's processing state (and use it for idempotency)."""

    notification_mode: NotificationMode = "s3"
    """``s3``: the bucket's notification configuration sends to the queue (filters on one bucket may not
    overlap). ``eventbridge``: the bucket sends events to EventBridge and a rule per pipeline routes them
    (overlapping filters and fan-out allowed)."""

    manage_bucket_notification: bool = True
    """Create the bucket notification for this pipeline. Set ``False`` when something else owns the
    bucket's single notification configuration (a :class:`PipelineGroup`, or your own resource merging
    :attr:`FileProcessingPipeline.notification_target`)."""

    bundle_dependencies: bool = True
    """Build a layer with the handler's third-party packages (pip, for the function's architecture and
    Python, cached). ``False`` relies on layers you add via ``extra_layers``."""

    powertools_layer_version: int = defaults.POWERTOOLS_LAYER_VERSION
    """Version of the AWS-managed Powertools V3 layer."""

    extra_layers: Sequence[pulumi.Input[str]] = ()
    """Further layer ARNs for the function (e.g. dependencies of your processor)."""

    tags: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Tags applied to every taggable resource, with ``filepipe:pipeline`` added."""

    # --- derived values: the one place that applies the defaults that depend on other fields --------
    def effective_suffixes(self) -> tuple[str, ...]:
        if self.input_suffixes is not None:
            return tuple(self.input_suffixes)
        return defaults.SUFFIXES_BY_FORMAT[FileFormat(self.input_format).value]

    def effective_output_prefix(self) -> str:
        if self.output_prefix is not None:
            return self.output_prefix
        return defaults.OUTPUT_ROOT + self.input_prefix

    def effective_visibility_timeout(self) -> int:
        if self.visibility_timeout_seconds is not None:
            return self.visibility_timeout_seconds
        return defaults.VISIBILITY_TIMEOUT_FACTOR * self.timeout_seconds + self.batching_window_seconds
