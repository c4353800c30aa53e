"""The public inputs of the filepipe components, as Pulumi's component analyzer reads them.

Every component in every Pulumi language gets these from the schema the analyzer infers, so they use only
what it maps exactly: TypedDicts (``NotRequired`` marks an optional field, the string after a field is its
description), ``StrEnum`` choices and no unions. Python programs call them like the classes they look like:
``PipelineArgs(input_prefix=...)`` builds the dict. The defaults of the optional fields are applied in one
place, :mod:`filepipe.resolved`.

Fields that decide the pipeline's shape or are validated before deploy (prefixes, formats, sizes,
timeouts) are plain values: a value that is only known at deploy time cannot be checked at
``pulumi preview``. Fields that are merely passed through to AWS (tags, an existing topic ARN, a KMS key)
accept ``pulumi.Input``.

No ``from __future__ import annotations`` here: the analyzer reads the annotations as live objects.
"""

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from .handler.settings import (
    FileFormat,
    InputCompression,
    InvalidRecordPolicy,
    OutputCompression,
    OutputFormat,
    ParquetCompression,
)


class Architecture(StrEnum):
    """The function's instruction set."""

    ARM64 = "arm64"
    """Graviton: cheaper per GB-second and as fast for this I/O-bound work (the default)."""
    X86_64 = "x86_64"
    """x86-64, for processors with native dependencies built only for it."""


class Encryption(StrEnum):
    """How the queues, the state table and the alert topic are encrypted."""

    SSE_SQS = "sse-sqs"
    """SQS-managed keys (the default)."""
    KMS = "kms"
    """A customer-managed KMS key (created, or given as ``kms_key_arn``)."""


class NotificationMode(StrEnum):
    """How the bucket's events reach a pipeline's queue."""

    S3 = "s3"
    """The bucket's notification configuration sends to the queue (filters on one bucket may not overlap)."""
    EVENTBRIDGE = "eventbridge"
    """The bucket sends events to EventBridge; a rule per pipeline routes them (overlaps allowed)."""
    SNS = "sns"
    """The bucket notifies one SNS topic; each queue subscribes with a filter policy (size routing)."""


class PrefixLifecycleRule(TypedDict):
    """A lifecycle rule for the objects under one prefix of a created bucket."""

    rule_id: str
    """Unique within the bucket (at most 255 characters)."""
    prefix: str
    """Key prefix the rule applies to, e.g. ``incoming/orders/``."""
    expiration_days: NotRequired[int]
    """Delete objects this many days after creation. Default: never."""
    transition_days: NotRequired[int]
    """Move objects to ``transition_storage_class`` this many days after creation. Default: never."""
    transition_storage_class: NotRequired[str]
    """Target storage class of the transition. Default: ``STANDARD_IA``."""


class CircuitBreakerArgs(TypedDict):
    """When the handler's transient failures (a downstream outage) pass a threshold, pause the pipeline's
    event source mapping instead of burning retries into the DLQ, then probe and resume. An empty value
    (``CircuitBreakerArgs()``) is a breaker with the default settings."""

    failure_threshold: NotRequired[int]
    """Transient failures (the handler's ``FilesRetried``) per minute that open the breaker."""
    evaluation_periods: NotRequired[int]
    """Consecutive minutes at or over ``failure_threshold`` before it opens."""
    probe_failure_threshold: NotRequired[int]
    """Transient failures per minute that, while probing (half-open), open it again."""
    cool_down_seconds: NotRequired[int]
    """Wait in the open state before probing; doubled after each failed probe."""
    max_cool_down_seconds: NotRequired[int]
    """Longest wait in the open state; the queue's ``message_retention_seconds`` must exceed it plus the
    probe window (messages wait in the queue while the breaker is open)."""
    probe_window_seconds: NotRequired[int]
    """How long failures must stay under ``probe_failure_threshold`` while probing before it closes.
   """
    probe_concurrency: NotRequired[int]
    """Maximum concurrency while probing (2, Lambda's minimum, up to the configured concurrency).
   """
    max_requeues: NotRequired[int]
    """Fresh copies the handler may send of one message on its last delivery while the breaker is not
    closed (a probe counts as a delivery); beyond that the message is parked as without a breaker."""


