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
NotificationMode = Literal["s3", "eventbridge", "sns"]
Encryption = Literal["sse-sqs", "kms"]


@dataclass(frozen=True, kw_only=True)
class PrefixLifecycleRule:
    """A lifecycle rule for the objects under one prefix of a created bucket."""

    rule_id: str
    """Unique within the bucket (at most 255 characters)."""
    prefix: str
    """Key prefix the rule applies to, e.g. ``incoming/orders/``."""
    expiration_days: int | None = None
    """Delete objects this many days after creation."""
    transition_days: int | None = None
    """Move objects to ``transition_storage_class`` this many days after creation."""
    transition_storage_class: str = defaults.INPUT_TRANSITION_STORAGE_CLASS
    """Target storage class of the transition."""


@dataclass(frozen=True, kw_only=True)
class CircuitBreakerArgs:
    """When the handler's transient failures (a downstream outage) pass a threshold, pause the pipeline's
    event source mapping instead of burning retries into the DLQ, then probe and resume."""

    failure_threshold: int = defaults.BREAKER_FAILURE_THRESHOLD
    """Transient failures (the handler's ``FilesRetried``) per minute that open the breaker."""
    evaluation_periods: int = defaults.BREAKER_EVALUATION_PERIODS
    """Consecutive minutes at or over ``failure_threshold`` before it opens."""
    probe_failure_threshold: int = defaults.BREAKER_PROBE_FAILURE_THRESHOLD
    """Transient failures per minute that, while probing (half-open), open it again."""
    cool_down_seconds: int = defaults.BREAKER_COOL_DOWN_SECONDS
    """Wait in the open state before probing; doubled after each failed probe."""
    max_cool_down_seconds: int = defaults.BREAKER_MAX_COOL_DOWN_SECONDS
    """Longest wait in the open state; the queue's ``message_retention_seconds`` must exceed it plus the
    probe window (messages wait in the queue while the breaker is open)."""
    probe_window_seconds: int = defaults.BREAKER_PROBE_WINDOW_SECONDS
    """How long failures must stay under ``probe_failure_threshold`` while probing before it closes."""
    probe_concurrency: int = defaults.BREAKER_PROBE_CONCURRENCY
    """Maximum concurrency while probing (2, Lambda's minimum, up to the configured concurrency)."""
    max_requeues: int = defaults.BREAKER_MAX_REQUEUES
    """Fresh copies the handler may send of one message on its last delivery while the breaker is not
    closed (a probe counts as a delivery); beyond that the message is parked as without a breaker."""


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
    """Reserved concurrent executions of the function (at least 2); ``None`` leaves it unreserved. Without
    ``maximum_concurrency`` the queue's pollers are capped at the same number (at most 1000), because
    throttled receives count towards ``max_receive_count`` and would park healthy files."""

    log_level: str = defaults.LOG_LEVEL
    """Application log level: ``DEBUG``, ``INFO``, ``WARNING`` (or ``WARN``), ``ERROR``, ``CRITICAL`` (or
    ``FATAL``). Lambda's log filter and the Powertools logger each get their own name for it."""

    batch_size: int = defaults.BATCH_SIZE
    """Messages per invocation (1-10000; above 10 needs ``batching_window_seconds`` > 0)."""

    batching_window_seconds: int = defaults.BATCHING_WINDOW_SECONDS
    """How long the mapping gathers a batch (0-300 s)."""

    maximum_concurrency: int | None = None
    """Most concurrent invocations the queue may drive (2-1000); at most ``reserved_concurrency``.
    Default: ``reserved_concurrency`` (capped at 1000) when that is set, else unlimited."""

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

    circuit_breaker: CircuitBreakerArgs | None = None
    """Pause consumption while a downstream keeps failing (see :class:`CircuitBreakerArgs`); ``None``: no
    breaker."""

    notification_mode: NotificationMode = "s3"
    """``s3``: the bucket's notification configuration sends to the queue (filters on one bucket may not
    overlap). ``eventbridge``: the bucket sends events to EventBridge and a rule per pipeline routes them
    (overlapping filters and fan-out allowed). ``sns``: the bucket notifies one SNS topic and each
    pipeline's queue subscribes with a filter policy on the S3 event (overlapping routes are fan-out; size
    bounds route by object size). All pipelines of a bucket use ``sns`` or none does."""

    route_min_bytes: int | None = None
    """With ``notification_mode="sns"``: route only objects of at least this many bytes here (e.g. large
    files to a pipeline with more memory)."""

    route_max_bytes: int | None = None
    """With ``notification_mode="sns"``: route only objects smaller than this many bytes here. Bounds are
    half-open, so ``route_max_bytes=N`` on one pipeline and ``route_min_bytes=N`` on another split the
    files between them."""

    routing_topic_arn: pulumi.Input[str] | None = None
    """With ``notification_mode="sns"``: the bucket's routing topic to subscribe to. A
    :class:`PipelineGroup` passes its own; a pipeline that manages its bucket's notification creates one
    when this is unset."""

    manage_bucket_notification: bool = True
    """Create the bucket notification for this pipeline. Set ``False`` when something else owns the
    bucket's single notification configuration (a :class:`PipelineGroup`, or your own resource merging
    :attr:`FileProcessingPipeline.notification_target`)."""

    take_over_bucket_notification: bool = False
    """With an existing ``bucket`` (a name or an ``aws.s3.Bucket``) and ``manage_bucket_notification``:
    confirm that this pipeline may own the bucket's notification configuration. S3 keeps one per bucket,
    so it **replaces** every notification the bucket already has, and deleting the stack clears it. Left
    ``False``, such a pipeline is an error at construction."""

    input_expiration_days: int | None = None
    """Delete input files this many days after upload (a lifecycle rule on the input prefix). Must outlast
    ``dlq_retention_seconds`` so a parked file can still be replayed. Only on a bucket the pipeline (or
    its group) creates; on a shared :class:`PipelineBucket` use its ``prefix_rules``."""

    input_transition_days: int | None = None
    """Move input files to ``input_transition_storage_class`` this many days after upload (at least 30
    for the infrequent-access classes). Same bucket condition as ``input_expiration_days``."""

    input_transition_storage_class: str = defaults.INPUT_TRANSITION_STORAGE_CLASS
    """Storage class for ``input_transition_days``: ``STANDARD_IA``, ``ONEZONE_IA``,
    ``INTELLIGENT_TIERING``, ``GLACIER_IR``, ``GLACIER`` or ``DEEP_ARCHIVE``."""

    bundle_dependencies: bool = True
    """Build a layer with the handler's third-party packages (pip, for the function's architecture and
    Python, cached). ``False`` relies on layers you add via ``extra_layers``."""

    powertools_version: str = defaults.POWERTOOLS_VERSION
    """Powertools for AWS Lambda (Python) release (e.g. ``3.22.1``, or ``latest``) whose AWS-managed
    layer the function uses. Its ARN is read at deploy time from the public SSM parameter
    ``/aws/service/powertools/python/<architecture>/<runtime>/<version>`` of the region, so it is right
    for every commercial region and architecture; a region without that layer fails at preview."""

    powertools_layer_arn: pulumi.Input[str] | None = None
    """The Powertools layer's ARN, instead of the SSM lookup. Required outside the commercial partition
    (China and GovCloud publish the layer from other accounts and have no such SSM parameter)."""

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

    def effective_maximum_concurrency(self) -> int | None:
        if self.maximum_concurrency is not None or self.reserved_concurrency is None:
            return self.maximum_concurrency
        return min(self.reserved_concurrency, defaults.MAXIMUM_CONCURRENCY_RANGE[1])

    def log_levels(self) -> tuple[str, str]:
        """``(Lambda application log level, Python/Powertools log level)`` for ``log_level``."""
        return defaults.LOG_LEVELS[self.log_level.upper()]

    def input_lifecycle(self, rule_id: str) -> PrefixLifecycleRule | None:
        """The lifecycle rule for this pipeline's input prefix, if it asks for one."""
        if self.input_expiration_days is None and self.input_transition_days is None:
            return None
        return PrefixLifecycleRule(
            rule_id=rule_id,
            prefix=self.input_prefix,
            expiration_days=self.input_expiration_days,
            transition_days=self.input_transition_days,
            transition_storage_class=self.input_transition_storage_class,
        )

    def effective_timeout_margin_ms(self) -> int:
        """How long before the timeout the handler stops taking records (``FILEPIPE_TIMEOUT_MARGIN_MS``).

        At most a quarter of a short timeout, so a small function keeps three quarters for work."""
        return min(defaults.TIMEOUT_MARGIN_MS, self.timeout_seconds * 250)

    def usable_seconds(self) -> float:
        """The work one invocation can do before the handler stops: the timeout minus its margin."""
        return self.timeout_seconds - self.effective_timeout_margin_ms() / 1000

    def effective_visibility_timeout(self) -> int:
        if self.visibility_timeout_seconds is not None:
            return self.visibility_timeout_seconds
        return defaults.VISIBILITY_TIMEOUT_FACTOR * self.timeout_seconds + self.batching_window_seconds
