"""Checks run before anything is deployed. Each error names the field and the fix.

Pure functions over plain values, so they are tested without Pulumi.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import defaults
from .dependencies import AMAZON_LINUX_2_RUNTIMES
from .errors import PipelineConfigError
from .handler.capacity import expected_invocations, expected_seconds
from .handler.keys import compressed_suffixes
from .handler.settings import FileFormat, InputCompression, OutputCompression, OutputFormat
from .processor_source import declared_non_object
from .resolved import LifecycleRule, PipelineSettings
from .routing import Route, filter_policy, filter_policy_problems, notified_prefixes


@dataclass(frozen=True)
class InputFilter:
    """What one pipeline listens to on a bucket: a prefix and any of several suffixes."""

    pipeline: str
    prefix: str
    suffixes: tuple[str, ...]
    output_prefix: str
    mode: str
    min_bytes: int | None = None
    max_bytes: int | None = None

    @property
    def route(self) -> Route:
        """What the pipeline receives from the bucket's routing topic (``sns`` mode)."""
        return Route(self.pipeline, self.prefix, self.suffixes, self.min_bytes, self.max_bytes)

    def describe(self) -> str:
        return f"{self.prefix}*{'|'.join(self.suffixes)}"

    def overlaps(self, other: InputFilter) -> bool:
        """True when some key could match both filters (S3 rejects such configurations)."""
        return _prefixes_overlap(self.prefix, other.prefix) and any(
            _suffixes_overlap(mine, theirs) for mine in self.suffixes for theirs in other.suffixes
        )

    def would_consume_output_of(self, other: InputFilter) -> bool:
        """True when files written under ``other``'s output prefix could match this filter.

        Outputs keep the input's relative path, so the suffixes are not a safe separation: any overlap
        of the output prefix with the input prefix is a potential Lambda -> S3 -> Lambda loop.
        """
        return _prefixes_overlap(self.prefix, other.output_prefix)


def _prefixes_overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def _suffixes_overlap(a: str, b: str) -> bool:
    return a.endswith(b) or b.endswith(a)


def _in_range(name: str, value: int, bounds: tuple[int, int], unit: str = "") -> None:
    low, high = bounds
    if not low <= value <= high:
        raise PipelineConfigError(f"{name}={value}{unit} is outside AWS's range {low}..{high}{unit}.")


def validate_pipeline(pipeline: str, args: PipelineSettings) -> InputFilter:
    """Validate one pipeline's inputs; return its input filter for the bucket-level checks."""
    where = f"pipeline {pipeline!r}:"
    try:
        _validate(args)
    except PipelineConfigError as error:
        raise PipelineConfigError(f"{where} {error}") from None
    return InputFilter(
        pipeline=pipeline,
        prefix=args.input_prefix,
        suffixes=args.effective_suffixes(),
        output_prefix=args.effective_output_prefix(),
        mode=args.notification_mode,
        min_bytes=args.route_min_bytes,
        max_bytes=args.route_max_bytes,
    )


def _validate(args: PipelineSettings) -> None:
    _validate_keys(args)
    _validate_formats(args)
    _validate_output(args)
    _validate_function(args)
    _validate_capacity(args)
    _validate_mapping(args)
    _validate_queues(args)
    _validate_alerts(args)
    _validate_input_lifecycle(args)
    _validate_route(args)
    _validate_circuit_breaker(args)


