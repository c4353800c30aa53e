"""PipelineGroup: several pipelines on one bucket, behind the bucket's single notification resource."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .args import PipelineArgs
from .bucket import PipelineBucket, PipelineBucketArgs, bucket_name_of
from .errors import PipelineConfigError
from .notifications import bucket_notification
from .pipeline import FileProcessingPipeline
from .validation import validate_bucket_filters, validate_pipeline

TYPE_TOKEN = "filepipe:index:PipelineGroup"


@dataclass(kw_only=True)
class PipelineGroupArgs:
    """Inputs of :class:`PipelineGroup`."""

    pipelines: Mapping[str, PipelineArgs]
    """The pipelines, by name. Their ``bucket`` must be unset: the group provides it."""

    bucket: str | aws.s3.Bucket | PipelineBucket | None = None
    """``None`` creates a hardened bucket; a name or resource uses an existing one."""

    bucket_args: PipelineBucketArgs = field(default_factory=PipelineBucketArgs)
    """Settings of the created bucket (ignored when ``bucket`` is given)."""


class PipelineGroup(pulumi.ComponentResource):
    """Pipelines sharing one bucket. Validates their filters together (overlap, recursion) and owns the
    bucket's one notification resource, created after every pipeline's queue policy."""

    bucket_name: pulumi.Output[str]
    """The shared bucket."""
    pipelines: dict[str, FileProcessingPipeline]
    """The pipelines, by name."""
    notification: aws.s3.BucketNotification
    """The bucket's single notification configuration."""

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
        filters = [
            validate_pipeline(pipeline_args.pipeline_name or pipeline_name, pipeline_args)
            for pipeline_name, pipeline_args in args.pipelines.items()
        ]
        validate_bucket_filters(name, filters)

        super().__init__(TYPE_TOKEN, name, None, opts)
        bucket = args.bucket
        if bucket is None:
            bucket = PipelineBucket(
                f"{name}-bucket", args.bucket_args, opts=pulumi.ResourceOptions(parent=self)
            )
        self.bucket_name = bucket_name_of(bucket)

        self.pipelines = {
            pipeline_name: FileProcessingPipeline(
                f"{name}-{pipeline_name}",
                dataclasses.replace(
                    pipeline_args,
                    bucket=bucket,
                    pipeline_name=pipeline_args.pipeline_name or pipeline_name,
                    manage_bucket_notification=False,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for pipeline_name, pipeline_args in args.pipelines.items()
        }
        self.notification = bucket_notification(
            name,
            self.bucket_name,
            [pipeline.notification_target for pipeline in self.pipelines.values()],
            parent=self,
        )
        outputs: dict[str, Any] = {
            "bucket": self.bucket_name,
            "pipelines": {key: pipeline.outputs for key, pipeline in self.pipelines.items()},
        }
        self.register_outputs(outputs)
