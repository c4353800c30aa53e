"""The bucket's notification configuration: one resource per bucket, shared by its pipelines.

S3 keeps a single notification configuration per bucket; a second resource silently replaces the
first. So every pipeline exposes a :class:`NotificationTarget` and exactly one owner (the pipeline itself
when alone, or a :class:`~filepipe.group.PipelineGroup`) merges them into one ``BucketNotification``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .routing import Route, RoutingTopic, topic_configurations

OBJECT_CREATED = "s3:ObjectCreated:*"


@dataclass(frozen=True)
class NotificationTarget:
    """What one pipeline needs from the bucket's notification configuration."""

    pipeline: str
    mode: str
    """``s3`` (queue configurations), ``eventbridge`` (the bucket's EventBridge switch) or ``sns`` (topic
    configurations for the routing topic)."""
    queue_arn: pulumi.Output[str]
    prefix: str
    suffixes: tuple[str, ...]
    ready: pulumi.Resource
    """The resource that must exist first: S3 validates the destination's policy on creation (in ``sns``
    mode the subscription, so no file is published before its route exists)."""
    route: Route | None = None
    """``sns`` mode: what the pipeline receives from the routing topic."""


def queue_configurations(targets: Sequence[NotificationTarget]) -> list[aws.s3.BucketNotificationQueueArgs]:
    """One queue configuration per (s3-mode pipeline, suffix): S3 filters take a single suffix each."""
    return [
        aws.s3.BucketNotificationQueueArgs(
            id=f"{target.pipeline}{suffix}",
            queue_arn=target.queue_arn,
            events=[OBJECT_CREATED],
            filter_prefix=target.prefix,
            filter_suffix=suffix,
        )
        for target in targets
        if target.mode == "s3"
        for suffix in target.suffixes
    ]


def topic_configurations_for(
    topic_arn: pulumi.Input[str], targets: Sequence[NotificationTarget]
) -> list[aws.s3.BucketNotificationTopicArgs]:
    """The routing topic's configurations: the union of the ``sns``-mode pipelines' routes."""
    routes = [target.route for target in targets if target.mode == "sns" and target.route is not None]
    return [
        aws.s3.BucketNotificationTopicArgs(
            id=configuration.id,
            topic_arn=topic_arn,
            events=[OBJECT_CREATED],
            filter_prefix=configuration.prefix,
            filter_suffix=configuration.suffix,
        )
        for configuration in topic_configurations(routes)
    ]


def bucket_notification(
    name: str,
    bucket: pulumi.Input[str],
    targets: Sequence[NotificationTarget],
    parent: pulumi.Resource,
    routes: RoutingTopic | None = None,
) -> aws.s3.BucketNotification:
    """Create the bucket's single notification resource for all ``targets`` (``routes``: the bucket's
    routing topic, for ``sns``-mode targets)."""
    depends_on = [target.ready for target in targets]
    topics: list[aws.s3.BucketNotificationTopicArgs] = []
    if routes is not None:
        topics = topic_configurations_for(routes.topic.arn, targets)
        depends_on.append(routes.policy)
    return aws.s3.BucketNotification(
        f"{name}-notification",
        bucket=bucket,
        queues=queue_configurations(targets),
        topics=topics or None,
        eventbridge=any(target.mode == "eventbridge" for target in targets),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
