"""``filepipe doctor [PIPELINE…]``: the troubleshooting checklist, run against the services themselves.

Each check reads what AWS (or the local endpoint) holds now and gives a verdict: *pass*, *warn* (worth a
look, not broken) or *fail* (files are not processed, are lost or nobody is told), with a hint saying how
to fix a failure. A check that cannot read what it needs (AccessDenied) is a warning naming the missing
permission, never a crash. The command exits non-zero when any check fails.

The thresholds are the component's own (``filepipe.defaults``, ``filepipe.policies``, the alarm specs),
so the doctor judges a deployed pipeline by the rules it was built with.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from typing import Any, Final, NamedTuple

from botocore.exceptions import ClientError
from rich.table import Table
from rich.text import Text

from filepipe import defaults
from filepipe.cli.ops.command import EXIT_FAILED, Output, add_json_argument, ops_command
from filepipe.cli.ops.iam_check import Decision, Request, evaluate, evaluate_with_boundary
from filepipe.cli.ops.pipeline_settings import settings_of
from filepipe.cli.ops.stack import Pipeline, Stack, add_stack_arguments
from filepipe.cli.ops.status import oldest_message_age
from filepipe.extras import missing_local_modules, needs_local_extra
from filepipe.handler.events import event_key
from filepipe.handler.keys import (
    COMPRESSION_SUFFIXES,
    compressed_suffixes,
    output_folder,
    pipeline_output_key,
)
from filepipe.handler.settings import HandlerSettings, InputCompression, OutputCompression, SettingsError
from filepipe.monitoring import AlarmSpec, alarm_specs
from filepipe.notifications import OBJECT_CREATED
from filepipe.policies import function_role_policy
from filepipe.policy import documents as doc
from filepipe.policy.stack import RECOMMENDED_MAX_RECEIVE_COUNT
from filepipe.policy.wiring import EVENTS_SERVICE, S3_SERVICE, SNS_SERVICE

PROBE_NAME: Final = "filepipe-doctor-probe"
"""Stands for a file name where a check needs a concrete key (it is never written)."""
_ACCESS_DENIED: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "AuthorizationError", "UnauthorizedOperation"}
)
_NOT_FOUND: Final = frozenset(
    {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NoSuchBucket",
        "NotFound",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)
_DLQ_ALARM: Final = next(
    spec for spec in alarm_specs(defaults.QUEUE_AGE_ALARM_SECONDS) if spec.dimension == "dlq"
)
_AGE_ALARM: Final = next(
    spec for spec in alarm_specs(defaults.QUEUE_AGE_ALARM_SECONDS) if spec.dimension == "queue"
)
PENDING_CONFIRMATION: Final = "PendingConfirmation"
"""What SNS shows as the ARN of a subscription nobody has confirmed yet (an e-mail not clicked)."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("doctor", help="check each pipeline's wiring, permissions and limits")
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="default: every pipeline")
    add_json_argument(parser)
    add_stack_arguments(parser)
    parser.set_defaults(command=ops_command(_doctor))


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    verdict: Verdict
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict, "detail": self.detail, "hint": self.hint}


class Verdicts(NamedTuple):
    """What a check function returns; the runner adds the check's name."""

    verdict: Verdict
    detail: str
    hint: str = ""


def passed(detail: str) -> Verdicts:
    return Verdicts(Verdict.PASS, detail)


def warned(detail: str, hint: str = "") -> Verdicts:
    return Verdicts(Verdict.WARN, detail, hint)


def failed(detail: str, hint: str) -> Verdicts:
    return Verdicts(Verdict.FAIL, detail, hint)


class PermissionMissingError(Exception):
    """The doctor lacks a permission to read what a check needs."""

    def __init__(self, permission: str) -> None:
        super().__init__(permission)
        self.permission = permission


class NotFoundError(Exception):
    """Something the pipeline's outputs name does not exist: the check fails with this detail and hint."""

    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.hint = hint


REDEPLOY: Final = "deploy the stack again (pulumi up) to restore it"


@contextmanager
def reading(service: str, missing: str = "") -> Iterator[None]:
    """AccessDenied becomes :class:`PermissionMissingError` (``service:Operation``), not-found :class:`NotFoundError`.

    ``service`` is the IAM action prefix of the calls inside (``cloudwatch``, not its endpoint name).
    """
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _ACCESS_DENIED:
            raise PermissionMissingError(f"{service}:{error.operation_name}") from None
        if missing and code in _NOT_FOUND:
            raise NotFoundError(missing, REDEPLOY) from None
        raise


# --- What a check reads, once per pipeline ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    region: str
    account: str

    @classmethod
    def of(cls, arn: str) -> Arn:
        parts = arn.split(":", 5)
        return cls(parts[1], parts[3], parts[4])


@dataclass(frozen=True, slots=True)
class Delivery:
    """One way an object-created event reaches the queue: a service that sends to it, from a source.

    Adding a way (an SNS topic between bucket and queue) is one more finder in :data:`DELIVERY_FINDERS`;
    the queue-policy and event-delivery checks judge every delivery found.
    """

    via: str
    """For people: ``S3 notification of bucket B``, ``EventBridge rule R``."""
    service: str
    """The service principal that sends the message to the queue."""
    source_arn: str
    """``aws:SourceArn`` of that send: what the queue policy must admit."""
    problems: tuple[str, ...] = ()
    """Why it does not deliver the pipeline's files (and only them) as it should."""
    warnings: tuple[str, ...] = ()
    """What works, but not as the component builds it."""