def _validate_keys(args: PipelineSettings) -> None:
    if not args.input_prefix or not args.input_prefix.endswith("/") or args.input_prefix.startswith("/"):
        raise PipelineConfigError(
            f"input_prefix={args.input_prefix!r} must be a folder-like prefix such as 'incoming/orders/': "
            "not empty (a whole-bucket filter would also match the outputs), no leading '/', ending in '/'."
        )
    output_prefix = args.effective_output_prefix()
    if not output_prefix.endswith("/") or output_prefix.startswith("/"):
        raise PipelineConfigError(
            f"output_prefix={output_prefix!r} must end with '/' and not start with '/', e.g. 'processed/'."
        )
    suffixes = args.effective_suffixes()
    if not suffixes or any(not suffix for suffix in suffixes):
        raise PipelineConfigError("input_suffixes must list at least one non-empty suffix, e.g. ['.json'].")
    compression = InputCompression(args.input_compression)
    marks = compressed_suffixes(compression)
    if compression in (InputCompression.GZIP, InputCompression.ZSTD) and not any(
        suffix.lower().endswith(marks) for suffix in suffixes
    ):
        raise PipelineConfigError(
            f"input_compression={compression.value!r} but input_suffixes={list(suffixes)!r} has no"
            f" {marks[0]} suffix: every file would be read as {compression.value}. Add it (e.g."
            f" '.csv{marks[0]}') or use input_compression='auto'."
        )
    if _prefixes_overlap(args.input_prefix, output_prefix):
        raise PipelineConfigError(
            f"output_prefix={output_prefix!r} overlaps input_prefix={args.input_prefix!r}: every output "
            "would trigger the pipeline again (a recursive loop AWS stops only after ~16 rounds). Choose an "
            "output prefix outside the input prefix, e.g. 'processed/" + args.input_prefix + "'."
        )


def _validate_formats(args: PipelineSettings) -> None:
    for name, spec in (("processor", args.processor), ("file_processor", args.file_processor)):
        module, _, function = (spec or "x:x").partition(":")
        if not module or not function:
            raise PipelineConfigError(
                f"{name}={spec!r} must be 'module:function', e.g. 'transforms:normalise'."
            )
    if args.file_processor is not None:
        has_schema = args.schema is not None or args.schema_document is not None
        for other, value in (("processor", args.processor), ("schema", "set" if has_schema else None)):
            if value is not None:
                raise PipelineConfigError(
                    f"file_processor={args.file_processor!r} with a {other}: a whole-file processor reads no"
                    f" records, so the {other} would never run. Use one or the other."
                )
    if args.processor_code_dir is not None and not Path(args.processor_code_dir).is_dir():
        raise PipelineConfigError(f"processor_code_dir={str(args.processor_code_dir)!r} is not a directory.")
    load_schema(args.schema, args.schema_document)
    if args.max_file_bytes < 1:
        raise PipelineConfigError(f"max_file_bytes={args.max_file_bytes} must be positive.")


def _validate_output(args: PipelineSettings) -> None:
    output = OutputFormat(args.output_format)
    if (
        output is OutputFormat.PARQUET
        and OutputCompression(args.output_compression) is not OutputCompression.NONE
    ):
        raise PipelineConfigError(
            f"output_compression={str(args.output_compression)!r} with output_format='parquet': Parquet compresses"
            " its columns inside the file, and readers cannot open a compressed Parquet file. Use"
            " parquet_compression ('snappy' or 'zstd') instead."
        )
    if output is OutputFormat.PARQUET and args.python_runtime in AMAZON_LINUX_2_RUNTIMES:
        raise PipelineConfigError(
            f"output_format='parquet' with python_runtime={args.python_runtime!r}: that runtime runs on Amazon"
            " Linux 2 (glibc 2.26), which cannot load the pinned pyarrow's wheels (they need glibc 2.28)."
            " Use python3.12 or later."
        )
    if output in (OutputFormat.PARQUET, OutputFormat.CSV) and args.processor is not None:
        declared = declared_non_object(args.processor, args.processor_code_dir or ".")
        if declared is not None:
            raise PipelineConfigError(
                f"processor={args.processor!r} is declared to return {declared}, but output_format="
                f"{output.value!r} writes one object per row. Return a dict, or choose output_format='ndjson'."
            )
    _in_range("parquet_row_group_rows", args.parquet_row_group_rows, defaults.PARQUET_ROW_GROUP_ROWS_RANGE)


