"""Stack configuration (``filepipe:*`` keys in ``Pulumi.<stack>.yaml``) -> pipeline groups.

Keys (camelCase, as Pulumi config is written):

- ``filepipe:pipelines`` (required): a list of pipelines. Each has ``name``, ``inputPrefix`` and any
  :class:`~filepipe.args.PipelineArgs` field in camelCase (``inputFormat``, ``timeoutSeconds``, ...), plus
  optionally ``bucket``: an existing bucket's name. Pipelines without ``bucket`` share one created bucket.
  Pipeline names are unique in the stack (they are its export keys). Pipelines on an existing bucket
  must all set ``takeOverBucketNotification: true``: their group replaces that bucket's notification
  configuration.
- ``filepipe:defaults``: settings applied to every pipeline unless it sets them itself.
- ``filepipe:alertEmails``: addresses alerted for every pipeline.
- ``filepipe:tags``: tags for every resource.
- ``filepipe:bucketName`` / ``filepipe:forceDestroy``: name and deletion policy of the created bucket.
- ``filepipe:abortIncompleteMultipartUploadDays`` / ``filepipe:noncurrentVersionExpirationDays``: the
  created bucket's lifecycle (a number of days, or ``null`` to keep forever).
- ``filepipe:bundleDependencies``: build the dependency layer (default true).

Unknown keys are errors, so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import pulumi

from . import defaults
from .args import CircuitBreakerArgs, PipelineArgs, PipelineBucketArgs, PipelineGroupArgs
from .errors import PipelineConfigError
from .handler.settings import (
    FileFormat,
    InputCompression,
    InvalidRecordPolicy,
    OutputCompression,
    OutputFormat,
    ParquetCompression,
)
from .resolved import SEQUENCE_FIELDS, BreakerSettings, PipelineSettings

CREATED_BUCKET_GROUP = "data"
"""Name of the group (and its bucket) for pipelines that do not name an existing bucket."""

STACK_KEYS = (
    "pipelines",
    "defaults",
    "alertEmails",
    "tags",
    "bucketName",
    "forceDestroy",
    "abortIncompleteMultipartUploadDays",
    "noncurrentVersionExpirationDays",
    "bundleDependencies",
)
"""Every ``filepipe:`` key the stack program reads."""

# Fields that stack config does not set per pipeline: the program decides them.
_PROGRAM_OWNED = {
    "bucket",
    "pipeline_name",
    "manage_bucket_notification",
    "bundle_dependencies",
    "tags",
    "routing_topic_arn",
}
_ENUMS: dict[str, type[StrEnum]] = {
    "input_format": FileFormat,
    "input_compression": InputCompression,
    "output_format": OutputFormat,
    "output_compression": OutputCompression,
    "parquet_compression": ParquetCompression,
    "invalid_records": InvalidRecordPolicy,
}


@dataclass(frozen=True)
class StackConfig:
    groups: dict[str, PipelineGroupArgs]
    """Pipeline groups by name: ``data`` for the created bucket, else one per existing bucket."""


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _settable_fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(PipelineSettings) if f.name not in _PROGRAM_OWNED}


def _circuit_breaker(where: str, value: Any) -> CircuitBreakerArgs | None:
    """``circuitBreaker``: ``true`` (the defaults), ``false``/``null`` (none) or a mapping of its settings."""
    if value is None or value is False:
        return None
    if value is True:
        return CircuitBreakerArgs()
    fields = {f.name for f in dataclasses.fields(BreakerSettings)}
    if not isinstance(value, Mapping):
        raise PipelineConfigError(f"{where}: circuitBreaker must be true, false or a mapping, got {value!r}.")
    settings: dict[str, int] = {}
    for key, item in value.items():
        name = snake_case(str(key))
        if name not in fields:
            allowed = ", ".join(sorted(camel_case(f) for f in fields))
            raise PipelineConfigError(f"{where}: unknown circuitBreaker setting {key!r}. Known: {allowed}.")
        if isinstance(item, bool) or not isinstance(item, int):
            raise PipelineConfigError(f"{where}: circuitBreaker.{key} must be a whole number, got {item!r}.")
        settings[name] = item
    # Every key is one of BreakerSettings' fields (checked above), and each a whole number.
    return cast(CircuitBreakerArgs, settings)


def _coerce(where: str, field_name: str, value: Any) -> Any:
    """Check a config value against the type the field's default implies; convert enums."""
    key = camel_case(field_name)
    if field_name == "circuit_breaker":
        return _circuit_breaker(where, value)
    if field_name in _ENUMS:
        enum = _ENUMS[field_name]
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(member.value for member in enum)
            raise PipelineConfigError(f"{where}: {key}={value!r}; use one of {allowed}.") from None
    default = _settable_fields()[field_name].default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PipelineConfigError(f"{where}: {key} must be true or false, got {value!r}.")
    elif "int" in str(_settable_fields()[field_name].type).split(" | "):
        if isinstance(value, bool) or not isinstance(value, int):
            raise PipelineConfigError(f"{where}: {key} must be a whole number, got {value!r}.")
    elif field_name in SEQUENCE_FIELDS:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise PipelineConfigError(f"{where}: {key} must be a list of strings, got {value!r}.")
        return tuple(value)
    elif field_name not in {"schema", "schema_document"} and not isinstance(value, str):
        raise PipelineConfigError(f"{where}: {key} must be a string, got {value!r}.")
    return value