class PipelineArgs(TypedDict):
    """Inputs of one file-processing pipeline. Only ``input_prefix`` is required."""

    input_prefix: str
    """Key prefix files arrive under, e.g. ``incoming/transactions/``. Must end with ``/``."""

    pipeline_name: NotRequired[str]
    """Name used in logs, metrics, alarms and the dashboard. Default: the component's resource name."""

    bucket_name: NotRequired[pulumi.Input[str]]
    """An existing bucket to receive files in, by name (also a shared ``PipelineBucket``'s
    ``bucket_name``). Default: unset with ``bucket`` unset, the pipeline creates one (versioned,
    encrypted, private, TLS-only)."""

    bucket: NotRequired[aws.s3.Bucket]
    """An existing bucket to receive files in, as a resource (instead of ``bucket_name``)."""

    input_suffixes: NotRequired[Sequence[str]]
    """Key suffixes that trigger processing. Default: by input format (``.json``; ``.ndjson``/``.jsonl``;
    ``.csv``) and ``input_compression``: with ``auto`` each plain and compressed (``.csv``, ``.csv.gz``,
    ``.csv.zst``), with ``gzip`` or ``zstd`` only that compression's (``.csv.gz``), with ``none`` only the
    plain ones."""

    output_prefix: NotRequired[str]
    """Where results are written, mirroring the input's relative path. Default: ``processed/`` followed by
    the input prefix. Must lie outside every input filter on the bucket (recursion)."""

    input_format: NotRequired[FileFormat]
    """``json`` (a document or a top-level array, the default), ``ndjson`` or ``csv`` (with a header row)."""

    input_compression: NotRequired[InputCompression]
    """``auto`` (the default: by the key's suffix ``.gz`` or ``.zst``, else by the object's
    ``Content-Encoding``), ``none``, ``gzip`` or ``zstd``. Decompressed as it streams; ``max_file_bytes``
    applies to the decompressed bytes too."""

    output_format: NotRequired[OutputFormat]
    """``json`` (the envelope with ``source_file``, ``processed_at``, ``record_count``, ``data``; the
    default), ``ndjson``, ``csv`` or ``parquet`` (typed columns from the schema, else from the first 8,192
    records; such a pipeline's function gets pyarrow in a layer of its own). A Parquet file must be
    written in one invocation: it is not continued."""

    parquet_compression: NotRequired[ParquetCompression]
    """Parquet output only: ``snappy`` (the default: fast, what most readers expect) or ``zstd``
    (smaller files, a little slower to write)."""

    parquet_row_group_rows: NotRequired[int]
    """Parquet output only: rows per row group (default 32,768). The function holds one row group in
    memory; readers skip and parallelise by row group."""

    output_compression: NotRequired[OutputCompression]
    """``none`` (the default), ``gzip`` or ``zstd``: the output is written compressed, under its key with
    ``.gz`` or ``.zst`` and with that ``Content-Encoding``. (The rejects object is not compressed.)"""

    schema: NotRequired[str]
    """Path to a ``.json`` file holding the JSON Schema each record must satisfy."""

    schema_document: NotRequired[Mapping[str, Any]]
    """The JSON Schema each record must satisfy, as a document (instead of ``schema``)."""

    invalid_records: NotRequired[InvalidRecordPolicy]
    """``reject-file`` (the default): one invalid record sends the whole file to the DLQ.
    ``write-rejects``: valid records are written, invalid ones go to ``<output>.rejects.ndjson``."""

    processor: NotRequired[str]
    """Per-record transformation ``module:function`` (a record in, a record or ``None`` out)."""

    file_processor: NotRequired[str]
    """Whole-file processor ``module:function``, instead of reading records: called with the file as a
    binary stream, an ``outputs`` opener (objects under ``<output prefix><input key>/``) and a context.
    Not with ``processor`` or a schema."""

    processor_code_dir: NotRequired[str]
    """Directory of user code shipped at the root of the function's archive, where ``processor`` or
    ``file_processor`` lives."""

    max_file_bytes: NotRequired[int]
    """Files larger than this are rejected to the DLQ without being read."""

    memory_mb: NotRequired[int]
    """Function memory (128-10240 MB); CPU scales with it."""

    timeout_seconds: NotRequired[int]
    """Function timeout (1-900 s)."""

    architecture: NotRequired[Architecture]
    """``arm64`` (the default, cheaper) or ``x86_64``."""

    python_runtime: NotRequired[str]
    """Lambda runtime, one of ``python3.11``, ``python3.12``, ``python3.13`` (the default)."""

    reserved_concurrency: NotRequired[int]
    """Reserved concurrent executions of the function (at least 2); unset leaves it unreserved. Without
    ``maximum_concurrency`` the queue's pollers are capped at the same number (at most 1000), because
    throttled receives count towards ``max_receive_count`` and would park healthy files."""

    log_level: NotRequired[str]
    """Application log level: ``DEBUG``, ``INFO`` (the default), ``WARNING`` (or ``WARN``), ``ERROR``,
    ``CRITICAL`` (or ``FATAL``). Lambda's log filter and the Powertools logger each get their own name
    for it."""

    batch_size: NotRequired[int]
    """Messages per invocation (1-10000; above 10 needs ``batching_window_seconds`` > 0)."""

    batching_window_seconds: NotRequired[int]
    """How long the mapping gathers a batch (0-300 s)."""

    maximum_concurrency: NotRequired[int]
    """Most concurrent invocations the queue may drive (2-1000); at most ``reserved_concurrency``.
    Default: ``reserved_concurrency`` (capped at 1000) when that is set, else unlimited."""

    visibility_timeout_seconds: NotRequired[int]
    """Queue visibility timeout. Default: 6 x ``timeout_seconds`` + ``batching_window_seconds`` (AWS's
    recommendation); never below the function timeout."""

    message_retention_seconds: NotRequired[int]
    """How long an unprocessed file's message waits in the queue (60 s - 14 days)."""

    max_receive_count: NotRequired[int]
    """Deliveries before a message is parked in the DLQ."""

    dlq_retention_seconds: NotRequired[int]
    """How long parked messages are kept; must exceed ``message_retention_seconds``."""

    encryption: NotRequired[Encryption]
    """``sse-sqs`` (SQS-managed keys, the default) or ``kms`` (a customer-managed key for queues and alert
    topic; ``alias/aws/sqs`` is never used because S3 cannot write to queues encrypted with it)."""

    kms_key_arn: NotRequired[pulumi.Input[str]]
    """With ``encryption="kms"``: an existing customer-managed key to use instead of creating one. Its
    policy must let ``s3.amazonaws.com`` and ``cloudwatch.amazonaws.com`` use it."""

    alert_emails: NotRequired[Sequence[str]]
    """Addresses subscribed to the alert topic (each must confirm the subscription)."""

    alert_topic_arn: NotRequired[pulumi.Input[str]]
    """An existing SNS topic for alerts; when set no topic is created."""

    log_retention_days: NotRequired[int]
    """Retention of the function's log group."""

    queue_age_alarm_seconds: NotRequired[int]
    """Alarm when the oldest message in the queue is at least this old."""

    state_table: NotRequired[bool]
    """Keep a DynamoDB table with each file's processing state (and use it for idempotency). On unless
    set false."""

    circuit_breaker: NotRequired[CircuitBreakerArgs]
    """Pause consumption while a downstream keeps failing (see ``CircuitBreakerArgs``). Default: no
    breaker."""

    notification_mode: NotRequired[NotificationMode]
    """``s3`` (the default): the bucket's notification configuration sends to the queue (filters on one
    bucket may not overlap). ``eventbridge``: the bucket sends events to EventBridge and a rule per pipeline
    routes them (overlapping filters and fan-out allowed). ``sns``: the bucket notifies one SNS topic and
    each pipeline's queue subscribes with a filter policy on the S3 event (overlapping routes are fan-out;
    size bounds route by object size). All pipelines of a bucket use ``sns`` or none does."""

    route_min_bytes: NotRequired[int]
    """With ``notification_mode="sns"``: route only objects of at least this many bytes here (e.g. large
    files to a pipeline with more memory)."""

    route_max_bytes: NotRequired[int]
    """With ``notification_mode="sns"``: route only objects smaller than this many bytes here. Bounds are
    half-open, so ``route_max_bytes=N`` on one pipeline and ``route_min_bytes=N`` on another split the
    files between them."""

    routing_topic_arn: NotRequired[pulumi.Input[str]]
    """With ``notification_mode="sns"``: the bucket's routing topic to subscribe to. A ``PipelineGroup``
    passes its own; a pipeline that manages its bucket's notification creates one when this is unset."""

    manage_bucket_notification: NotRequired[bool]
    """Create the bucket notification for this pipeline (the default). Set false when something else owns
    the bucket's single notification configuration (a ``PipelineGroup``, or your own resource merging the
    Python attribute ``FileProcessingPipeline.notification_target``)."""

    take_over_bucket_notification: NotRequired[bool]
    """With an existing bucket (``bucket_name`` or ``bucket``) and ``manage_bucket_notification``: confirm
    that this pipeline may own the bucket's notification configuration. S3 keeps one per bucket, so it
    **replaces** every notification the bucket already has, and deleting the stack clears it. Left false,
    such a pipeline is an error at construction."""

    input_expiration_days: NotRequired[int]
    """Delete input files this many days after upload (a lifecycle rule on the input prefix). Must outlast
    ``dlq_retention_seconds`` so a parked file can still be replayed. Only on a bucket the pipeline (or
    its group) creates; on a shared ``PipelineBucket`` use its ``prefix_rules``."""

    input_transition_days: NotRequired[int]
    """Move input files to ``input_transition_storage_class`` this many days after upload (at least 30
    for the infrequent-access classes). Same bucket condition as ``input_expiration_days``."""

    input_transition_storage_class: NotRequired[str]
    """Storage class for ``input_transition_days``: ``STANDARD_IA`` (the default), ``ONEZONE_IA``,
    ``INTELLIGENT_TIERING``, ``GLACIER_IR``, ``GLACIER`` or ``DEEP_ARCHIVE``."""

    bundle_dependencies: NotRequired[bool]
    """Build a layer with the handler's third-party packages (pip, for the function's architecture and
    Python, cached; the default). False relies on layers you add via ``extra_layers``."""

    powertools_version: NotRequired[str]
    """Powertools for AWS Lambda (Python) release (e.g. ``3.22.1``, or ``latest``) whose AWS-managed
    layer the function uses. Its ARN is read at deploy time from the public SSM parameter
    ``/aws/service/powertools/python/<architecture>/<runtime>/<version>`` of the region, so it is right
    for every commercial region and architecture; a region without that layer fails at preview."""

    powertools_layer_arn: NotRequired[pulumi.Input[str]]
    """The Powertools layer's ARN, instead of the SSM lookup. Required outside the commercial partition
    (China and GovCloud publish the layer from other accounts and have no such SSM parameter)."""

    extra_layers: NotRequired[Sequence[pulumi.Input[str]]]
    """Further layer ARNs for the function (e.g. dependencies of your processor)."""

    tags: NotRequired[Mapping[str, pulumi.Input[str]]]
    """Tags applied to every taggable resource, with ``filepipe:pipeline`` added."""