class PipelineProbe:
    """Reads one pipeline's resources lazily, each once, for every check that needs them."""

    def __init__(self, stack: Stack, pipeline: Pipeline) -> None:
        self.stack = stack
        self.pipeline = pipeline
        self.arn = Arn.of(pipeline.queue_arn)

    def _queue_attributes(self, url: str, what: str) -> dict[str, str]:
        with reading("sqs", missing=f"{what} {url} does not exist"):
            attributes = self.stack.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        return {str(name): value for name, value in attributes["Attributes"].items()}

    @cached_property
    def queue(self) -> dict[str, str]:
        return self._queue_attributes(self.pipeline.queue_url, "the queue")

    @cached_property
    def dlq(self) -> dict[str, str]:
        return self._queue_attributes(self.pipeline.dlq_url, "the dead-letter queue")

    @cached_property
    def function(self) -> Mapping[str, Any]:
        name = self.pipeline.function_name
        with reading("lambda", missing=f"function {name} does not exist"):
            return self.stack.lambda_().get_function_configuration(FunctionName=name)

    @cached_property
    def settings(self) -> HandlerSettings:
        """What the handler runs with: the function's environment, by the handler's own parser
        (raises :class:`SettingsError` as the handler would at its start)."""
        return settings_of(self.function)

    def readable_settings(self) -> HandlerSettings | None:
        """The settings, or ``None`` when they cannot be read or do not parse (handler-settings says so)."""
        try:
            return self.settings
        except (SettingsError, PermissionMissingError, NotFoundError):
            return None

    @cached_property
    def mapping(self) -> Mapping[str, Any]:
        uuid = self.pipeline.event_source_mapping_id
        with reading("lambda", missing=f"event source mapping {uuid} does not exist"):
            return self.stack.lambda_().get_event_source_mapping(UUID=uuid)

    @cached_property
    def notification(self) -> Mapping[str, Any]:
        bucket = self.pipeline.bucket
        with reading("s3", missing=f"bucket {bucket} does not exist"):
            return self.stack.s3().get_bucket_notification_configuration(Bucket=bucket)

    @cached_property
    def alarms(self) -> list[Mapping[str, Any]]:
        names = list(self.pipeline.alarm_names)
        if not names:
            return []
        with reading("cloudwatch"):
            found: list[Mapping[str, Any]] = []
            for page in self.stack.cloudwatch().get_paginator("describe_alarms").paginate(AlarmNames=names):
                found.extend(page.get("MetricAlarms", []))
            return found

    def alarm_on(self, spec: AlarmSpec, queue_url: str) -> Mapping[str, Any] | None:
        """The pipeline's alarm on ``spec``'s metric of that queue."""
        queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        for alarm in self.alarms:
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if (
                alarm.get("Namespace") == spec.namespace
                and alarm.get("MetricName") == spec.metric_name
                and dimensions.get("QueueName") == queue_name
            ):
                return alarm
        return None

    @cached_property
    def deliveries(self) -> list[Delivery]:
        return [delivery for finder in DELIVERY_FINDERS for delivery in finder(self)]

    # Keys a check asks about: a file the pipeline must see, and one of its own outputs.
    def input_keys(self) -> list[str]:
        pipeline = self.pipeline
        return [f"{pipeline.input_prefix}{PROBE_NAME}{suffix}" for suffix in pipeline.input_suffixes or ("",)]

    def output_key(self) -> str:
        """Where the handler writes the output of the first probe input: by the handler's key rules
        when its settings are readable (a compressed output's ``.gz``; a whole-file processor's folder,
        holding an output named like the input, the least a processor can be trusted to avoid)."""
        pipeline = self.pipeline
        suffix = pipeline.input_suffixes[0] if pipeline.input_suffixes else ""
        settings = self.readable_settings()
        probe = f"{pipeline.input_prefix}{PROBE_NAME}{suffix}"
        if settings is None or not probe.startswith(settings.input_prefix):
            return f"{pipeline.output_prefix}{PROBE_NAME}{suffix}"
        if settings.file_processor:
            return output_folder(probe, settings.input_prefix, pipeline.output_prefix) + PROBE_NAME + suffix
        # The handler's own rule, under the output prefix the stack reports.
        return pipeline_output_key(probe, replace(settings, output_prefix=pipeline.output_prefix))


# --- How events reach the queue ---------------------------------------------------------------------------


def s3_filter_matches(configuration: Mapping[str, Any], key: str) -> bool:
    """Whether an S3 queue/topic configuration fires for an object created at ``key``."""
    if not any(
        str(event).startswith(OBJECT_CREATED.removesuffix("*")) for event in configuration.get("Events", [])
    ):
        return False
    rules = configuration.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    values = {str(rule.get("Name", "")).lower(): str(rule.get("Value", "")) for rule in rules}
    return key.startswith(values.get("prefix", "")) and key.endswith(values.get("suffix", ""))