def _pipeline_settings(where: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    fields = _settable_fields()
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        field_name = snake_case(key)
        if field_name == "schema" and isinstance(value, Mapping):
            # A schema written inline in the stack config is the document itself, not a path.
            field_name = "schema_document"
        if field_name not in fields:
            allowed = ", ".join(sorted(camel_case(name) for name in fields))
            raise PipelineConfigError(f"{where}: unknown setting {key!r}. Known settings: {allowed}.")
        settings[field_name] = _coerce(where, field_name, value)
    return settings


def _optional_days(config: Mapping[str, Any], key: str, default: int | None) -> int | None:
    if key not in config:
        return default
    value = config[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise PipelineConfigError(f"filepipe:{key} must be a whole number of days or null, got {value!r}.")
    return value


def existing_bucket_group_name(bucket: str) -> str:
    """The group name for the pipelines on an existing bucket: short and stable.

    Group and pipeline names prefix every child's name, and the tightest AWS limit (64 for functions and
    roles, less Pulumi's suffix) leaves room for only a few characters next to the longest pipeline name,
    so the bucket name (up to 63 characters) cannot be part of it: a hash of it is.
    """
    tightest = min(
        defaults.NAME_LIMITS[kind][0] - len(suffix)
        for kind, suffix in (
            ("lambda function", "-function"),
            ("IAM role", "-role"),
            ("EventBridge rule", "-rule"),
        )
    )
    room = tightest - defaults.AUTO_NAME_SUFFIX_LENGTH - 1 - defaults.STACK_PIPELINE_NAME_MAX
    return "b" + hashlib.sha256(bucket.encode()).hexdigest()[: room - 1]


def stack_config_from_mapping(config: Mapping[str, Any]) -> StackConfig:
    """Build the pipeline groups from the ``filepipe:`` config values (keys without the namespace)."""
    unknown = set(config) - set(STACK_KEYS)
    if unknown:
        raise PipelineConfigError(
            f"unknown stack config key(s) {', '.join(f'filepipe:{key}' for key in sorted(unknown))}; "
            f"known: {', '.join(f'filepipe:{key}' for key in STACK_KEYS)}."
        )
    pipelines = config.get("pipelines")
    if not isinstance(pipelines, list) or not pipelines:
        raise PipelineConfigError(
            "filepipe:pipelines must be a non-empty list, e.g. [{name: orders, inputPrefix: incoming/orders/}]."
        )
    shared = _pipeline_settings("filepipe:defaults", config.get("defaults") or {})
    alert_emails = tuple(config.get("alertEmails") or ())
    tags = dict(config.get("tags") or {})
    bundle = config.get("bundleDependencies", True)
    if not isinstance(bundle, bool):
        raise PipelineConfigError(f"filepipe:bundleDependencies must be true or false, got {bundle!r}.")

    by_bucket: dict[str | None, dict[str, PipelineArgs]] = {}
    for index, entry in enumerate(pipelines):
        where = f"filepipe:pipelines[{index}]"
        if not isinstance(entry, Mapping):
            raise PipelineConfigError(f"{where} must be a mapping with at least name and inputPrefix.")
        raw = dict(entry)
        name = raw.pop("name", None)
        bucket = raw.pop("bucket", None)
        longest = defaults.STACK_PIPELINE_NAME_MAX
        if not isinstance(name, str) or not re.fullmatch(rf"[a-z][a-z0-9-]{{0,{longest - 1}}}", name):
            raise PipelineConfigError(
                f"{where}: name={name!r} must be 1-{longest} lowercase letters, digits or '-', starting with a "
                "letter (it becomes part of resource names)."
            )
        if bucket is not None and not isinstance(bucket, str):
            raise PipelineConfigError(f"{where}: bucket must be an existing bucket's name, got {bucket!r}.")
        settings = {**shared, **_pipeline_settings(f"{where} ({name})", raw)}
        if "input_prefix" not in settings:
            raise PipelineConfigError(f"{where} ({name}): inputPrefix is required, e.g. 'incoming/{name}/'.")
        settings["alert_emails"] = (*alert_emails, *settings.get("alert_emails", ()))
        if any(name in members for members in by_bucket.values()):
            raise PipelineConfigError(
                f"{where}: pipeline name {name!r} is used twice; names must be unique in the stack (each "
                "pipeline's outputs are exported under its name)."
            )
        if settings.get("take_over_bucket_notification") and bucket is None:
            raise PipelineConfigError(
                f"{where} ({name}): takeOverBucketNotification applies only to a pipeline with bucket (an "
                "existing bucket); the created bucket's notification is the stack's own."
            )
        # Every key is a settable field (checked by _pipeline_settings), its value coerced to its type.
        by_bucket.setdefault(bucket, {})[name] = cast(
            PipelineArgs, {**settings, "tags": tags, "bundle_dependencies": bundle}
        )

    groups: dict[str, PipelineGroupArgs] = {}
    for bucket, members in by_bucket.items():
        if bucket is None:
            bucket_args = PipelineBucketArgs(
                force_destroy=bool(config.get("forceDestroy", False)),
                tags=tags,
                # null (keep forever) is 0 in the component's inputs.
                abort_incomplete_multipart_upload_days=_optional_days(
                    config,
                    "abortIncompleteMultipartUploadDays",
                    defaults.ABORT_INCOMPLETE_MULTIPART_UPLOAD_DAYS,
                )
                or 0,
                noncurrent_version_expiration_days=_optional_days(
                    config, "noncurrentVersionExpirationDays", defaults.NONCURRENT_VERSION_EXPIRATION_DAYS
                )
                or 0,
            )
            if config.get("bucketName") is not None:
                bucket_args["bucket_name"] = config["bucketName"]
            groups[CREATED_BUCKET_GROUP] = PipelineGroupArgs(pipelines=members, bucket_args=bucket_args)
        else:
            # The group owns the existing bucket's notification configuration: every pipeline on that
            # bucket must have agreed to replacing it.
            unconfirmed = sorted(
                n for n, args in members.items() if not args.get("take_over_bucket_notification")
            )
            if unconfirmed:
                raise PipelineConfigError(
                    f"pipelines {unconfirmed} use the existing bucket {bucket!r}: S3 keeps one notification "
                    "configuration per bucket, and the stack's would replace whatever the bucket has now "
                    "(and be cleared with the stack). Set takeOverBucketNotification: true on every "
                    f"pipeline of {bucket!r} to accept that."
                )
            groups[existing_bucket_group_name(bucket)] = PipelineGroupArgs(
                # The group takes the bucket's notification over for all of them.
                pipelines={n: _without_take_over(args) for n, args in members.items()},
                bucket_name=bucket,
                take_over_bucket_notification=True,
            )
    return StackConfig(groups=groups)


def _without_take_over(args: PipelineArgs) -> PipelineArgs:
    member = args.copy()
    member.pop("take_over_bucket_notification", None)
    return member


def stack_config_from_pulumi(config: pulumi.Config | None = None) -> StackConfig:
    """Read the ``filepipe:`` keys of the current stack."""
    config = config or pulumi.Config("filepipe")
    # A key set to null (keep forever) differs from an unset key (the default): test the raw value.
    return stack_config_from_mapping(
        {key: config.get_object(key) for key in STACK_KEYS if config.get(key) is not None}
    )
