"""Who writes to and reads from what: the stack's data path, resolved from a policy pack's view of it.

A stack policy sees every resource's properties and, from the engine, which resources each property was
computed from (``property_dependencies``). References are resolved from those dependencies first, because
during a first ``pulumi preview`` the ARNs and URLs they carry are still unknown, and otherwise by matching
the identifiers (ARN, URL, name, id) a property carries, which also finds resources a program refers to
by literal ARN.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pulumi_policy import PolicyResource
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

UNKNOWN_VALUES: Final = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)
"""The engine's placeholders for values that are computed during the update (see ``pulumi_policy.proxy``)."""

# Type tokens (pulumi-aws 7). The V2 S3 names are the deprecated aliases v7 still registers.
BUCKET: Final = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
BUCKET_NOTIFICATION: Final = ("aws:s3/bucketNotification:BucketNotification",)
BUCKET_POLICY: Final = ("aws:s3/bucketPolicy:BucketPolicy",)
BUCKET_PUBLIC_ACCESS_BLOCK: Final = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
BUCKET_VERSIONING: Final = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
BUCKET_ENCRYPTION: Final = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
BUCKET_LIFECYCLE: Final = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
QUEUE: Final = ("aws:sqs/queue:Queue",)
QUEUE_POLICY: Final = ("aws:sqs/queuePolicy:QueuePolicy",)
TOPIC: Final = ("aws:sns/topic:Topic",)
TOPIC_POLICY: Final = ("aws:sns/topicPolicy:TopicPolicy",)
TOPIC_SUBSCRIPTION: Final = ("aws:sns/topicSubscription:TopicSubscription",)
FUNCTION: Final = ("aws:lambda/function:Function",)
EVENT_SOURCE_MAPPING: Final = ("aws:lambda/eventSourceMapping:EventSourceMapping",)
METRIC_ALARM: Final = ("aws:cloudwatch/metricAlarm:MetricAlarm",)
EVENT_RULE: Final = ("aws:cloudwatch/eventRule:EventRule",)
EVENT_TARGET: Final = ("aws:cloudwatch/eventTarget:EventTarget",)
LOG_GROUP: Final = ("aws:cloudwatch/logGroup:LogGroup",)
KMS_KEY: Final = ("aws:kms/key:Key",)
ROLE: Final = ("aws:iam/role:Role",)
ROLE_POLICY: Final = ("aws:iam/rolePolicy:RolePolicy",)
MANAGED_POLICY: Final = ("aws:iam/policy:Policy",)
IDENTITY_POLICY_ATTACHMENT: Final = ("aws:iam/rolePolicyAttachment:RolePolicyAttachment",)
KMS_ALIAS: Final = ("aws:kms/alias:Alias",)

S3_SERVICE: Final = "s3.amazonaws.com"
SNS_SERVICE: Final = "sns.amazonaws.com"
EVENTS_SERVICE: Final = "events.amazonaws.com"
CLOUDWATCH_SERVICE: Final = "cloudwatch.amazonaws.com"

_IDENTIFIER_KEYS: Final = ("arn", "id", "url", "name", "bucket", "keyId", "targetKeyArn")


def unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_VALUES


