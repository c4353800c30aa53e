"""PipelineGroup: several pipelines on one bucket, behind the bucket's single notification resource."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .args import PipelineArgs
from .bucket import PipelineBucket, PipelineBucketArgs, bucket_name_of
from .errors import PipelineConfigError
from .naming import check_auto_names
from .notifications import bucket_notification
from .pipeline import FileProcessingPipeline, auto_names
from .routing import RoutingTopic, routing_topic
from .validation import validate_bucket_filters, validate_bucket_lifecycle, validate_pipeline

TYPE_TOKEN = "filepipe:index:PipelineGroup"


@dataclass(kw_only=True)
class PipelineGroupArgs:
    """Inputs of :class:`PipelineGroup`."""

    pipelines: Mapping[str, PipelineArgs]
    """The pipelines, by name. Their ``bucket`` must be unset: the group provides it."""

    bucket: str | aws.s3.Bucket | PipelineBucket | None = None
    """``None`` creates a hardened bucket; a name or resource uses an existing one."""

    bucket_args: PipelineBucketArgs = field(default_factory=PipelineBucketArgs)
    """Settings of the created bucket (ignored when ``bucket`` is given). The pipelines' input lifecycle
    rules are added to its ``prefix_rules``."""

    take_over_bucket_notification: bool = False
    """With an existing ``bucket`` (a name or an ``aws.s3.Bucket``): confirm that the group may own the
    bucket's single notification configuration, which **replaces** every notification the bucket has and
    is cleared when the stack is deleted. Left ``False``, a group on an existing bucket is an error."""


class PipelineGroup(pulumi.ComponentResource):
    """Pipelines sharing one bucket. Validates their filters together (overlap, recursion) and owns the
    bucket's one notification resource, created after every pipeline's queue policy."""

    bucket_name: pulumi.Output[str]
    """The shared bucket."""
    pipelines: dict[str, FileProcessingPipeline]
    """The pipelines, by name."""
    notification: aws.s3.BucketNotification
    """The bucket's single notification configuration."""
    routing_topic: aws.sns.Topic | None
    """``sns`` mode: the topic the bucket notifies and every pipeline's queue subscribes to."""

    def __init__(
        self, name: str, args: PipelineGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if not args.pipelines:
            raise PipelineConfigError(f"group {name!r}: pipelines must not be empty.")
        for pipeline_name, pipeline_args in args.pipelines.items():
            if pipeline_args.bucket is not None:
                raise PipelineConfigError(
                    f"pipeline {pipeline_name!r}: leave bucket unset inside a PipelineGroup; set the group's "
                    "bucket instead."
                )
            if pipeline_args.take_over_bucket_notification:
                raise PipelineConfigError(
                    f"pipeline {pipeline_name!r}: the group owns the bucket's notification; set "
                    "take_over_bucket_notification on the group instead."
                )
        filters = [
            validate_pipeline(pipeline_args.pipeline_name or pipeline_name, pipeline_args)
            for pipeline_name, pipeline_args in args.pipelines.items()
        ]
        validate_bucket_filters(name, filters)
        members = {
            pipeline_name: dataclasses.replace(
                pipeline_args,
                pipeline_name=pipeline_args.pipeline_name or pipeline_name,
                manage_bucket_notification=False,
            )
            for pipeline_name, pipeline_args in args.pipelines.items()
        }
        bucket_args = self._bucket_args(name, args, members)
        routed = any(member.notification_mode == "sns" for member in members.values())
        if args.bucket is None:
            check_auto_names(name, [("S3 bucket", f"{name}-bucket")])
        if routed:
            check_auto_names(name, [("SNS topic", f"{name}-routes")])
        for pipeline_name, member in members.items():
            check_auto_names(
                member.pipeline_name or pipeline_name, auto_names(f"{name}-{pipeline_name}", member)
            )

        super().__init__(TYPE_TOKEN, name, None, opts)
        bucket = args.bucket
        if bucket is None:
            bucket = PipelineBucket(f"{name}-bucket", bucket_args, opts=pulumi.ResourceOptions(parent=self))
        self.bucket_name = bucket_name_of(bucket)
        # One routing topic per bucket, owned with the bucket's notification; created before the pipelines,
        # whose queues subscribe to it.
        routes: RoutingTopic | None = None
        if routed:
            routes = routing_topic(
                name,
                self.bucket_name,
                encrypted=any(member.encryption == "kms" for member in members.values()),
                kms_key_arn=None,
                tags=_shared_tags(members.values()),
                parent=self,
            )
            members = {
                key: dataclasses.replace(member, routing_topic_arn=routes.topic.arn)
                for key, member in members.items()
            }
        self.routing_topic = routes.topic if routes is not None else None

        self.pipelines = {
            pipeline_name: FileProcessingPipeline(
                f"{name}-{pipeline_name}",
                # The group's bucket carries the members' lifecycle rules: a pipeline may not add its own.
                dataclasses.replace(
                    member,
                    bucket=bucket,
                    input_expiration_days=None,
                    input_transition_days=None,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for pipeline_name, member in members.items()
        }
        self.notification = bucket_notification(
            name,
            self.bucket_name,
            [pipeline.notification_target for pipeline in self.pipelines.values()],
            parent=self,
            routes=routes,
        )
        outputs: dict[str, Any] = {
            "bucket": self.bucket_name,
            "pipelines": {key: pipeline.outputs for key, pipeline in self.pipelines.items()},
        }
        if self.routing_topic is not None:
            outputs["routingTopicArn"] = self.routing_topic.arn
        self.register_outputs(outputs)

    @staticmethod
    def _bucket_args(
        name: str, args: PipelineGroupArgs, members: Mapping[str, PipelineArgs]
    ) -> PipelineBucketArgs:
        """The created bucket's settings with the members' input lifecycle rules; checks what a group on an
        existing bucket would change there."""
        rules = [
            rule
            for member in members.values()
            if (rule := member.input_lifecycle(f"inputs-{member.pipeline_name}")) is not None
        ]
        if args.bucket is not None:
            if not args.take_over_bucket_notification:
                raise PipelineConfigError(
                    f"group {name!r}: the bucket is an existing one, and S3 keeps a single notification "
                    "configuration per bucket: the group's BucketNotification would replace every "
                    "notification the bucket has now, and deleting the stack would clear it. Set "
                    "take_over_bucket_notification=True to accept that."
                )
            if rules:
                raise PipelineConfigError(
                    f"group {name!r}: input_expiration_days / input_transition_days need a bucket the group "
                    "creates (a lifecycle configuration is bucket-wide and would replace the existing one)."
                )
            return args.bucket_args
        bucket_args = dataclasses.replace(
            args.bucket_args, prefix_rules=[*args.bucket_args.prefix_rules, *rules]
        )
        validate_bucket_lifecycle(
            f"{name}-bucket",
            abort_incomplete_multipart_upload_days=bucket_args.abort_incomplete_multipart_upload_days,
            noncurrent_version_expiration_days=bucket_args.noncurrent_version_expiration_days,
            rules=bucket_args.prefix_rules,
            longest_dlq_retention_seconds=max(member.dlq_retention_seconds for member in members.values()),
        )
        return bucket_args


def _shared_tags(members: Iterable[PipelineArgs]) -> dict[str, pulumi.Input[str]]:
    """The tags every pipeline sets alike: the group's own resources carry those."""
    first, *rest = members
    return {key: value for key, value in first.tags.items() if all(m.tags.get(key) == value for m in rest)}
