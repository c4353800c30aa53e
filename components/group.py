"""PipelineGroup: several pipelines on one bucket, behind the bucket's single notification resource.

No ``from __future__ import annotations``: Pulumi's analyzer reads the component's annotations as live
objects (its outputs are the annotated public attributes).
"""

from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from .args import PipelineArgs, PipelineBucketArgs, PipelineGroupArgs
from .bucket import PipelineBucket, bucket_name_of
from .errors import PipelineConfigError
from .naming import check_auto_names
from .notifications import bucket_notification
from .pipeline import FileProcessingPipeline, auto_names
from .resolved import PipelineSettings, resolve_bucket, resolve_pipeline
from .routing import RoutingTopic, routing_topic
from .validation import validate_bucket_filters, validate_bucket_lifecycle, validate_pipeline

TYPE_TOKEN = "filepipe:index:PipelineGroup"

# The fields of a member that the group decides: its bucket, its notification and the lifecycle rules
# (those go on the group's bucket).
_GROUP_OWNED = ("bucket_name", "bucket", "take_over_bucket_notification")
_ON_THE_BUCKET = ("input_expiration_days", "input_transition_days", "input_transition_storage_class")


class PipelineGroup(pulumi.ComponentResource):
    """Pipelines sharing one bucket. Validates their filters together (overlap, recursion) and owns the
    bucket's one notification resource, created after every pipeline's queue policy."""

    bucket_name: pulumi.Output[str]
    """The shared bucket."""
    pipeline_outputs: pulumi.Output[dict[str, dict[str, Any]]]
    """Each pipeline's outputs by pipeline name (the keys a pipeline's stack export has: ``queueUrl``,
    ``dlqUrl``, ``functionName``, ...)."""
    routing_topic_arn: pulumi.Output[str] | None
    """``sns`` mode: the topic the bucket notifies and every pipeline's queue subscribes to."""

    # The resources themselves, for Python programs (see the properties below).
    _pipelines: dict[str, FileProcessingPipeline]
    _notification: aws.s3.BucketNotification
    _routing_topic: aws.sns.Topic | None

    def __init__(
        self, name: str, args: PipelineGroupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        pipelines = args.get("pipelines") or {}
        if not pipelines:
            raise PipelineConfigError(f"group {name!r}: pipelines must not be empty.")
        for pipeline_name, pipeline_args in pipelines.items():
            if any(pipeline_args.get(key) is not None for key in ("bucket_name", "bucket")):
                raise PipelineConfigError(
                    f"pipeline {pipeline_name!r}: leave bucket_name and bucket unset inside a PipelineGroup; "
                    "set the group's instead."
                )
            if pipeline_args.get("take_over_bucket_notification"):
                raise PipelineConfigError(
                    f"pipeline {pipeline_name!r}: the group owns the bucket's notification; set "
                    "take_over_bucket_notification on the group instead."
                )
        members = {
            pipeline_name: _member(pipeline_name, pipeline_args)
            for pipeline_name, pipeline_args in pipelines.items()
        }
        validate_bucket_filters(
            name, [validate_pipeline(member.pipeline_name or key, member) for key, member in members.items()]
        )
        bucket_args = _bucket_args(name, args, members)
        routed = any(member.notification_mode == "sns" for member in members.values())
        existing = _existing_bucket(name, args)
        if existing is None:
            check_auto_names(name, [("S3 bucket", f"{name}-bucket")])
        if routed:
            check_auto_names(name, [("SNS topic", f"{name}-routes")])
        for pipeline_name, member in members.items():
            check_auto_names(
                member.pipeline_name or pipeline_name, auto_names(f"{name}-{pipeline_name}", member)
            )

        super().__init__(TYPE_TOKEN, name, None, opts)
        self.bucket_name = (
            bucket_name_of(existing)
            if existing is not None
            else PipelineBucket(
                f"{name}-bucket", bucket_args, opts=pulumi.ResourceOptions(parent=self)
            ).bucket_name
        )
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
        self._routing_topic = routes.topic if routes is not None else None
        self.routing_topic_arn = routes.topic.arn if routes is not None else None

        self._pipelines = {
            pipeline_name: FileProcessingPipeline(
                f"{name}-{pipeline_name}",
                _member_args(pipelines[pipeline_name], members[pipeline_name], self.bucket_name, routes),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for pipeline_name in members
        }
        self._notification = bucket_notification(
            name,
            self.bucket_name,
            [pipeline.notification_target for pipeline in self._pipelines.values()],
            parent=self,
            routes=routes,
        )
        self.pipeline_outputs = pulumi.Output.all(
            **{key: pulumi.Output.all(**pipeline.outputs) for key, pipeline in self._pipelines.items()}
        )
        outputs: dict[str, Any] = {
            "bucket": self.bucket_name,
            "pipelines": {key: pipeline.outputs for key, pipeline in self._pipelines.items()},
        }
        if self.routing_topic_arn is not None:
            outputs["routingTopicArn"] = self.routing_topic_arn
        self.register_outputs(outputs)

    # --- Python programs: the resources themselves -------------------------------------------------
    @property
    def pipelines(self) -> dict[str, FileProcessingPipeline]:
        """The pipelines, by name."""
        return self._pipelines

    @property
    def notification(self) -> aws.s3.BucketNotification:
        """The bucket's single notification configuration."""
        return self._notification

    @property
    def routing_topic(self) -> aws.sns.Topic | None:
        """``sns`` mode: the topic the bucket notifies and every pipeline's queue subscribes to."""
        return self._routing_topic


def _member(pipeline_name: str, args: PipelineArgs) -> PipelineSettings:
    """A member's settings as the group runs it: named, without its own bucket notification."""
    settings = resolve_pipeline(args, pipeline_name)
    settings.pipeline_name = settings.pipeline_name or pipeline_name
    settings.manage_bucket_notification = False
    return settings


def _member_args(
    args: PipelineArgs, member: PipelineSettings, bucket_name: pulumi.Output[str], routes: RoutingTopic | None
) -> PipelineArgs:
    """A member's inputs on the group's bucket. The group's bucket carries the members' lifecycle rules
    (a pipeline may not add its own), and in ``sns`` mode every member subscribes to the group's topic."""
    member_args = PipelineArgs(input_prefix=member.input_prefix)
    member_args.update(args)
    for key in (*_GROUP_OWNED, *_ON_THE_BUCKET):
        member_args.pop(key, None)  # type: ignore[misc]
    member_args["pipeline_name"] = member.pipeline_name or ""
    member_args["bucket_name"] = bucket_name
    member_args["manage_bucket_notification"] = False
    if routes is not None:
        member_args["routing_topic_arn"] = routes.topic.arn
    return member_args


def _existing_bucket(name: str, args: PipelineGroupArgs) -> pulumi.Input[str] | aws.s3.Bucket | None:
    by_name, resource = args.get("bucket_name"), args.get("bucket")
    if by_name is not None and resource is not None:
        raise PipelineConfigError(
            f"group {name!r}: bucket_name and bucket are both set; give the bucket once."
        )
    return by_name if by_name is not None else resource


def _bucket_args(
    name: str, args: PipelineGroupArgs, members: Mapping[str, PipelineSettings]
) -> PipelineBucketArgs:
    """The created bucket's inputs with the members' input lifecycle rules; checks what a group on an
    existing bucket would change there."""
    rules = [
        rule
        for member in members.values()
        if (rule := member.input_lifecycle(f"inputs-{member.pipeline_name}")) is not None
    ]
    given = args.get("bucket_args") or PipelineBucketArgs()
    if _existing_bucket(name, args) is not None:
        if not args.get("take_over_bucket_notification"):
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
        return given
    bucket_args = PipelineBucketArgs(**given)
    bucket_args["prefix_rules"] = [*given.get("prefix_rules", ()), *(rule.as_args() for rule in rules)]
    bucket = resolve_bucket(bucket_args)
    validate_bucket_lifecycle(
        f"{name}-bucket",
        abort_incomplete_multipart_upload_days=bucket.abort_incomplete_multipart_upload_days,
        noncurrent_version_expiration_days=bucket.noncurrent_version_expiration_days,
        rules=bucket.prefix_rules,
        longest_dlq_retention_seconds=max(member.dlq_retention_seconds for member in members.values()),
    )
    return bucket_args


def _shared_tags(members: Iterable[PipelineSettings]) -> dict[str, pulumi.Input[str]]:
    """The tags every pipeline sets alike: the group's own resources carry those."""
    first, *rest = members
    return {key: value for key, value in first.tags.items() if all(m.tags.get(key) == value for m in rest)}
