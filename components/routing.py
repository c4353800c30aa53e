"""Content-based routing through SNS (``notification_mode="sns"``): one topic per bucket, one filtered
subscription per pipeline.

A pipeline's route is a key prefix, one of several key suffixes and optional object-size bounds. An SNS
filter policy holds one list of alternatives per property and ANDs the properties, so it cannot say
"prefix P *and* suffix S" of the one property ``key``. The work is split with S3: the bucket notifies
the topic once per (prefix, suffix) with a configuration id that begins with a fixed-length tag of the
suffix, S3 copies that id into every record (``s3.configurationId``), and each subscription matches the
tags of its suffixes on the id, its prefix on the key and its bounds on the size. So every route is
exact, and a pipeline's filter depends only on its own inputs.

The functions here are pure (plain values in, dicts out) so they are tested without Pulumi;
:func:`routing_topic` declares the topic and its policy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import defaults
from .handler.events import event_key
from .policies import kms_key_policy, s3_to_topic_policy

_TAG_DIGITS = 10


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_TAG_DIGITS]


def suffix_tag(suffix: str) -> str:
    """The beginning of every configuration id that notifies the topic of ``suffix``. Fixed length, so no
    tag is the beginning of another's ids."""
    return f"sfx-{_digest(suffix)}-"


def configuration_id(prefix: str, suffix: str) -> str:
    """The id of the topic configuration for objects under ``prefix`` ending in ``suffix``."""
    return f"{suffix_tag(suffix)}{_digest(prefix)}"


@dataclass(frozen=True)
class Route:
    """Which objects one pipeline receives from the topic."""

    pipeline: str
    prefix: str
    suffixes: tuple[str, ...]
    min_bytes: int | None = None
    max_bytes: int | None = None


def filter_policy(route: Route) -> dict[str, Any]:
    """The subscription's filter policy, applied to the S3 event (``FilterPolicyScope: MessageBody``).

    Keys inside events are encoded as S3 encodes them (space -> ``+``), so the prefix is too.
    """
    obj: dict[str, Any] = {"key": [{"prefix": event_key(route.prefix)}]}
    bounds: list[Any] = []
    if route.min_bytes is not None:
        bounds += [">=", route.min_bytes]
    if route.max_bytes is not None:
        bounds += ["<", route.max_bytes]
    if bounds:
        obj["size"] = [{"numeric": bounds}]
    return {
        "Records": {
            "s3": {
                "configurationId": [{"prefix": suffix_tag(suffix)} for suffix in route.suffixes],
                "object": obj,
            }
        }
    }


def _leaves(policy: dict[str, Any]) -> Iterable[list[Any]]:
    for value in policy.values():
        if isinstance(value, dict):
            yield from _leaves(value)
        elif isinstance(value, list):
            yield value


def filter_policy_problems(policy: dict[str, Any]) -> list[str]:
    """What SNS would refuse in ``policy``: too many keys, too many value combinations, too large."""
    problems: list[str] = []
    leaves = list(_leaves(policy))
    if len(leaves) > defaults.SNS_FILTER_POLICY_MAX_KEYS:
        problems.append(f"{len(leaves)} keys (SNS allows {defaults.SNS_FILTER_POLICY_MAX_KEYS})")
    combinations = 1
    for values in leaves:
        combinations *= len(values)
    if combinations > defaults.SNS_FILTER_POLICY_MAX_COMBINATIONS:
        problems.append(
            f"{combinations} value combinations (SNS allows {defaults.SNS_FILTER_POLICY_MAX_COMBINATIONS})"
        )
    size = len(json.dumps(policy).encode())
    if size > defaults.SNS_FILTER_POLICY_MAX_BYTES:
        problems.append(f"{size} bytes (SNS allows {defaults.SNS_FILTER_POLICY_MAX_BYTES})")
    return problems


def notified_prefixes(prefixes: Iterable[str]) -> list[str]:
    """The prefixes the bucket notifies the topic for: every route's prefix, without those another one
    already covers (S3 rejects overlapping configurations)."""
    unique = sorted(set(prefixes))
    return [p for p in unique if not any(p != other and p.startswith(other) for other in unique)]


@dataclass(frozen=True)
class TopicConfiguration:
    """One (prefix, suffix) the bucket notifies the topic of."""

    id: str
    prefix: str
    suffix: str


def topic_configurations(routes: Sequence[Route]) -> list[TopicConfiguration]:
    """One configuration per notified prefix and suffix of a route under it: together exactly the union
    of the routes' key filters, pairwise disjoint when no two of those suffixes nest (validated)."""
    configurations: list[TopicConfiguration] = []
    for prefix in notified_prefixes(route.prefix for route in routes):
        suffixes = sorted(
            {suffix for route in routes if route.prefix.startswith(prefix) for suffix in route.suffixes}
        )
        configurations.extend(
            TopicConfiguration(configuration_id(prefix, suffix), prefix, suffix) for suffix in suffixes
        )
    return configurations


@dataclass(frozen=True)
class RoutingTopic:
    """The bucket's routing topic and the policy the bucket notification must wait for."""

    topic: aws.sns.Topic
    policy: aws.sns.TopicPolicy


def routing_topic(
    name: str,
    bucket_name: pulumi.Output[str],
    *,
    encrypted: bool,
    kms_key_arn: pulumi.Input[str] | None,
    tags: dict[str, pulumi.Input[str]],
    parent: pulumi.Resource,
) -> RoutingTopic:
    """The topic S3 publishes the bucket's events to, admitting only that bucket in this account.

    ``encrypted`` without ``kms_key_arn`` creates a customer-managed key that S3 may use: S3 cannot
    publish to a topic under the AWS-managed SNS key.
    """
    options = pulumi.ResourceOptions(parent=parent)
    account_id = aws.get_caller_identity_output().account_id
    partition = aws.get_partition_output().partition
    key_arn: pulumi.Input[str] | None = kms_key_arn
    if encrypted and key_arn is None:
        key = aws.kms.Key(
            f"{name}-routes-key",
            description=f"filepipe {name}: the bucket's routing topic",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.all(partition, account_id).apply(
                lambda values: json.dumps(
                    kms_key_policy(partition=values[0], account_id=values[1], services=("S3",))
                )
            ),
            tags=tags,
            opts=options,
        )
        key_arn = key.arn
    topic = aws.sns.Topic(f"{name}-routes", kms_master_key_id=key_arn, tags=tags, opts=options)
    policy = aws.sns.TopicPolicy(
        f"{name}-routes-policy",
        arn=topic.arn,
        policy=pulumi.Output.all(topic.arn, partition, bucket_name, account_id).apply(
            lambda values: json.dumps(
                s3_to_topic_policy(
                    topic_arn=values[0], bucket_arn=f"arn:{values[1]}:s3:::{values[2]}", account_id=values[3]
                )
            )
        ),
        opts=options,
    )
    return RoutingTopic(topic, policy)
