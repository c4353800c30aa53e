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

OBJECT_CREATED = "s3:ObjectCreated:*"


@dataclass(frozen=True)
class NotificationTarget:
    """What one pipeline needs from the bucket's notification configuration."""

    pipeline: str
    mode: str
    """``s3`` (queue configurations) or ``eventbridge`` (the bucket's EventBridge switch)."""
    queue_arn: pulumi.Output[str]
    prefix: str
    suffixes: tuple[str, ...]
    ready: pulumi.Resource
    """The resource that must exist first: S3 validates the destination's policy on creation."""


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


def bucket_notification(
    name: str,
    bucket: pulumi.Input[str],
    targets: Sequence[NotificationTarget],
    parent: pulumi.Resource,
) -> aws.s3.BucketNotification:
    """Create the bucket's single notification resource for all ``targets``."""
    return aws.s3.BucketNotification(
        f"{name}-notification",
        bucket=bucket,
        queues=queue_configurations(targets),
        eventbridge=any(target.mode == "eventbridge" for target in targets),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[target.ready for target in targets]),
    )
