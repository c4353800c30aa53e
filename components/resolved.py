"""The components' inputs with every default applied: what the library works with internally.

The public inputs (:mod:`filepipe.args`) are TypedDicts, so that every Pulumi language reads them from
one schema; a TypedDict has no defaults and no methods. The dataclasses here hold the same fields with
their defaults (the values live in :mod:`filepipe.defaults`) and the values derived from several fields.
The ``resolve_*`` functions are the one place a public input becomes settings: they reject unknown keys,
treat ``None`` as unset, turn strings into the enums, and coerce whole-number floats to ``int`` (Pulumi's
provider host hands integer inputs over as floats). Each error names the field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import pulumi
import pulumi_aws as aws

from . import defaults
from .args import (
    Architecture,
    CircuitBreakerArgs,
    Encryption,
    NotificationMode,
    PipelineArgs,
    PipelineBucketArgs,
    PrefixLifecycleRule,
)
from .errors import PipelineConfigError
from .handler.keys import EXTENSIONS, compressed_suffixes
from .handler.settings import (
    DEFAULT_PARQUET_ROW_GROUP_ROWS,
    FileFormat,
    InputCompression,
    InvalidRecordPolicy,
    OutputCompression,
    OutputFormat,
    ParquetCompression,
)


@dataclass(frozen=True, kw_only=True)
class LifecycleRule:
    """A lifecycle rule for the objects under one prefix of a created bucket (see
    :class:`~filepipe.args.PrefixLifecycleRule`)."""

    rule_id: str
    prefix: str
    expiration_days: int | None = None
    transition_days: int | None = None
    transition_storage_class: str = defaults.INPUT_TRANSITION_STORAGE_CLASS

    def as_args(self) -> PrefixLifecycleRule:
        """The rule as a public input (a created bucket's ``prefix_rules`` entry)."""
        rule = PrefixLifecycleRule(
            rule_id=self.rule_id, prefix=self.prefix, transition_storage_class=self.transition_storage_class
        )
        if self.expiration_days is not None:
            rule["expiration_days"] = self.expiration_days
        if self.transition_days is not None:
            rule["transition_days"] = self.transition_days
        return rule


@dataclass(frozen=True, kw_only=True)
class BreakerSettings:
    """A circuit breaker's inputs with their defaults (see :class:`~filepipe.args.CircuitBreakerArgs`)."""

    failure_threshold: int = defaults.BREAKER_FAILURE_THRESHOLD
    evaluation_periods: int = defaults.BREAKER_EVALUATION_PERIODS
    probe_failure_threshold: int = defaults.BREAKER_PROBE_FAILURE_THRESHOLD
    cool_down_seconds: int = defaults.BREAKER_COOL_DOWN_SECONDS
    max_cool_down_seconds: int = defaults.BREAKER_MAX_COOL_DOWN_SECONDS
    probe_window_seconds: int = defaults.BREAKER_PROBE_WINDOW_SECONDS
    probe_concurrency: int = defaults.BREAKER_PROBE_CONCURRENCY
    max_requeues: int = defaults.BREAKER_MAX_REQUEUES


@dataclass(kw_only=True)
class PipelineSettings:
    """A pipeline's inputs with their defaults (each field is :class:`~filepipe.args.PipelineArgs`'s)."""

    input_prefix: str
    pipeline_name: str | None = None
    bucket: pulumi.Input[str] | aws.s3.Bucket | None = None
    """The existing bucket (``bucket_name`` or ``bucket``); ``None``: the pipeline creates one."""
    input_suffixes: Sequence[str] | None = None
    output_prefix: str | None = None
    input_format: FileFormat = FileFormat.JSON
    input_compression: InputCompression = InputCompression.AUTO
    output_format: OutputFormat = OutputFormat.JSON
    output_compression: OutputCompression = OutputCompression.NONE
    parquet_compression: ParquetCompression = ParquetCompression.SNAPPY
    parquet_row_group_rows: int = DEFAULT_PARQUET_ROW_GROUP_ROWS
    schema: str | None = None
    schema_document: Mapping[str, Any] | None = None
    invalid_records: InvalidRecordPolicy = InvalidRecordPolicy.REJECT_FILE
    processor: str | None = None
    file_processor: str | None = None
    processor_code_dir: str | None = None
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    memory_mb: int = defaults.MEMORY_MB
    timeout_seconds: int = defaults.TIMEOUT_SECONDS
    architecture: Architecture = defaults.ARCHITECTURE
    python_runtime: str = defaults.PYTHON_RUNTIME
    reserved_concurrency: int | None = None
    log_level: str = defaults.LOG_LEVEL
    batch_size: int = defaults.BATCH_SIZE
    batching_window_seconds: int = defaults.BATCHING_WINDOW_SECONDS
    maximum_concurrency: int | None = None
    visibility_timeout_seconds: int | None = None
    message_retention_seconds: int = defaults.MESSAGE_RETENTION_SECONDS
    max_receive_count: int = defaults.MAX_RECEIVE_COUNT
    dlq_retention_seconds: int = defaults.DLQ_RETENTION_SECONDS
    encryption: Encryption = Encryption.SSE_SQS
    kms_key_arn: pulumi.Input[str] | None = None
    alert_emails: Sequence[str] = ()
    alert_topic_arn: pulumi.Input[str] | None = None
    log_retention_days: int = defaults.LOG_RETENTION_DAYS
    queue_age_alarm_seconds: int = defaults.QUEUE_AGE_ALARM_SECONDS
    state_table: bool = True
    circuit_breaker: BreakerSettings | None = None
    notification_mode: NotificationMode = NotificationMode.S3
    route_min_bytes: int | None = None
    route_max_bytes: int | None = None
    routing_topic_arn: pulumi.Input[str] | None = None
    manage_bucket_notification: bool = True
    take_over_bucket_notification: bool = False
    input_expiration_days: int | None = None
    input_transition_days: int | None = None
    input_transition_storage_class: str = defaults.INPUT_TRANSITION_STORAGE_CLASS
    bundle_dependencies: bool = True
    powertools_version: str = defaults.POWERTOOLS_VERSION
    powertools_layer_arn: pulumi.Input[str] | None = None
    extra_layers: Sequence[pulumi.Input[str]] = ()
    tags: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)

    # --- derived values: the one place that applies the defaults that depend on other fields --------
    def effective_suffixes(self) -> tuple[str, ...]:
        if self.input_suffixes is not None:
            return tuple(self.input_suffixes)
        plain = EXTENSIONS[FileFormat(self.input_format)]
        compression = InputCompression(self.input_compression)
        compressed = tuple(suffix + ending for suffix in plain for ending in compressed_suffixes(compression))
        if compression is InputCompression.AUTO:
            # ``auto`` reads either: the format's plain and compressed forms (``.csv``, ``.csv.gz``,
            # ``.csv.zst``), as a feed may send them.
            return plain + compressed
        return compressed or plain  # gzip/zstd: only their forms; none: only the plain ones

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

    def input_lifecycle(self, rule_id: str) -> LifecycleRule | None:
        """The lifecycle rule for this pipeline's input prefix, if it asks for one."""
        if self.input_expiration_days is None and self.input_transition_days is None:
            return None
        return LifecycleRule(
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

    @property
    def existing_bucket(self) -> bool:
        """Whether the files arrive in a bucket this pipeline does not create."""
        return self.bucket is not None


@dataclass(frozen=True, kw_only=True)
class BucketSettings:
    """A created bucket's inputs with their defaults (each field is :class:`~filepipe.args.PipelineBucketArgs`'s)."""

    bucket_name: str | None = None
    force_destroy: bool = False
    tags: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    abort_incomplete_multipart_upload_days: int | None = defaults.ABORT_INCOMPLETE_MULTIPART_UPLOAD_DAYS
    """``None``: keep the parts."""
    noncurrent_version_expiration_days: int | None = defaults.NONCURRENT_VERSION_EXPIRATION_DAYS
    """``None``: keep every version."""
    prefix_rules: Sequence[LifecycleRule] = ()


_ENUMS: Mapping[str, type[StrEnum]] = {
    enum.__name__: enum
    for enum in (
        Architecture,
        Encryption,
        NotificationMode,
        FileFormat,
        InputCompression,
        InvalidRecordPolicy,
        OutputCompression,
        OutputFormat,
        ParquetCompression,
    )
}
"""The choices, by the name the settings' annotations give them."""

SEQUENCE_FIELDS = frozenset({"input_suffixes", "alert_emails", "extra_layers"})
"""The pipeline's list fields (kept as tuples)."""
_PATHS = {"schema", "processor_code_dir"}
_KEEP_WHEN_ZERO = {"abort_incomplete_multipart_upload_days", "noncurrent_version_expiration_days"}
"""Bucket lifecycle days where 0 (every language) or ``None`` (Python) means "keep forever": a null input
never reaches a component, so 0 is how other languages say it."""


def _coerce(where: str, name: str, annotation: str, value: Any) -> Any:
    """One field's value as its settings annotation (a string: the module postpones them) declares it."""
    kinds = {kind.strip() for kind in annotation.split("|")}
    if "int" in kinds:
        # Integers cross the provider boundary as floats; a fraction is a mistake, not a rounding.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise PipelineConfigError(f"{where}{name}={value!r} must be a whole number.")
        return value
    if "bool" in kinds and not isinstance(value, bool):
        raise PipelineConfigError(f"{where}{name}={value!r} must be true or false.")
    if enum := next((_ENUMS[kind] for kind in kinds if kind in _ENUMS), None):
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(repr(member.value) for member in enum)
            raise PipelineConfigError(f"{where}{name}={value!r}; use one of {allowed}.") from None
    if name in _PATHS:
        if not isinstance(value, str | os.PathLike):
            hint = " (a JSON Schema document goes in schema_document)" if name == "schema" else ""
            raise PipelineConfigError(f"{where}{name}={value!r} must be a path{hint}.")
        return os.fspath(value)
    if name in SEQUENCE_FIELDS:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise PipelineConfigError(f"{where}{name}={value!r} must be a list.")
        return tuple(value)
    return value


_Settings = TypeVar("_Settings")


def _resolve(
    settings: type[_Settings], args: Mapping[str, Any], where: str, nested: Mapping[str, Any] | None = None
) -> _Settings:
    """``settings(**args)`` with the checks and coercions above; ``nested`` resolves the fields that hold
    another input type."""
    fields = {f.name: f for f in dataclasses.fields(settings)}  # type: ignore[arg-type]
    unknown = sorted(set(args) - set(fields))
    if unknown:
        raise PipelineConfigError(
            f"{where}unknown input(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}."
        )
    values: dict[str, Any] = {}
    for name, value in args.items():
        if name in _KEEP_WHEN_ZERO and value in (None, 0):
            values[name] = None
            continue
        if value is None:
            continue
        if nested is not None and name in nested:
            values[name] = nested[name](value)
        else:
            values[name] = _coerce(where, name, str(fields[name].type), value)
    missing = sorted(
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and name not in values
    )
    if missing:
        raise PipelineConfigError(f"{where}{', '.join(missing)} is required.")
    return settings(**values)


def resolve_rule(rule: PrefixLifecycleRule | Mapping[str, Any], where: str = "") -> LifecycleRule:
    return _resolve(LifecycleRule, rule, where)


def resolve_breaker(breaker: CircuitBreakerArgs | Mapping[str, Any]) -> BreakerSettings:
    if not isinstance(breaker, Mapping):
        raise PipelineConfigError(f"circuit_breaker={breaker!r} must be a mapping of its settings.")
    return _resolve(BreakerSettings, breaker, "circuit_breaker.")


def resolve_bucket(args: PipelineBucketArgs | Mapping[str, Any]) -> BucketSettings:
    def rules(value: Any) -> tuple[LifecycleRule, ...]:
        return tuple(resolve_rule(rule, f"prefix_rules[{index}].") for index, rule in enumerate(value))

    return _resolve(BucketSettings, args, "", nested={"prefix_rules": rules})


def resolve_pipeline(args: PipelineArgs | Mapping[str, Any], name: str) -> PipelineSettings:
    """A pipeline's settings from its public inputs (``bucket_name`` and ``bucket`` become ``bucket``);
    ``name`` is the pipeline's default name (its resource name), which errors start with."""
    try:
        return _pipeline_settings(args)
    except PipelineConfigError as error:
        raise PipelineConfigError(f"pipeline {args.get('pipeline_name') or name!r}: {error}") from None


def _pipeline_settings(args: PipelineArgs | Mapping[str, Any]) -> PipelineSettings:
    values = dict(args)
    by_name, resource = values.pop("bucket_name", None), values.pop("bucket", None)
    if by_name is not None and resource is not None:
        raise PipelineConfigError("bucket_name and bucket are both set; give the existing bucket once.")
    if resource is not None and not isinstance(resource, aws.s3.Bucket):
        raise PipelineConfigError(
            f"bucket must be an aws.s3.Bucket, got {type(resource).__name__}; pass a shared PipelineBucket "
            "(or any bucket) by name: bucket_name=shared.bucket_name."
        )
    if values.get("schema") is not None and values.get("schema_document") is not None:
        raise PipelineConfigError("schema and schema_document are both set; give the JSON Schema once.")
    settings = _resolve(PipelineSettings, values, "", nested={"circuit_breaker": resolve_breaker})
    return dataclasses.replace(settings, bucket=by_name if by_name is not None else resource)
