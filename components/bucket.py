"""PipelineBucket: a hardened S3 bucket that one or more pipelines receive files in."""

import json

import pulumi
import pulumi_aws as aws

from .args import PipelineBucketArgs
from .policies import bucket_tls_only_policy
from .resolved import BucketSettings, resolve_bucket
from .validation import validate_bucket_lifecycle

TYPE_TOKEN = "filepipe:index:PipelineBucket"

_DEFAULTS = PipelineBucketArgs()
"""Every field is optional: ``PipelineBucket(name)`` is a bucket with the default settings."""


class PipelineBucket(pulumi.ComponentResource):
    """An S3 bucket with versioning, default encryption, all public access blocked and TLS-only access."""

    bucket_name: pulumi.Output[str]
    """The bucket's name."""
    arn: pulumi.Output[str]
    """The bucket's ARN."""

    _bucket: aws.s3.Bucket

    # `args` is not Optional: the analyzer reads its annotation as the component's input type.
    def __init__(
        self, name: str, args: PipelineBucketArgs = _DEFAULTS, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        settings = resolve_bucket(args)
        validate_bucket_lifecycle(
            name,
            abort_incomplete_multipart_upload_days=settings.abort_incomplete_multipart_upload_days,
            noncurrent_version_expiration_days=settings.noncurrent_version_expiration_days,
            rules=settings.prefix_rules,
        )
        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The primary resource carries the component's own name (not "<name>-bucket"), so a group's
        # bucket "data-bucket" is not called "data-bucket-bucket" in the console and locally.
        self._bucket = aws.s3.Bucket(
            name,
            bucket=settings.bucket_name,
            force_destroy=settings.force_destroy,
            tags=dict(settings.tags),
            opts=child,
        )
        # Versioning gives every upload its own versionId, which the handler's state table keys on:
        # an overwrite is a new file to process, a re-delivery of the same version is not.
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self._bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        # Versioning keeps every overwritten input and every abandoned upload part; without a lifecycle
        # they accumulate (and are billed) forever.
        rules = lifecycle_rules(settings)
        if rules:
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-lifecycle",
                bucket=self._bucket.id,
                rules=rules,
                opts=child,
            )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self._bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self._bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        # After the public access block: S3 evaluates a new bucket policy against it.
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=self._bucket.id,
            policy=self._bucket.arn.apply(lambda arn: json.dumps(bucket_tls_only_policy(arn))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access_block]),
        )

        self.bucket_name = self._bucket.bucket
        self.arn = self._bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "arn": self.arn})

    @property
    def bucket(self) -> aws.s3.Bucket:
        """The bucket resource (Python programs only; other languages get its name and ARN)."""
        return self._bucket


def lifecycle_rules(args: BucketSettings) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
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


def bucket_name_of(bucket: pulumi.Input[str] | aws.s3.Bucket | PipelineBucket) -> pulumi.Output[str]:
    """The name of an existing bucket (given by name or resource) or of a :class:`PipelineBucket`."""
    if isinstance(bucket, PipelineBucket):
        return bucket.bucket_name
    if isinstance(bucket, aws.s3.Bucket):
        return bucket.bucket
    return pulumi.Output.from_input(bucket)