def load_schema(path_name: str | None, document: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Return the JSON Schema as a dict: read from the file at ``path_name``, or ``document`` itself."""
    if path_name is None and document is None:
        return None
    if path_name is not None:
        path = Path(path_name)
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PipelineConfigError(f"schema file {str(path)!r} does not exist.") from None
        except json.JSONDecodeError as error:
            raise PipelineConfigError(f"schema file {str(path)!r} is not valid JSON: {error}.") from None
    else:
        loaded = dict(document) if isinstance(document, Mapping) else document
    if not isinstance(loaded, dict):
        raise PipelineConfigError("schema must be a JSON object (a JSON Schema document).")
    return loaded


def _validate_function(args: PipelineSettings) -> None:
    _in_range("memory_mb", args.memory_mb, defaults.MEMORY_RANGE, " MB")
    _in_range("timeout_seconds", args.timeout_seconds, defaults.TIMEOUT_RANGE, " s")
    if args.python_runtime not in defaults.SUPPORTED_RUNTIMES:
        allowed = ", ".join(defaults.SUPPORTED_RUNTIMES)
        raise PipelineConfigError(f"python_runtime={args.python_runtime!r}; use one of {allowed}.")
    smallest_poller_cap = defaults.MAXIMUM_CONCURRENCY_RANGE[0]
    if args.reserved_concurrency is not None and args.reserved_concurrency < smallest_poller_cap:
        raise PipelineConfigError(
            f"reserved_concurrency={args.reserved_concurrency} must be at least {smallest_poller_cap}: the "
            f"queue's pollers cannot be capped below {smallest_poller_cap}, so a smaller reservation "
            "throttles them and every throttled receive counts towards max_receive_count (healthy files "
            "end in the DLQ). To pause processing, disable the event source mapping instead."
        )
    if args.log_level.upper() not in defaults.LOG_LEVELS:
        raise PipelineConfigError(
            f"log_level={args.log_level!r}; use one of {', '.join(defaults.LOG_LEVELS)}."
        )
    if not re.fullmatch(r"3\.\d+\.\d+|latest", args.powertools_version):
        raise PipelineConfigError(
            f"powertools_version={args.powertools_version!r} must be a Powertools 3 release such as "
            f"{defaults.POWERTOOLS_VERSION!r}, or 'latest' (the layer is Powertools V3)."
        )


@dataclass(frozen=True)
class Capacity:
    """What a file at ``max_file_bytes`` asks of one pipeline's function (estimated by the handler's
    measured rates, without schema or processor: a real file needs at least this)."""

    input_format: FileFormat
    seconds: float
    """Expected time for a file at the cap, at the function's memory."""
    usable_seconds: float
    """One invocation's time for work: the timeout minus the handler's margin."""
    invocations: int
    """Invocations a continued file at the cap needs."""
    fitting_bytes: int
    """The largest file one invocation is expected to finish."""

    @property
    def fits(self) -> bool:
        return self.invocations == 1

    def describe(self, args: PipelineSettings) -> str:
        """The cap's expected time against one invocation's, with the inputs that decide them."""
        return (
            f"a {self.input_format.value} file of max_file_bytes={args.max_file_bytes} "
            f"({args.max_file_bytes / _MB:.0f} MB) needs about {self.seconds:.0f} s at "
            f"memory_mb={args.memory_mb}, and one invocation has about {self.usable_seconds:.0f} s "
            f"(timeout_seconds={args.timeout_seconds} minus the handler's "
            f"{args.effective_timeout_margin_ms() / 1000:g} s margin)"
        )


_MB = 10**6
"""The unit the handler's rates are given in (megabytes)."""


def capacity(args: PipelineSettings) -> Capacity:
    """How a file at the pipeline's ``max_file_bytes`` fits its function's memory and timeout."""
    input_format = FileFormat(args.input_format)
    output_format = OutputFormat(args.output_format)
    usable = args.usable_seconds()
    seconds = expected_seconds(args.max_file_bytes, input_format, args.memory_mb, output_format)
    # The rates are linear in size, so the time of one megabyte gives what one invocation reads.
    fitting = int(usable / expected_seconds(_MB, input_format, args.memory_mb, output_format) * _MB)
    return Capacity(
        input_format=input_format,
        seconds=seconds,
        usable_seconds=usable,
        invocations=expected_invocations(
            args.max_file_bytes, input_format, args.memory_mb, usable, output_format
        ),
        fitting_bytes=fitting,
    )


