"""PipelineBucket: a hardened S3 bucket that one or more pipelines receive files in."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from . import defaults
from .args import PrefixLifecycleRule
from .policies import bucket_tls_only_policy
from .validation import validate_bucket_lifecycle

TYPE_TOKEN = "filepipe:index:PipelineBucket"


@dataclass(kw_only=True)
class PipelineBucketArgs:
    """Inputs of :class:`PipelineBucket`."""

    bucket_name: str | None = None
    """Physical bucket name; ``None`` lets Pulumi auto-name it (recommended: names are global)."""

    force_destroy: bool = False
    """Allow ``pulumi destroy`` to delete a non-empty bucket (its files!). Off by default."""

    tags: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Tags for the bucket."""

    abort_incomplete_multipart_upload_days: int | None = defaults.ABORT_INCOMPLETE_MULTIPART_UPLOAD_DAYS
    """Remove the parts of multipart uploads not completed this many days after they started (they are
    billed but invisible); ``None`` keeps them."""

    noncurrent_version_expiration_days: int | None = defaults.NONCURRENT_VERSION_EXPIRATION_DAYS
    """Delete overwritten and deleted versions this many days after they stopped being current (and
    then the delete markers left without versions); ``None`` keeps every version forever."""

    prefix_rules: Sequence[PrefixLifecycleRule] = ()
    """Expiration or transition rules per prefix. Pipelines created with the bucket add theirs
    (``input_expiration_days``, ``input_transition_days``)."""


class PipelineBucket(pulumi.ComponentResource):
    """An S3 bucket with versioning, default encryption, all public access blocked and TLS-only access."""

    bucket: aws.s3.Bucket
    """The bucket resource."""
    bucket_name: pulumi.Output[str]
    """The bucket's name."""
    arn: pulumi.Output[str]
    """The bucket's ARN."""

    def __init__(
        self, name: str, args: PipelineBucketArgs | None = None, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        args = args or PipelineBucketArgs()
        validate_bucket_lifecycle(
            name,
            abort_incomplete_multipart_upload_days=args.abort_incomplete_multipart_upload_days,
            noncurrent_version_expiration_days=args.noncurrent_version_expiration_days,
            rules=args.prefix_rules,
        )
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The primary resource carries the component's own name (not "<name>-bucket"), so a group's
        # bucket "data-bucket" is not called "data-bucket-bucket" in the console and locally.
        self.bucket = aws.s3.Bucket(
            name,
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            tags=dict(args.tags),
            opts=child,
        )
        # Versioning gives every upload its own versionId, which the handler's state table keys on:
        # an overwrite is a new file to process, a re-delivery of the same version is not.
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        # Versioning keeps every overwritten input and every abandoned upload part; without a lifecycle
        # they accumulate (and are billed) forever.
        rules = lifecycle_rules(args)
        if rules:
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                bucket=self.bucket.id,
                rules=rules,
                opts=child,
            )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        # After the public access block: S3 evaluates a new bucket policy against it.
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self.bucket.id,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(bucket_tls_only_policy(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block]),
        )

        self.bucket_name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn})


def lifecycle_rules(args: PipelineBucketArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """The bucket's lifecycle rules."""
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = []
    if args.abort_incomplete_multipart_upload_days is not None:
        rules.append(
            {
                "id": "abort-incomplete-multipart-uploads",
                "status": "Enabled",
                "filter": {},
                "abort_incomplete_multipart_upload": {
                    "days_after_initiation": args.abort_incomplete_multipart_upload_days
                },
            }
        )
    if args.noncurrent_version_expiration_days is not None:
        rules.append(
            {
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_expiration_days},
                # Once its versions expire, a deleted key's delete marker is all that is left: remove it.
                "expiration": {"expired_object_delete_marker": True},
            }
        )
    for rule in args.prefix_rules:
        entry: aws.s3.BucketLifecycleConfigurationRuleArgsDict = {
            "id": rule.rule_id,
            "status": "Enabled",
            "filter": {"prefix": rule.prefix},
        }
        if rule.expiration_days is not None:
            entry["expiration"] = {"days": rule.expiration_days}
        if rule.transition_days is not None:
            entry["transitions"] = [
                {"days": rule.transition_days, "storage_class": rule.transition_storage_class}
            ]
        rules.append(entry)
    return rules


def bucket_name_of(bucket: str | aws.s3.Bucket | PipelineBucket) -> pulumi.Output[str]:
    """The name of an existing bucket (given by name or resource) or of a :class:`PipelineBucket`."""
    if isinstance(bucket, PipelineBucket):
        return bucket.bucket_name
    if isinstance(bucket, aws.s3.Bucket):
        return bucket.bucket
    return pulumi.Output.from_input(bucket)