def delivery_problems(fires: Callable[[str], bool], probe: PipelineProbe) -> list[str]:
    """What is wrong with a filter (``fires(key)``): a pipeline file it misses, or an output it catches."""
    pipeline = probe.pipeline
    problems = [f"a file at {key} is not sent" for key in probe.input_keys() if not fires(key)]
    if fires(probe.output_key()):
        problems.append(
            f"outputs under {pipeline.output_prefix} are sent too: each output is processed again (a loop)"
        )
    return problems


def _s3_notifications(probe: PipelineProbe) -> list[Delivery]:
    configurations = [
        configuration
        for configuration in probe.notification.get("QueueConfigurations", [])
        if configuration.get("QueueArn") == probe.pipeline.queue_arn
    ]
    if not configurations:
        return []
    bucket = probe.pipeline.bucket
    return [
        Delivery(
            f"S3 notification of bucket {bucket}",
            S3_SERVICE,
            f"arn:{probe.arn.partition}:s3:::{bucket}",
            tuple(
                delivery_problems(lambda key: any(s3_filter_matches(c, key) for c in configurations), probe)
            ),
        )
    ]


def event_pattern_matches(pattern: Any, event: Any) -> bool:
    """EventBridge content matching for what S3 patterns use: values, prefix, suffix, wildcard,
    anything-but and exists. A matcher it does not know matches, so the doctor never reports a rule
    broken on a guess."""
    if isinstance(pattern, Mapping):
        if not isinstance(event, Mapping):
            return False
        return all(
            _field_matches(matcher, event.get(name))
            if not isinstance(matcher, Mapping)
            else event_pattern_matches(matcher, event.get(name))
            for name, matcher in pattern.items()
        )
    return _field_matches(pattern, event)


def _field_matches(matchers: Any, value: Any) -> bool:
    for matcher in doc.as_list(matchers):
        if not isinstance(matcher, Mapping):
            if matcher == value:
                return True
            continue
        text = value if isinstance(value, str) else None
        if "exists" in matcher:
            if bool(matcher["exists"]) == (value is not None):
                return True
        elif "prefix" in matcher:
            if text is not None and isinstance(matcher["prefix"], str) and text.startswith(matcher["prefix"]):
                return True
        elif "suffix" in matcher:
            if text is not None and isinstance(matcher["suffix"], str) and text.endswith(matcher["suffix"]):
                return True
        elif "wildcard" in matcher:
            if text is not None and _wildcard(str(matcher["wildcard"]), text):
                return True
        elif "anything-but" in matcher:
            excluded = matcher["anything-but"]
            if isinstance(excluded, Mapping):
                return True
            if value is not None and value not in doc.as_list(excluded):
                return True
        else:
            return True
    return False


def _wildcard(pattern: str, text: str) -> bool:
    # EventBridge wildcards know only '*' ('?' is a literal there, unlike in IAM).
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), text, re.DOTALL) is not None


def object_created_event(bucket: str, key: str) -> dict[str, Any]:
    """The fields of S3's EventBridge "Object Created" event that patterns select on."""
    return {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key}},
    }


def _eventbridge_rules(probe: PipelineProbe) -> list[Delivery]:
    events = probe.stack.client("events")
    with reading("events"):
        names: list[str] = []
        paginator = events.get_paginator("list_rule_names_by_target")
        for page in paginator.paginate(TargetArn=probe.pipeline.queue_arn):
            names.extend(page.get("RuleNames", []))
        rules = [events.describe_rule(Name=name) for name in names]
    bucket = probe.pipeline.bucket
    found = []
    for rule in rules:
        problems: list[str] = []
        if rule.get("State") != "ENABLED":
            problems.append(f"the rule is {str(rule.get('State', 'not enabled')).lower()}")
        if "EventBridgeConfiguration" not in probe.notification:
            problems.append(f"bucket {bucket} does not send events to EventBridge")
        try:
            pattern = json.loads(rule.get("EventPattern") or "{}")
        except ValueError:
            pattern = None
        if not isinstance(pattern, Mapping):
            problems.append("the rule has no event pattern S3 events can match")
        else:
            problems += delivery_problems(_pattern_fires(pattern, bucket), probe)
        found.append(
            Delivery(f"EventBridge rule {rule['Name']}", EVENTS_SERVICE, str(rule["Arn"]), tuple(problems))
        )
    return found


def _pattern_fires(pattern: Mapping[str, Any], bucket: str) -> Callable[[str], bool]:
    return lambda key: event_pattern_matches(pattern, object_created_event(bucket, key))