def _validate_capacity(args: PipelineSettings) -> None:
    # Without the state table there is nowhere to keep a checkpoint: a file that outgrows one invocation
    # is parked after a whole invocation's work, every time. The pipeline's own cap must fit. So must a
    # Parquet output's, which is never continued (its footer indexes every row group).
    parquet = OutputFormat(args.output_format) is OutputFormat.PARQUET
    if args.state_table and not parquet:
        return
    needs = capacity(args)
    if needs.fits:
        return
    top = defaults.TIMEOUT_RANGE[1]
    if parquet:
        raise PipelineConfigError(
            f"{needs.describe(args)} with output_format='parquet', and a Parquet file cannot be continued in"
            f" the next invocation: such a file would be parked. Raise timeout_seconds (up to {top}) or"
            f" memory_mb, or lower max_file_bytes (to at most {needs.fitting_bytes})."
        )
    raise PipelineConfigError(
        f"{needs.describe(args)}, and without the state table a file cannot be continued in the next "
        f"invocation: such a file would be parked. Raise timeout_seconds (up to {top}) or memory_mb, "
        f"lower max_file_bytes (to at most {needs.fitting_bytes}), or keep state_table=True so such a file "
        "is continued."
    )


def capacity_warnings(pipeline: str, args: PipelineSettings) -> list[str]:
    """What a pipeline's owner should know about its largest files (shown at preview, not an error):
    a file at the cap that needs several invocations, and for JSON the documents that cannot."""
    if not args.state_table:
        return []  # a cap that does not fit one invocation is an error then (_validate_capacity)
    needs = capacity(args)
    if needs.fits:
        return []
    message = (
        f"pipeline {pipeline!r}: {needs.describe(args)}: such a file is continued across about "
        f"{needs.invocations} invocations. Raise memory_mb or timeout_seconds to need fewer, or lower "
        "max_file_bytes."
    )
    if needs.input_format is FileFormat.JSON:
        message += (
            " A JSON document that is not an array is one record and cannot be continued: it must fit one "
            f"invocation (about {needs.fitting_bytes / _MB:.0f} MB at this memory and timeout), or it is "
            "parked."
        )
    return [message]


def _validate_mapping(args: PipelineSettings) -> None:
    _in_range("batch_size", args.batch_size, defaults.BATCH_SIZE_RANGE)
    _in_range("batching_window_seconds", args.batching_window_seconds, defaults.BATCHING_WINDOW_RANGE, " s")
    if args.batch_size > defaults.BATCH_SIZE_WITHOUT_WINDOW and args.batching_window_seconds == 0:
        raise PipelineConfigError(
            f"batch_size={args.batch_size} needs batching_window_seconds > 0: Lambda accepts batches "
            f"above {defaults.BATCH_SIZE_WITHOUT_WINDOW} from SQS only with a batching window."
        )
    if args.maximum_concurrency is not None:
        # An explicit value; the derived one (from reserved_concurrency) is in range by construction.
        _in_range("maximum_concurrency", args.maximum_concurrency, defaults.MAXIMUM_CONCURRENCY_RANGE)
        if args.reserved_concurrency is not None and args.maximum_concurrency > args.reserved_concurrency:
            raise PipelineConfigError(
                f"maximum_concurrency={args.maximum_concurrency} exceeds reserved_concurrency="
                f"{args.reserved_concurrency}: the surplus invocations would be throttled. Lower "
                "maximum_concurrency or raise reserved_concurrency."
            )


def _validate_queues(args: PipelineSettings) -> None:
    visibility = args.effective_visibility_timeout()
    _in_range("visibility_timeout_seconds", visibility, defaults.VISIBILITY_TIMEOUT_RANGE, " s")
    if visibility < args.timeout_seconds:
        raise PipelineConfigError(
            f"visibility_timeout_seconds={visibility} is below timeout_seconds={args.timeout_seconds}: Lambda "
            "refuses the event source mapping. Use at least 6 x the function timeout (leave it unset to "
            "get that default)."
        )
    _in_range("message_retention_seconds", args.message_retention_seconds, defaults.RETENTION_RANGE, " s")
    _in_range("dlq_retention_seconds", args.dlq_retention_seconds, defaults.RETENTION_RANGE, " s")
    if args.dlq_retention_seconds <= args.message_retention_seconds:
        raise PipelineConfigError(
            f"dlq_retention_seconds={args.dlq_retention_seconds} must be greater than "
            f"message_retention_seconds={args.message_retention_seconds}: a message keeps its original "
            "enqueue time in the DLQ and would expire there early. Use 1209600 (14 days)."
        )
    _in_range("max_receive_count", args.max_receive_count, defaults.MAX_RECEIVE_COUNT_RANGE)
    if args.kms_key_arn is not None and args.encryption != "kms":
        raise PipelineConfigError("kms_key_arn is set but encryption is not 'kms'; set encryption='kms'.")
    if isinstance(args.kms_key_arn, str) and args.kms_key_arn.endswith("alias/aws/sqs"):
        raise PipelineConfigError(
            "kms_key_arn is the AWS-managed key alias/aws/sqs, which S3 cannot use to send notifications. "
            "Use a customer-managed key or encryption='sse-sqs'."
        )