class PipelineBucketArgs(TypedDict):
    """Inputs of ``PipelineBucket``. Every field is optional."""

    bucket_name: NotRequired[str]
    """Physical bucket name. Default: Pulumi auto-names it (recommended: names are global)."""

    force_destroy: NotRequired[bool]
    """Allow ``pulumi destroy`` to delete a non-empty bucket (its files!)."""

    tags: NotRequired[Mapping[str, pulumi.Input[str]]]
    """Tags for the bucket."""

    abort_incomplete_multipart_upload_days: NotRequired[int]
    """Remove the parts of multipart uploads not completed this many days after they started (they are
    billed but invisible). 0 keeps them."""

    noncurrent_version_expiration_days: NotRequired[int]
    """Delete overwritten and deleted versions this many days after they stopped being current (and
    then the delete markers left without versions). 0 keeps every version forever."""

    prefix_rules: NotRequired[Sequence[PrefixLifecycleRule]]
    """Expiration or transition rules per prefix. Pipelines created with the bucket add theirs
    (``input_expiration_days``, ``input_transition_days``)."""


class PipelineGroupArgs(TypedDict):
    """Inputs of ``PipelineGroup``."""

    pipelines: Mapping[str, PipelineArgs]
    """The pipelines, by name. Their ``bucket_name`` and ``bucket`` must be unset: the group provides it."""

    bucket_name: NotRequired[pulumi.Input[str]]
    """An existing bucket for the pipelines, by name. Default: unset with ``bucket`` unset, the group
    creates a hardened bucket."""

    bucket: NotRequired[aws.s3.Bucket]
    """An existing bucket for the pipelines, as a resource (instead of ``bucket_name``)."""

    bucket_args: NotRequired[PipelineBucketArgs]
    """Settings of the created bucket (ignored with an existing bucket). The pipelines' input
    lifecycle rules are added to its ``prefix_rules``."""

    take_over_bucket_notification: NotRequired[bool]
    """With an existing bucket: confirm that the group may own the bucket's single notification
    configuration, which **replaces** every notification the bucket has and is cleared when the stack is
    deleted. Left false, a group on an existing bucket is an error."""