def s3_event_message(bucket: str, key: str, configuration_id: str, size: int, region: str) -> dict[str, Any]:
    """The fields of the S3 event notification a bucket publishes for an object created at ``key`` that
    filter policies select on (the key encoded as S3 encodes it)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {"name": bucket},
                    "object": {"key": event_key(key), "size": size},
                },
            }
        ]
    }


def _sns_subscriptions(probe: PipelineProbe) -> list[Delivery]:
    # Found from the queue's side, as the EventBridge rules are: a subscription to a topic the bucket no
    # longer notifies is then reported as such, not missed (listing per notified topic would miss it).
    queue_arn = probe.pipeline.queue_arn
    with reading("sns"):
        paginator = probe.stack.sns().get_paginator("list_subscriptions")
        subscriptions = [
            subscription
            for page in paginator.paginate()
            for subscription in page.get("Subscriptions", [])
            if subscription.get("Protocol") == "sqs" and subscription.get("Endpoint") == queue_arn
        ]
    found = []
    for subscription in subscriptions:
        topic, arn = str(subscription.get("TopicArn", "")), str(subscription.get("SubscriptionArn", ""))
        via = f"SNS subscription of topic {topic}"
        if arn == PENDING_CONFIRMATION:
            found.append(Delivery(via, SNS_SERVICE, topic, (_UNCONFIRMED,)))
        elif arn.startswith("arn:"):  # not "Deleted"
            with reading("sns"):
                attributes = probe.stack.sns().get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
            found.append(
                _subscription_delivery(probe, via, topic, {str(k): v for k, v in attributes.items()})
            )
    return found


_UNCONFIRMED: Final = "the subscription is pending confirmation: the topic sends it nothing"


def _subscription_delivery(
    probe: PipelineProbe, via: str, topic: str, attributes: Mapping[str, str]
) -> Delivery:
    bucket, problems, warnings = probe.pipeline.bucket, [], []
    if attributes.get("PendingConfirmation") == "true":
        problems.append(_UNCONFIRMED)
    redrive = _json_object(attributes.get("RedrivePolicy"))
    target = redrive.get("deadLetterTargetArn") if redrive else None
    if not target:
        problems.append(
            "the subscription has no redrive policy: a delivery the queue refuses is dropped silently"
        )
    elif target != probe.pipeline.dlq_arn:
        problems.append(f"the subscription redrives to {target}, not the pipeline's dead-letter queue")
    if attributes.get("RawMessageDelivery") != "true":
        warnings.append("raw message delivery is off: each event arrives wrapped in an SNS envelope")
    configurations = [
        configuration
        for configuration in probe.notification.get("TopicConfigurations", [])
        if configuration.get("TopicArn") == topic
    ]
    if not configurations:
        problems.append(f"bucket {bucket} does not notify the topic")
    policy = _json_object(attributes.get("FilterPolicy") or "{}")
    if policy is None:
        problems.append("the subscription's filter policy is not a JSON object")
    elif missing_local_modules():
        # The filter policy is judged by moto's implementation of SNS's matching (below), which only the
        # `local` extra installs; the rest of the check stands without it.
        warnings.append(f"the filter policy was not evaluated: {needs_local_extra('filepipe doctor')}")
    else:
        scope = attributes.get("FilterPolicyScope") or "MessageAttributes"
        problems += delivery_problems(_subscription_fires(probe, configurations, policy, scope), probe)
    return Delivery(via, SNS_SERVICE, topic, tuple(problems), tuple(warnings))


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _subscription_fires(
    probe: PipelineProbe, configurations: Sequence[Mapping[str, Any]], policy: dict[str, Any], scope: str
) -> Callable[[str], bool]:
    """Whether the bucket publishes an event for ``key`` to the topic that the filter policy lets through.

    Size bounds are the route's choice, not a wiring mistake: a key is sent when a file of some size is.
    """
    # Imported here: moto's SNS package loads its whole backend, paid only when a subscription is judged.
    # SNS's filter-policy language (prefix, numeric, anything-but, $or, nested arrays...) is too large to
    # copy; moto's implementation of SNS's matching is what the local endpoint delivers by.
    from moto.sns.utils import FilterPolicyMatcher

    matcher = FilterPolicyMatcher(policy, scope)
    sizes = _candidate_sizes(policy)
    bucket, region = probe.pipeline.bucket, probe.arn.region

    def fires(key: str) -> bool:
        return any(
            # S3 publishes no message attributes: a policy on them matches only what needs none.
            matcher.matches({}, json.dumps(s3_event_message(bucket, key, str(c.get("Id", "")), size, region)))
            for c in configurations
            if s3_filter_matches(c, key)
            for size in sizes
        )

    return fires


def _candidate_sizes(policy: Any) -> set[int]:
    """Object sizes that meet the policy's numeric conditions if any size does: every set of integers
    those conditions admit contains 0, one of their bounds, or a neighbour of one."""
    if isinstance(policy, Mapping):
        return set().union({0}, *(_candidate_sizes(value) for value in policy.values()))
    if isinstance(policy, list):
        return set().union({0}, *(_candidate_sizes(value) for value in policy))
    if isinstance(policy, int | float) and not isinstance(policy, bool) and policy >= 0:
        return {int(policy) - 1, int(policy), int(policy) + 1} - {-1}
    return {0}


DELIVERY_FINDERS: Final[tuple[Callable[[PipelineProbe], list[Delivery]], ...]] = (
    _s3_notifications,
    _eventbridge_rules,
    _sns_subscriptions,
)
"""Every way the component can route a bucket's events to a pipeline's queue."""


# --- The checks -------------------------------------------------------------------------------------------


def check_mapping(probe: PipelineProbe) -> Verdicts:
    mapping, pipeline = probe.mapping, probe.pipeline
    state = str(mapping.get("State", "Unknown"))
    if mapping.get("EventSourceArn") != pipeline.queue_arn:
        return failed(
            f"the mapping reads {mapping.get('EventSourceArn')}, not the pipeline's queue", REDEPLOY
        )
    function = str(mapping.get("FunctionArn", "")).split(":")
    if len(function) > 6 and function[6] != pipeline.function_name:
        return failed(f"the mapping invokes {function[6]}, not {pipeline.function_name}", REDEPLOY)
    if state in {"Disabled", "Disabling"}:
        return failed(
            f"the mapping is {state}: files wait in the queue until its retention ends",
            f"filepipe resume {pipeline.name}",
        )
    if state != "Enabled":
        return warned(
            f"the mapping is {state}", "check again in a minute; Lambda applies changes asynchronously"
        )
    result = str(mapping.get("LastProcessingResult") or "")
    if result.startswith("PROBLEM"):
        return warned(f"enabled, but Lambda reports: {result}", "see the function's logs (filepipe logs)")
    return passed(f"enabled, batch size {mapping.get('BatchSize')}")


def check_handler_settings(probe: PipelineProbe) -> Verdicts:
    """The function's settings as the handler reads them, and whether the files the notification sends
    can be read with them (compression against the suffixes; the outputs' place)."""
    pipeline = probe.pipeline
    try:
        settings = probe.settings
    except SettingsError as error:
        return failed(
            f"the handler cannot start: {error}; every file it is sent fails",
            f"fix the function's environment ({pipeline.function_name}); {REDEPLOY}",
        )
    mismatched = [
        f"{name} is {mine!r}, the stack outputs say {theirs!r}"
        for name, mine, theirs in (
            ("FILEPIPE_INPUT_PREFIX", settings.input_prefix, pipeline.input_prefix),
            ("FILEPIPE_OUTPUT_PREFIX", settings.output_prefix, pipeline.output_prefix),
        )
        if mine != theirs
    ]
    if mismatched:
        return failed(
            "; ".join(mismatched) + ": files are refused, or outputs land where nobody looks", REDEPLOY
        )
    if settings.max_file_bytes < 1:
        return failed(
            f"FILEPIPE_MAX_FILE_BYTES is {settings.max_file_bytes}: every file is too large", REDEPLOY
        )
    problems, cautions = _compression_against_suffixes(settings, pipeline.input_suffixes)
    if problems:
        return failed(
            "; ".join(problems),
            "add the compression's suffix to input_suffixes, or use input_compression='auto'; " + REDEPLOY,
        )
    if settings.file_processor and (settings.processor or settings.schema_file):
        cautions.append(
            "a processor or schema is set beside the whole-file processor: they never run (it reads no records)"
        )
    if cautions:
        return warned(
            "; ".join(cautions), "set input_compression='auto' (or 'gzip'/'zstd') to decompress them"
        )
    return passed(_describe_settings(settings, pipeline.output_prefix))


def _compression_against_suffixes(
    settings: HandlerSettings, suffixes: Sequence[str]
) -> tuple[list[str], list[str]]:
    """``(failures, warnings)``: suffixes whose files the compression setting cannot read as they come."""
    setting = settings.input_compression
    problems: list[str] = []
    cautions: list[str] = []
    if setting in (InputCompression.GZIP, InputCompression.ZSTD):
        marks = compressed_suffixes(setting)
        for suffix in suffixes or ("",):
            if not suffix.lower().endswith(marks):
                shown = f"files ending {suffix}" if suffix else "every file"
                problems.append(
                    f"{shown} are read as {setting.value} (input_compression {setting.value}): each plain one "
                    "fails as CorruptCompressionError"
                )
    elif setting is InputCompression.NONE and not settings.file_processor:
        for suffix in suffixes:
            if suffix.lower().endswith(tuple(COMPRESSION_SUFFIXES.values())):
                cautions.append(
                    f"files ending {suffix} are read as plain {settings.input_format.value} (input_compression "
                    "none): a compressed one fails as invalid content"
                )
    return problems, cautions


def _describe_settings(settings: HandlerSettings, output_prefix: str) -> str:
    if settings.file_processor:
        reads = f"whole-file processor {settings.file_processor}, outputs in {output_prefix}<input path>/"
    else:
        reads = f"{settings.input_format.value} -> {settings.output_format.value}"
    compression = {
        InputCompression.AUTO: "compressed inputs by suffix or Content-Encoding",
        InputCompression.NONE: "inputs read as they are",
    }.get(settings.input_compression, f"{settings.input_compression.value} inputs")
    written = (
        ""
        if settings.output_compression is OutputCompression.NONE
        else f", outputs {settings.output_compression.value} ({COMPRESSION_SUFFIXES[settings.output_compression]})"
    )
    return f"{reads}; {compression}{written}; size cap {settings.max_file_bytes} bytes"


def role_requirements(probe: PipelineProbe) -> list[tuple[str, Request]]:
    """``(why, request)`` for every grant the component gives the function, on concrete probe resources.

    The list comes from the component's own policy (:func:`filepipe.policies.function_role_policy`), so
    the doctor asks for exactly what the handler and its poller use.
    """
    pipeline, arn = probe.pipeline, probe.arn
    prefix = f"arn:{arn.partition}"
    key = probe.queue.get("KmsMasterKeyId", "")
    document = function_role_policy(
        partition=arn.partition,
        bucket=pipeline.bucket,
        input_prefix=pipeline.input_prefix,
        output_prefix=pipeline.output_prefix,
        queue_arn=pipeline.queue_arn,
        dlq_arn=pipeline.dlq_arn,
        log_group_arn=f"{prefix}:logs:{arn.region}:{arn.account}:log-group:{pipeline.log_group_name}",
        table_arn=(
            f"{prefix}:dynamodb:{arn.region}:{arn.account}:table/{pipeline.table_name}"
            if pipeline.table_name
            else None
        ),
        # An alias or key id cannot name the key's ARN the role policy must list: only ARNs are checked.
        kms_key_arn=key if key.startswith("arn:") else None,
    )
    return [
        (str(statement.get("Sid", "")), Request(action, resource.replace("*", PROBE_NAME)))
        for statement in doc.statements(document)
        for action in doc.actions(statement)
        for resource in doc.resources(statement)
    ]


def role_documents(
    probe: PipelineProbe, role_name: str
) -> tuple[list[Mapping[str, Any]], Mapping[str, Any] | None]:
    """``(inline and attached policy documents, permissions boundary document or None)``."""
    iam = probe.stack.iam()
    documents: list[Mapping[str, Any]] = []
    with reading("iam", missing=f"role {role_name} does not exist"):
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for policy_name in page["PolicyNames"]:
                policy = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)
                documents.append(doc.parse_document(policy["PolicyDocument"]))
        for attached_page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
            for attached in attached_page["AttachedPolicies"]:
                documents.append(_managed_policy(probe, attached["PolicyArn"]))
        boundary = iam.get_role(RoleName=role_name)["Role"].get("PermissionsBoundary")
    boundary_document = _managed_policy(probe, boundary["PermissionsBoundaryArn"]) if boundary else None
    return documents, boundary_document