def _validate_route(args: PipelineSettings) -> None:
    bounds = {"route_min_bytes": args.route_min_bytes, "route_max_bytes": args.route_max_bytes}
    if args.notification_mode != "sns":
        if any(value is not None for value in bounds.values()) or args.routing_topic_arn is not None:
            raise PipelineConfigError(
                "route_min_bytes, route_max_bytes and routing_topic_arn need notification_mode='sns': only an "
                "SNS subscription filter can route by object size."
            )
        return
    high = defaults.SNS_NUMERIC_RANGE[1]
    for name, value in bounds.items():
        if value is not None and not 0 <= value <= high:
            raise PipelineConfigError(
                f"{name}={value} is outside 0..{high}: SNS filter policies compare numbers up to {high} only."
            )
    low_bound, high_bound = args.route_min_bytes, args.route_max_bytes
    if low_bound is not None and high_bound is not None and low_bound >= high_bound:
        raise PipelineConfigError(
            f"route_min_bytes={low_bound} is not below route_max_bytes={high_bound}: the route matches no "
            "file (objects of at least the minimum and smaller than the maximum)."
        )
    if high_bound == 0:
        raise PipelineConfigError("route_max_bytes=0 matches no file (objects smaller than 0 bytes).")
    if low_bound is not None and low_bound > args.max_file_bytes:
        raise PipelineConfigError(
            f"route_min_bytes={low_bound} is above max_file_bytes={args.max_file_bytes}: every file the route "
            "matches would be parked unread. Raise max_file_bytes or lower the bound."
        )
    policy = filter_policy(
        Route("", args.input_prefix, args.effective_suffixes(), args.route_min_bytes, args.route_max_bytes)
    )
    problems = filter_policy_problems(policy)
    if problems:
        raise PipelineConfigError(
            f"its subscription filter policy would have {', '.join(problems)}: SNS refuses it. List fewer "
            "input_suffixes."
        )


def _validate_alerts(args: PipelineSettings) -> None:
    if args.log_retention_days not in defaults.LOG_RETENTION_CHOICES:
        raise PipelineConfigError(
            f"log_retention_days={args.log_retention_days} is not a CloudWatch Logs retention; use one of "
            f"{', '.join(map(str, defaults.LOG_RETENTION_CHOICES))}."
        )
    for email in args.alert_emails:
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            raise PipelineConfigError(f"alert_emails contains {email!r}, which is not an email address.")
    if args.queue_age_alarm_seconds < 60:
        raise PipelineConfigError(f"queue_age_alarm_seconds={args.queue_age_alarm_seconds} must be >= 60.")


def _validate_circuit_breaker(args: PipelineSettings) -> None:
    breaker = args.circuit_breaker
    if breaker is None:
        return
    for name in ("failure_threshold", "evaluation_periods", "probe_failure_threshold"):
        if getattr(breaker, name) < 1:
            raise PipelineConfigError(f"circuit_breaker.{name}={getattr(breaker, name)} must be at least 1.")
    period = defaults.ALARM_PERIOD_SECONDS
    for name in ("cool_down_seconds", "probe_window_seconds"):
        if getattr(breaker, name) < period:
            raise PipelineConfigError(
                f"circuit_breaker.{name}={getattr(breaker, name)} must be at least {period} s: the breaker's "
                "alarms and timer work in minutes."
            )
    if breaker.max_cool_down_seconds < breaker.cool_down_seconds:
        raise PipelineConfigError(
            f"circuit_breaker.max_cool_down_seconds={breaker.max_cool_down_seconds} is below "
            f"cool_down_seconds={breaker.cool_down_seconds}."
        )
    longest_wait = breaker.max_cool_down_seconds + breaker.probe_window_seconds
    if args.message_retention_seconds <= longest_wait:
        raise PipelineConfigError(
            f"message_retention_seconds={args.message_retention_seconds} must exceed the breaker's longest "
            f"cool-down plus its probe window ({longest_wait} s): files wait in the queue while the breaker "
            "is open, and SQS deletes a message older than the retention without sending it to the DLQ."
        )
    concurrency = args.effective_maximum_concurrency()
    low, high = defaults.MAXIMUM_CONCURRENCY_RANGE
    if not low <= breaker.probe_concurrency <= (concurrency or high):
        raise PipelineConfigError(
            f"circuit_breaker.probe_concurrency={breaker.probe_concurrency} must be {low}..{concurrency or high} "
            "(Lambda's minimum maximum concurrency for SQS, up to the pipeline's own)."
        )
    if breaker.max_requeues < 0:
        raise PipelineConfigError(f"circuit_breaker.max_requeues={breaker.max_requeues} must be at least 0.")