def _strings(value: Any) -> Iterator[str]:
    """Every string leaf, looking inside JSON-encoded strings (redrive policies, event patterns)."""
    if isinstance(value, str):
        yield value
        if value[:1] in {"{", "["}:
            with contextlib.suppress(json.JSONDecodeError):
                yield from _strings(json.loads(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


@dataclass(eq=False)
class Node:
    """One resource with plain properties (unknowns kept as the engine's placeholder strings)."""

    resource: PolicyResource
    props: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        # serialize_properties unwraps the pack's unknown-checking proxies without tripping them.
        self.props = dict(serialize_properties(self.resource.props))

    @property
    def type(self) -> str:
        return self.resource.resource_type

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def urn(self) -> str:
        return self.resource.urn

    def get(self, key: str, default: Any = None) -> Any:
        """A property, or ``default`` when it is absent, null or unknown."""
        value = self.props.get(key)
        return default if value is None or unknown(value) else value

    def is_unknown(self, key: str) -> bool:
        return unknown(self.props.get(key))

    def identifiers(self) -> set[str]:
        return {
            value
            for key in _IDENTIFIER_KEYS
            if isinstance(value := self.props.get(key), str) and value and not unknown(value)
        }

    def depends_on_through(self, prop: str) -> set[str]:
        return {dependency.urn for dependency in self.resource.property_dependencies.get(prop, [])}

    def __repr__(self) -> str:
        return f"<{self.type} {self.name}>"


class Wiring:
    """An index over a stack's resources that answers the data-path questions the stack rules ask."""

    def __init__(self, resources: Iterable[PolicyResource]) -> None:
        self.nodes = [Node(resource) for resource in resources]
        self._by_urn = {node.urn: node for node in self.nodes}

    def of_type(self, types: Sequence[str]) -> list[Node]:
        return [node for node in self.nodes if node.type in types]

    def node(self, resource: PolicyResource) -> Node:
        return self._by_urn[resource.urn]

    # --- references ----------------------------------------------------------------------------------

    def refers(self, node: Node, prop: str, target: Node) -> bool:
        """Whether ``node.prop`` was computed from ``target`` or names one of its identifiers."""
        if target.urn in node.depends_on_through(prop):
            return True
        identifiers = target.identifiers()
        return any(value in identifiers for value in _strings(node.props.get(prop)))

    def targets(self, node: Node, prop: str, types: Sequence[str]) -> list[Node]:
        return [target for target in self.of_type(types) if self.refers(node, prop, target)]

    def referrers(self, target: Node, types: Sequence[str], *props: str) -> list[Node]:
        return [
            node for node in self.of_type(types) if any(self.refers(node, prop, target) for prop in props)
        ]

    # --- the data path ---------------------------------------------------------------------------------

    def mapping_source(self, mapping: Node) -> Node | None:
        sources = self.targets(mapping, "eventSourceArn", QUEUE)
        return sources[0] if sources else None

    def mapping_function(self, mapping: Node) -> Node | None:
        functions = self.targets(mapping, "functionName", FUNCTION)
        return functions[0] if functions else None

    def is_sqs_mapping(self, mapping: Node) -> bool:
        if self.mapping_source(mapping) is not None:
            return True
        source = mapping.get("eventSourceArn", "")
        return isinstance(source, str) and ":sqs:" in source

    def sqs_mappings(self) -> list[Node]:
        return [mapping for mapping in self.of_type(EVENT_SOURCE_MAPPING) if self.is_sqs_mapping(mapping)]

    def consumed_queues(self) -> list[tuple[Node, Node, Node | None]]:
        """``(queue, mapping, function)`` for every queue of this stack a function consumes."""
        consumed: list[tuple[Node, Node, Node | None]] = []
        for mapping in self.of_type(EVENT_SOURCE_MAPPING):
            queue = self.mapping_source(mapping)
            if queue is not None:
                consumed.append((queue, mapping, self.mapping_function(mapping)))
        return consumed

    def dead_letter_queue(self, queue: Node) -> Node | None:
        targets = [target for target in self.targets(queue, "redrivePolicy", QUEUE) if target is not queue]
        return targets[0] if targets else None

    def queue_alarms(self, queue: Node) -> list[Node]:
        return [
            alarm
            for alarm in self.referrers(queue, METRIC_ALARM, "dimensions")
            if alarm.get("namespace") == "AWS/SQS"
        ]

    def alarm_topics(self, alarm: Node) -> list[Node]:
        return self.targets(alarm, "alarmActions", TOPIC)

    def queue_writers(self, queue: Node) -> dict[str, list[Node]]:
        """Service principal -> the resources that make that service send to ``queue``."""
        writers = {
            S3_SERVICE: self.referrers(queue, BUCKET_NOTIFICATION, "queues"),
            EVENTS_SERVICE: self.referrers(queue, EVENT_TARGET, "arn"),
            SNS_SERVICE: [
                *self.sqs_subscriptions(queue),
                # A subscription's redrive writes to its dead-letter queue too.
                *self.referrers(queue, TOPIC_SUBSCRIPTION, "redrivePolicy"),
            ],
        }
        return {service: nodes for service, nodes in writers.items() if nodes}

    def sqs_subscriptions(self, queue: Node) -> list[Node]:
        """The topic subscriptions that deliver to ``queue``."""
        return [
            subscription
            for subscription in self.referrers(queue, TOPIC_SUBSCRIPTION, "endpoint")
            if subscription.get("protocol") == "sqs"
        ]

    def subscription_topic(self, subscription: Node) -> Node | None:
        topics = self.targets(subscription, "topic", TOPIC)
        return topics[0] if topics else None

    def subscription_dead_letter_queue(self, subscription: Node) -> Node | None:
        targets = self.targets(subscription, "redrivePolicy", QUEUE)
        return targets[0] if targets else None

    def topic_writers(self, topic: Node) -> dict[str, list[Node]]:
        writers = {
            CLOUDWATCH_SERVICE: self.referrers(
                topic, METRIC_ALARM, "alarmActions", "okActions", "insufficientDataActions"
            ),
            S3_SERVICE: self.referrers(topic, BUCKET_NOTIFICATION, "topics"),
            EVENTS_SERVICE: self.referrers(topic, EVENT_TARGET, "arn"),
        }
        return {service: nodes for service, nodes in writers.items() if nodes}

    def bucket_settings(self, bucket: Node, types: Sequence[str]) -> list[Node]:
        return self.referrers(bucket, types, "bucket")

    def notifications_of(self, bucket: Node) -> list[Node]:
        return self.bucket_settings(bucket, BUCKET_NOTIFICATION)

    def encrypting_keys(self, node: Node) -> list[Node]:
        """The KMS keys of this stack that ``node`` (a queue or topic) is encrypted with, through aliases too."""
        keys = self.targets(node, "kmsMasterKeyId", KMS_KEY)
        for alias in self.targets(node, "kmsMasterKeyId", KMS_ALIAS):
            keys.extend(key for key in self.targets(alias, "targetKeyId", KMS_KEY) if key not in keys)
        return keys