def _managed_policy(probe: PipelineProbe, arn: str) -> Mapping[str, Any]:
    iam = probe.stack.iam()
    with reading("iam", missing=f"policy {arn} does not exist"):
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return doc.parse_document(document)


def check_role(probe: PipelineProbe) -> Verdicts:
    role_arn = str(probe.function["Role"])
    role_name = role_arn.rsplit("/", 1)[-1]
    documents, boundary = role_documents(probe, role_name)
    missing, undetermined = [], []
    for why, request in role_requirements(probe):
        evaluation = evaluate_with_boundary(documents, boundary, request)
        described = f"{request.action} on {request.resource} ({why})"
        if evaluation.decision is Decision.UNDETERMINED:
            undetermined.append(f"{described}: depends on {', '.join(evaluation.unknowns)}")
        elif not evaluation.allowed:
            by = f" by {', '.join(evaluation.statements)}" if evaluation.statements else ""
            missing.append(f"{described}: {evaluation.decision}{by}")
    if missing:
        return failed(
            f"role {role_name} lacks: " + "; ".join(missing),
            f"grant them to role {role_name}; deploy the stack again (pulumi up) to restore the component's policy",
        )
    if undetermined:
        return warned(
            f"role {role_name}: " + "; ".join(undetermined), "check those conditions hold for Lambda"
        )
    return passed(f"role {role_name} reads the input, writes the output and consumes the queue")