def _validate_input_lifecycle(args: PipelineSettings) -> None:
    rule = args.input_lifecycle("input")
    if rule is None:
        return
    validate_lifecycle_rule(rule, where="input_")
    if rule.expiration_days is not None and rule.expiration_days * _DAY <= args.dlq_retention_seconds:
        raise PipelineConfigError(
            f"input_expiration_days={rule.expiration_days} would delete inputs while their messages can "
            f"still wait in the DLQ (dlq_retention_seconds={args.dlq_retention_seconds}): a parked file could "
            "not be replayed. Keep inputs longer than the DLQ keeps messages."
        )


_DAY = 24 * 3600


def validate_lifecycle_rule(rule: LifecycleRule, where: str = "") -> None:
    """S3's own constraints on one prefix rule; ``where`` prefixes the field names in messages."""
    if rule.expiration_days is not None and rule.expiration_days < 1:
        raise PipelineConfigError(f"{where}expiration_days={rule.expiration_days} must be at least 1.")
    if rule.transition_days is None:
        return
    storage_class = rule.transition_storage_class
    if storage_class not in defaults.TRANSITION_STORAGE_CLASSES:
        raise PipelineConfigError(
            f"{where}transition_storage_class={storage_class!r}; use one of "
            f"{', '.join(defaults.TRANSITION_STORAGE_CLASSES)}."
        )
    minimum = defaults.MIN_DAYS_BEFORE_INFREQUENT_ACCESS if storage_class.endswith("_IA") else 0
    if rule.transition_days < minimum:
        raise PipelineConfigError(
            f"{where}transition_days={rule.transition_days} is below {minimum}: S3 refuses transitions to "
            f"{storage_class} earlier than {minimum} days after creation."
        )
    if rule.expiration_days is not None and rule.expiration_days <= rule.transition_days:
        raise PipelineConfigError(
            f"{where}expiration_days={rule.expiration_days} must be later than "
            f"{where}transition_days={rule.transition_days}."
        )


def validate_bucket_lifecycle(
    bucket: str,
    *,
    abort_incomplete_multipart_upload_days: int | None,
    noncurrent_version_expiration_days: int | None,
    rules: Sequence[LifecycleRule],
    longest_dlq_retention_seconds: int = 0,
) -> None:
    """Checks of a created bucket's lifecycle, against the pipelines that use it."""
    where = f"bucket {bucket!r}:"
    for name, days in (
        ("abort_incomplete_multipart_upload_days", abort_incomplete_multipart_upload_days),
        ("noncurrent_version_expiration_days", noncurrent_version_expiration_days),
    ):
        if days is not None and days < 1:
            raise PipelineConfigError(f"{where} {name}={days} must be at least 1 (or None to keep forever).")
    if (
        noncurrent_version_expiration_days is not None
        and noncurrent_version_expiration_days * _DAY <= longest_dlq_retention_seconds
    ):
        raise PipelineConfigError(
            f"{where} noncurrent_version_expiration_days={noncurrent_version_expiration_days} is shorter than "
            f"a pipeline's DLQ retention ({longest_dlq_retention_seconds} s): an overwritten file's parked "
            "version would be deleted before it could be replayed."
        )
    ids = [rule.rule_id for rule in rules]
    repeated = sorted({rule_id for rule_id in ids if ids.count(rule_id) > 1})
    if repeated:
        raise PipelineConfigError(f"{where} lifecycle rule ids must be unique; repeated: {repeated}.")
    for rule in rules:
        try:
            validate_lifecycle_rule(rule)
        except PipelineConfigError as error:
            raise PipelineConfigError(f"{where} rule {rule.rule_id!r}: {error}") from None