def check_queue_policy(probe: PipelineProbe) -> Verdicts:
    deliveries = probe.deliveries
    if not deliveries:
        return warned("nothing sends to the queue, so there is no sender to admit (see event-delivery)")
    policy = probe.queue.get("Policy")
    documents = [doc.parse_document(policy)] if policy else []
    refused, unsure = [], []
    for delivery in deliveries:
        request = Request(
            "sqs:SendMessage",
            probe.pipeline.queue_arn,
            principal=("Service", delivery.service),
            # AWS services deliver over TLS, from the pipeline's account (the component's assumption).
            context={
                "aws:SourceArn": delivery.source_arn,
                "aws:SourceAccount": probe.arn.account,
                "aws:SecureTransport": "true",
            },
        )
        evaluation = evaluate(documents, request)
        if evaluation.decision is Decision.UNDETERMINED:
            unsure.append(f"{delivery.via}: depends on {', '.join(evaluation.unknowns)}")
        elif not evaluation.allowed:
            refused.append(f"{delivery.via} ({delivery.service})")
    if refused:
        return failed(
            "the queue policy does not let "
            + ", ".join(refused)
            + " send to the queue: its events are dropped",
            f"allow sqs:SendMessage for the sender with aws:SourceArn and aws:SourceAccount conditions; {REDEPLOY}",
        )
    if unsure:
        return warned("; ".join(unsure), "check the queue policy's conditions")
    return passed("admits " + ", ".join(delivery.via for delivery in deliveries))


def check_event_delivery(probe: PipelineProbe) -> Verdicts:
    deliveries = probe.deliveries
    pipeline = probe.pipeline
    filters = ", ".join(f"{pipeline.input_prefix}*{suffix}" for suffix in pipeline.input_suffixes or ("",))
    if not deliveries:
        return failed(
            f"no S3 notification of bucket {pipeline.bucket}, no EventBridge rule and no SNS subscription "
            "sends to the queue: new files are never processed",
            "S3 keeps one notification configuration per bucket and a second one replaces the first; "
            + REDEPLOY,
        )
    broken = [delivery for delivery in deliveries if delivery.problems]
    if broken:
        return failed(
            "; ".join(f"{delivery.via}: {', '.join(delivery.problems)}" for delivery in broken),
            f"the component's route sends exactly {filters}; {REDEPLOY}",
        )
    if len(deliveries) > 1:
        return warned(
            "each file is sent several times: " + ", ".join(delivery.via for delivery in deliveries),
            "keep one route (notification_mode s3, eventbridge or sns)",
        )
    if deliveries[0].warnings:
        return warned(f"{deliveries[0].via}: {', '.join(deliveries[0].warnings)}", REDEPLOY)
    return passed(f"{deliveries[0].via} sends {filters}")


def check_visibility_timeout(probe: PipelineProbe) -> Verdicts:
    visibility = int(probe.queue.get("VisibilityTimeout", 0))
    timeout = int(probe.function.get("Timeout", 0))
    try:
        window = int(probe.mapping.get("MaximumBatchingWindowInSeconds") or 0)
    except NotFoundError:
        window = 0  # The mapping check reports that.
    wanted = defaults.VISIBILITY_TIMEOUT_FACTOR * timeout + window
    hint = (
        f"set the queue's visibility timeout to at least {wanted} s (leave visibility_timeout_seconds unset)"
    )
    if visibility < timeout:
        return failed(
            f"{visibility} s, shorter than the function timeout ({timeout} s): messages still being processed "
            "are delivered again",
            hint,
        )
    if visibility < wanted:
        return warned(
            f"{visibility} s, below {defaults.VISIBILITY_TIMEOUT_FACTOR} x the function timeout ({timeout} s)"
            + (f" + batching window ({window} s)" if window else "")
            + ": retried batches can overlap ones still running",
            hint,
        )
    return passed(
        f"{visibility} s >= {defaults.VISIBILITY_TIMEOUT_FACTOR} x {timeout} s"
        + (f" + {window} s" if window else "")
    )


def check_dlq_retention(probe: PipelineProbe) -> Verdicts:
    source = int(probe.queue.get("MessageRetentionPeriod", 0))
    parked = int(probe.dlq.get("MessageRetentionPeriod", 0))
    if parked <= source:
        return failed(
            f"the dead-letter queue keeps messages {parked} s, not longer than the queue ({source} s): a moved "
            "message keeps its enqueue time and can expire on arrival",
            f"set dlq_retention_seconds to {defaults.DLQ_RETENTION_SECONDS} (14 days, the maximum)",
        )
    return passed(f"{parked} s > {source} s")


def check_redrive(probe: PipelineProbe) -> Verdicts:
    raw = probe.queue.get("RedrivePolicy")
    try:
        redrive = json.loads(raw) if raw else {}
    except ValueError:
        redrive = {}
    target = redrive.get("deadLetterTargetArn") if isinstance(redrive, Mapping) else None
    if not target:
        return failed("the queue has no redrive policy: a poison file is retried until it expires", REDEPLOY)
    if target != probe.pipeline.dlq_arn:
        return failed(
            f"the queue redrives to {target}, not the pipeline's {probe.pipeline.dlq_arn}", REDEPLOY
        )
    count = int(redrive.get("maxReceiveCount", 0))
    if count < RECOMMENDED_MAX_RECEIVE_COUNT:
        return warned(
            f"maxReceiveCount {count}: throttled receives count too, so healthy files can be parked",
            f"set max_receive_count to at least {RECOMMENDED_MAX_RECEIVE_COUNT}",
        )
    return passed(f"to the pipeline's dead-letter queue after {count} receives")


def check_dlq_alarm(probe: PipelineProbe) -> Verdicts:
    alarm = probe.alarm_on(_DLQ_ALARM, probe.pipeline.dlq_url)
    if alarm is None:
        return failed(
            f"no alarm on the dead-letter queue's {_DLQ_ALARM.metric_name}: parked files go unnoticed",
            REDEPLOY,
        )
    name = alarm["AlarmName"]
    if not alarm.get("ActionsEnabled", True):
        return failed(
            f"{name} has its actions disabled", f"aws cloudwatch enable-alarm-actions --alarm-names {name}"
        )
    if not alarm.get("AlarmActions"):
        return failed(f"{name} has no alarm actions: nobody is told", REDEPLOY)
    return passed(f"{name} ({alarm.get('StateValue')}) notifies {', '.join(alarm['AlarmActions'])}")


def check_subscribers(probe: PipelineProbe) -> Verdicts:
    alarm = probe.alarm_on(_DLQ_ALARM, probe.pipeline.dlq_url)
    actions = alarm.get("AlarmActions", []) if alarm else []
    topics = [arn for arn in actions if ":sns:" in arn] or [probe.pipeline.topic_arn]
    routing = _routing_topics(probe)
    if misrouted := [topic for topic in topics if topic in routing]:
        return failed(
            f"{', '.join(misrouted)} is the bucket's routing topic: alarms go to the pipelines' queues as if "
            "they were files, and reach nobody",
            "give the alarms a topic of their own (alert_emails or alert_topic_arn)",
        )
    silent, told = [], []
    for topic in filter(None, topics):
        confirmed, pending = _subscriptions(probe, topic)
        if confirmed:
            told.append(f"{topic} ({confirmed} confirmed)")
        else:
            silent.append(
                f"{topic} ({pending} pending confirmation)" if pending else f"{topic} (no subscription)"
            )
    if silent:
        return failed(
            "no confirmed subscriber on " + ", ".join(silent) + ": alarms reach nobody",
            "confirm the subscription e-mail, or add alert_emails / subscribe an endpoint to the topic",
        )
    if not told:
        return warned("the pipeline names no alert topic", "set alert_emails or alert_topic_arn")
    return passed(", ".join(told))