def validate_bucket_filters(bucket: str, filters: Sequence[InputFilter]) -> None:
    """Checks across the pipelines that share one bucket."""
    names = [f.pipeline for f in filters]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise PipelineConfigError(
            f"bucket {bucket!r}: pipeline names must be unique; repeated: {duplicates}."
        )
    for consumer in filters:
        for producer in filters:
            if consumer is not producer and consumer.would_consume_output_of(producer):
                raise PipelineConfigError(
                    f"bucket {bucket!r}: pipeline {producer.pipeline!r} writes under "
                    f"{producer.output_prefix!r}, which pipeline {consumer.pipeline!r} reads "
                    f"({consumer.prefix!r}): a recursive loop. Move one of the prefixes."
                )
    s3_mode = [f for f in filters if f.mode == "s3"]
    for first, second in _pairs(s3_mode):
        if first.overlaps(second):
            raise PipelineConfigError(
                f"bucket {bucket!r}: pipelines {first.pipeline!r} ({first.describe()}) "
                f"and {second.pipeline!r} ({second.describe()}) have overlapping "
                "filters; S3 rejects such a notification configuration ('ambiguously defined'). Make the "
                "prefixes or suffixes disjoint, or set notification_mode='sns' (or 'eventbridge') on both."
            )
    # Fan-out (eventbridge, sns): two pipelines that receive the same file write the same relative path.
    for first, second in _pairs(filters):
        if first.overlaps(second) and _prefixes_overlap(first.output_prefix, second.output_prefix):
            raise PipelineConfigError(
                f"bucket {bucket!r}: pipelines {first.pipeline!r} and {second.pipeline!r} both receive files "
                f"under {first.prefix!r}/{second.prefix!r} and write under {first.output_prefix!r} and "
                f"{second.output_prefix!r}: one would overwrite the other's result. Give each its own output "
                "prefix."
            )
    _validate_routes(bucket, filters)


def _validate_routes(bucket: str, filters: Sequence[InputFilter]) -> None:
    """``sns`` mode across a bucket: one mode per bucket, notifications S3 accepts, SNS's quota."""
    routed = [f for f in filters if f.mode == "sns"]
    if not routed:
        return
    others = [f for f in filters if f.mode != "sns"]
    if others:
        raise PipelineConfigError(
            f"bucket {bucket!r}: pipelines {sorted(f.pipeline for f in routed)} use notification_mode='sns' "
            f"and {sorted(f.pipeline for f in others)} do not. With 'sns' the bucket's routing topic receives "
            "its events and the routes decide; a pipeline outside it would bypass them. Use 'sns' for every "
            "pipeline of the bucket, or for none."
        )
    if len(routed) > defaults.SNS_FILTER_POLICIES_PER_TOPIC:
        raise PipelineConfigError(
            f"bucket {bucket!r}: {len(routed)} routes, but SNS allows {defaults.SNS_FILTER_POLICIES_PER_TOPIC} "
            "filter policies per topic by default (raise the quota first, or split the bucket)."
        )
    # S3 notifies the topic once per (notified prefix, suffix); two suffixes of which one ends the other
    # would make two of those configurations overlap, which S3 rejects.
    for notified in notified_prefixes(f.prefix for f in routed):
        under = [(f, suffix) for f in routed if f.prefix.startswith(notified) for suffix in f.suffixes]
        for index, (first, mine) in enumerate(under):
            for second, theirs in under[index + 1 :]:
                if mine != theirs and _suffixes_overlap(mine, theirs):
                    raise PipelineConfigError(
                        f"bucket {bucket!r}: routes {first.pipeline!r} ({mine!r}) and {second.pipeline!r} "
                        f"({theirs!r}) under {notified!r} have suffixes of which one ends the other: S3 "
                        "notifies the routing topic once per prefix and suffix and rejects overlapping "
                        "configurations. Use suffixes that do not end one another."
                    )


def _pairs(items: Sequence[InputFilter]) -> Iterable[tuple[InputFilter, InputFilter]]:
    for index, first in enumerate(items):
        for second in items[index + 1 :]:
            yield first, second