def _routing_topics(probe: PipelineProbe) -> set[str]:
    """The topics the bucket notifies: their subscribers are pipelines' queues, not people."""
    try:
        configurations = probe.notification.get("TopicConfigurations", [])
    except (PermissionMissingError, NotFoundError):
        return set()  # event-delivery reports that
    return {str(configuration.get("TopicArn")) for configuration in configurations}


def _subscriptions(probe: PipelineProbe, topic: str) -> tuple[int, int]:
    """``(confirmed, pending)`` subscriptions of ``topic``."""
    confirmed = pending = 0
    with reading("sns", missing=f"topic {topic} does not exist"):
        paginator = probe.stack.sns().get_paginator("list_subscriptions_by_topic")
        for page in paginator.paginate(TopicArn=topic):
            for subscription in page.get("Subscriptions", []):
                arn = subscription.get("SubscriptionArn", "")
                if arn == PENDING_CONFIRMATION:
                    pending += 1
                elif arn.startswith("arn:"):  # not "Deleted"
                    confirmed += 1
    return confirmed, pending


def check_backlog(probe: PipelineProbe) -> Verdicts:
    waiting = int(probe.queue.get("ApproximateNumberOfMessages", 0))
    in_flight = int(probe.queue.get("ApproximateNumberOfMessagesNotVisible", 0))
    parked = int(probe.dlq.get("ApproximateNumberOfMessages", 0))
    with reading("cloudwatch"):
        age = oldest_message_age(probe.stack, probe.pipeline.queue_url)
    age_alarm = probe.alarm_on(_AGE_ALARM, probe.pipeline.queue_url)
    limit = float(age_alarm["Threshold"]) if age_alarm else float(defaults.QUEUE_AGE_ALARM_SECONDS)
    detail = f"{waiting} waiting, {in_flight} in flight" + (
        f", oldest {age:.0f} s" if age is not None else ""
    )
    name = probe.pipeline.name
    if age is not None and age >= limit:
        return failed(
            f"{detail}: older than {limit:.0f} s, processing is stuck or too slow",
            f"see filepipe status {name} and filepipe logs {name}; raise maximum_concurrency if it keeps up",
        )
    if parked:
        return warned(
            f"{detail}; {parked} parked in the dead-letter queue",
            f"inspect them: filepipe failed list {name}",
        )
    return passed(detail)


Check = tuple[str, Callable[[PipelineProbe], Verdicts]]
CHECKS: Final[tuple[Check, ...]] = (
    ("mapping-enabled", check_mapping),
    ("handler-settings", check_handler_settings),
    ("function-role", check_role),
    ("queue-policy", check_queue_policy),
    ("event-delivery", check_event_delivery),
    ("visibility-timeout", check_visibility_timeout),
    ("dlq-retention", check_dlq_retention),
    ("redrive", check_redrive),
    ("dlq-alarm", check_dlq_alarm),
    ("alert-subscribers", check_subscribers),
    ("backlog", check_backlog),
)
"""In the order people troubleshoot: is it running, may it, does it get the files, then the safety nets."""


def run_check(name: str, check: Callable[[PipelineProbe], Verdicts], probe: PipelineProbe) -> CheckResult:
    try:
        verdict, detail, hint = check(probe)
    except PermissionMissingError as error:
        return CheckResult(
            name,
            Verdict.WARN,
            f"cannot be evaluated: {error.permission} was denied",
            f"grant {error.permission} to the identity running filepipe doctor",
        )
    except NotFoundError as error:
        return CheckResult(name, Verdict.FAIL, error.detail, error.hint)
    return CheckResult(name, verdict, detail, hint)


def diagnose(stack: Stack, pipeline: Pipeline, checks: Sequence[Check] = CHECKS) -> list[CheckResult]:
    probe = PipelineProbe(stack, pipeline)
    return [run_check(name, check, probe) for name, check in checks]


def _doctor(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipelines = stack.select(args.pipelines)
    report = {pipeline.name: diagnose(stack, pipeline) for pipeline in pipelines}
    ok = all(result.verdict is not Verdict.FAIL for results in report.values() for result in results)
    if out.as_json:
        out.document(
            {
                "stack": stack.name,
                "where": stack.where,
                "pipelines": {
                    name: {"checks": [result.to_json() for result in results]}
                    for name, results in report.items()
                },
                "ok": ok,
            }
        )
    else:
        out.console.print(f"stack [bold]{stack.name}[/] on {stack.where}")
        for name, results in report.items():
            out.console.print(_render(name, results))
    return 0 if ok else EXIT_FAILED


_SYMBOLS: Final = {
    Verdict.PASS: ("✓", "green"),
    Verdict.WARN: ("!", "yellow"),
    Verdict.FAIL: ("✗", "bold red"),
}


def _render(name: str, results: Sequence[CheckResult]) -> Table:
    table = Table(title=f"[bold]{name}[/]", title_justify="left", show_header=False, box=None, padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="ellipsis")  # wraps between words; a word too long is cut, not broken
    for result in results:
        symbol, style = _SYMBOLS[result.verdict]
        table.add_row(Text(symbol, style=style), result.name, Text(result.detail))
        if result.hint and result.verdict is not Verdict.PASS:
            table.add_row("", "", Text(f"→ {result.hint}", style="dim"))
    return table
