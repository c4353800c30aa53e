"""FileProcessingPipeline: S3 -> SQS -> Lambda -> DLQ -> alarms -> SNS for one input prefix."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from . import defaults
from .args import PipelineArgs
from .bucket import PipelineBucket, PipelineBucketArgs, bucket_name_of
from .dependencies import build_layer_dir
from .errors import PipelineConfigError
from .handler.settings import ATTENTION_INDEX, METRICS_NAMESPACE, EnvVar, StateAttribute
from .lambda_code import HANDLER_ENTRY_POINT, SCHEMA_FILE, code_archive, handler_requirements_file
from .monitoring import alarm_specs, create_alarms, create_dashboard
from .naming import check_auto_names, scoped
from .notifications import NotificationTarget, bucket_notification
from .policies import (
    eventbridge_to_queue_policy,
    function_role_policy,
    kms_key_policy,
    lambda_assume_role_policy,
    s3_to_queue_policy,
)
from .validation import load_schema, validate_bucket_lifecycle, validate_pipeline

TYPE_TOKEN = "filepipe:index:FileProcessingPipeline"


def _json(document_fn: Any, *inputs: pulumi.Input[Any]) -> pulumi.Output[str]:
    """Render a policy function over resolved inputs as a JSON string."""
    return pulumi.Output.all(*inputs).apply(lambda values: json.dumps(document_fn(*values)))


class FileProcessingPipeline(pulumi.ComponentResource):
    """One file-processing pipeline: files under a prefix are read, validated, transformed and written
    under an output prefix; failures are retried, poison files parked in a DLQ and alerted on."""

    bucket_name: pulumi.Output[str]
    """The bucket files arrive in (and outputs are written to)."""
    queue: aws.sqs.Queue
    """The queue S3 (or EventBridge) notifies."""
    dead_letter_queue: aws.sqs.Queue
    """Where poison files' messages are parked."""
    function: aws.lambda_.Function
    """The handler."""
    event_source_mapping: aws.lambda_.EventSourceMapping
    """Queue -> function wiring (pause processing by disabling it)."""
    table: aws.dynamodb.Table | None
    """Processing state per file version (``None`` when ``state_table=False``)."""
    topic_arn: pulumi.Output[str]
    """The SNS topic alerts go to."""
    alarms: list[aws.cloudwatch.MetricAlarm]
    """DLQ depth, age of oldest message, function errors, function throttles."""
    dashboard: aws.cloudwatch.Dashboard
    """The pipeline's CloudWatch dashboard."""
    notification_target: NotificationTarget
    """What the bucket's (single) notification configuration needs for this pipeline."""
    outputs: dict[str, pulumi.Output[Any]]
    """Everything a stack exports for this pipeline (camelCase keys, as ``pulumi stack output`` shows)."""

    def __init__(self, name: str, args: PipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # --- Validate first: nothing is registered for an invalid pipeline ---------------------------
        pipeline = args.pipeline_name or name
        input_filter = validate_pipeline(pipeline, args)
        check_auto_names(pipeline, auto_names(name, args))
        _check_bucket_ownership(pipeline, args)
        schema = load_schema(args.schema)
        bucket_args = None
        if args.bucket is None:
            input_rule = args.input_lifecycle(f"inputs-{pipeline}")
            bucket_args = PipelineBucketArgs(prefix_rules=[input_rule] if input_rule else [])
            validate_bucket_lifecycle(
                f"{name}-bucket",
                abort_incomplete_multipart_upload_days=bucket_args.abort_incomplete_multipart_upload_days,
                noncurrent_version_expiration_days=bucket_args.noncurrent_version_expiration_days,
                rules=bucket_args.prefix_rules,
                longest_dlq_retention_seconds=args.dlq_retention_seconds,
            )

        super().__init__(TYPE_TOKEN, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags: dict[str, pulumi.Input[str]] = {**args.tags, "filepipe:pipeline": pipeline}
        region = aws.get_region_output().region
        identity = aws.get_caller_identity_output()
        partition = aws.get_partition_output().partition
        output_prefix = args.effective_output_prefix()

        # --- The bucket ------------------------------------------------------------------------------
        bucket = (
            args.bucket
            if args.bucket is not None
            else PipelineBucket(f"{name}-bucket", bucket_args, opts=child)
        )
        self.bucket_name = bucket_name_of(bucket)
        bucket_arn = pulumi.Output.concat("arn:", partition, ":s3:::", self.bucket_name)

        # --- Encryption: SSE-SQS, or a customer-managed key S3 and CloudWatch may use -----------------
        kms_key_arn: pulumi.Output[str] | None = None
        if args.encryption == "kms":
            if args.kms_key_arn is not None:
                kms_key_arn = pulumi.Output.from_input(args.kms_key_arn)
            else:
                key = aws.kms.Key(
                    f"{name}-key",
                    description=f"filepipe {pipeline}: queues and alert topic",
                    enable_key_rotation=True,
                    deletion_window_in_days=30,
                    policy=_json(
                        lambda part, account: kms_key_policy(partition=part, account_id=account),
                        partition,
                        identity.account_id,
                    ),
                    tags=tags,
                    opts=child,
                )
                aws.kms.Alias(
                    f"{name}-key-alias",
                    name=scoped("KMS alias", name, separator="/", prefix="alias/"),
                    target_key_id=key.id,
                    opts=child,
                )
                kms_key_arn = key.arn
        encryption: dict[str, Any] = (
            {"kms_master_key_id": kms_key_arn, "kms_data_key_reuse_period_seconds": 300}
            if kms_key_arn is not None
            else {"sqs_managed_sse_enabled": True}
        )

        # --- Queues: the DLQ outlives the source queue; redrive after max_receive_count deliveries ----
        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dlq",
            message_retention_seconds=args.dlq_retention_seconds,
            tags=tags,
            opts=child,
            **encryption,
        )
        self.queue = aws.sqs.Queue(
            f"{name}-queue",
            visibility_timeout_seconds=args.effective_visibility_timeout(),
            message_retention_seconds=args.message_retention_seconds,
            redrive_policy=self.dead_letter_queue.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count}
                )
            ),
            tags=tags,
            opts=child,
            **encryption,
        )

        # --- Event delivery: S3 notification (queue policy first) or an EventBridge rule -------------
        if args.notification_mode == "eventbridge":
            rule = aws.cloudwatch.EventRule(
                f"{name}-rule",
                description=f"filepipe {pipeline}: objects created under {args.input_prefix}",
                event_pattern=self.bucket_name.apply(
                    lambda bucket: json.dumps(
                        eventbridge_pattern(bucket, args.input_prefix, input_filter.suffixes)
                    )
                ),
                tags=tags,
                opts=child,
            )
            queue_policy = aws.sqs.QueuePolicy(
                f"{name}-queue-policy",
                queue_url=self.queue.url,
                policy=_json(eventbridge_to_queue_policy, self.queue.arn, rule.arn, identity.account_id),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                f"{name}-target",
                rule=rule.name,
                arn=self.queue.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]),
            )
        else:
            queue_policy = aws.sqs.QueuePolicy(
                f"{name}-queue-policy",
                queue_url=self.queue.url,
                policy=_json(s3_to_queue_policy, self.queue.arn, bucket_arn, identity.account_id),
                opts=child,
            )
        self.notification_target = NotificationTarget(
            pipeline=pipeline,
            mode=args.notification_mode,
            queue_arn=self.queue.arn,
            prefix=args.input_prefix,
            suffixes=input_filter.suffixes,
            ready=queue_policy,
        )
        if args.manage_bucket_notification:
            bucket_notification(name, self.bucket_name, [self.notification_target], parent=self)

        # --- State table: one item per object key, TTL'd, recoverable --------------------------------
        self.table = None
        if args.state_table:
            self.table = aws.dynamodb.Table(
                f"{name}-state",
                billing_mode="PAY_PER_REQUEST",
                hash_key=StateAttribute.PK.value,
                attributes=[
                    {"name": StateAttribute.PK.value, "type": "S"},
                    {"name": StateAttribute.ATTENTION.value, "type": "S"},
                    {"name": StateAttribute.UPDATED_AT.value, "type": "S"},
                ],
                # Sparse: only items that carry `attention` (files an operator must see) are indexed,
                # so a file that succeeds costs no index write.
                global_secondary_indexes=[
                    {
                        "name": ATTENTION_INDEX,
                        "hash_key": StateAttribute.ATTENTION.value,
                        "range_key": StateAttribute.UPDATED_AT.value,
                        "projection_type": "ALL",
                    }
                ],
                ttl={"attribute_name": StateAttribute.EXPIRES_AT.value, "enabled": True},
                point_in_time_recovery={"enabled": True},
                server_side_encryption=(
                    {"enabled": True, "kms_key_arn": kms_key_arn} if kms_key_arn is not None else None
                ),
                tags=tags,
                opts=child,
            )

        # --- Logs first, so the function never creates an unmanaged group without retention ----------
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=scoped("log group", name, prefix="/aws/lambda/"),
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child,
        )

        # --- Least-privilege role --------------------------------------------------------------------
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(lambda_assume_role_policy()),
            tags=tags,
            opts=child,
        )
        table_arn: pulumi.Input[str | None] = self.table.arn if self.table is not None else None
        role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=role.id,
            policy=pulumi.Output.all(
                partition,
                self.bucket_name,
                self.queue.arn,
                self.dead_letter_queue.arn,
                log_group.arn,
                table_arn,
                kms_key_arn,
            ).apply(
                lambda v: json.dumps(
                    function_role_policy(
                        partition=v[0],
                        bucket=v[1],
                        input_prefix=args.input_prefix,
                        output_prefix=output_prefix,
                        queue_arn=v[2],
                        dlq_arn=v[3],
                        log_group_arn=v[4],
                        table_arn=v[5],
                        kms_key_arn=v[6],
                    )
                )
            ),
            opts=child,
        )

        # --- The function ----------------------------------------------------------------------------
        layers: list[pulumi.Input[str]] = [powertools_layer_arn(pipeline, args, partition)]
        if args.bundle_dependencies:
            layer_dir = build_layer_dir(handler_requirements_file(), args.architecture, args.python_runtime)
            dependencies_layer = aws.lambda_.LayerVersion(
                f"{name}-dependencies",
                layer_name=scoped("lambda layer", name, suffix="-dependencies"),
                code=pulumi.FileArchive(str(layer_dir)),
                compatible_runtimes=[args.python_runtime],
                compatible_architectures=[args.architecture],
                description="filepipe handler dependencies (handler/requirements.txt)",
                opts=child,
            )
            layers.append(dependencies_layer.arn)
        layers.extend(args.extra_layers)

        lambda_log_level, python_log_level = args.log_levels()
        # Powertools adds the service name to every metric as the `service` dimension (the dashboard's too).
        service_name = pipeline
        environment: dict[str, pulumi.Input[str]] = {
            EnvVar.PIPELINE_NAME: pipeline,
            EnvVar.INPUT_PREFIX: args.input_prefix,
            EnvVar.OUTPUT_PREFIX: output_prefix,
            EnvVar.INPUT_FORMAT: str(args.input_format),
            EnvVar.OUTPUT_FORMAT: str(args.output_format),
            EnvVar.INVALID_RECORDS: str(args.invalid_records),
            EnvVar.MAX_FILE_BYTES: str(args.max_file_bytes),
            EnvVar.DLQ_URL: self.dead_letter_queue.url,
            EnvVar.LEASE_SECONDS: str(args.timeout_seconds + 30),
            EnvVar.TIMEOUT_MARGIN_MS: str(min(defaults.TIMEOUT_MARGIN_MS, args.timeout_seconds * 250)),
            EnvVar.BACKOFF_BASE_SECONDS: str(defaults.BACKOFF_BASE_SECONDS),
            EnvVar.BACKOFF_MAX_SECONDS: str(defaults.BACKOFF_MAX_SECONDS),
            EnvVar.MAX_RECEIVE_COUNT: str(args.max_receive_count),
            EnvVar.STATE_TTL_DAYS: str(defaults.STATE_TTL_DAYS),
            EnvVar.POWERTOOLS_SERVICE_NAME: service_name,
            EnvVar.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
            EnvVar.POWERTOOLS_LOG_LEVEL: python_log_level,
        }
        if self.table is not None:
            environment[EnvVar.STATE_TABLE] = self.table.name
        if schema is not None:
            environment[EnvVar.SCHEMA_FILE] = SCHEMA_FILE
        if args.processor is not None:
            environment[EnvVar.PROCESSOR] = args.processor

        self.function = aws.lambda_.Function(
            f"{name}-function",
            description=f"filepipe {pipeline}: {args.input_prefix} -> {output_prefix}",
            role=role.arn,
            runtime=args.python_runtime,
            architectures=[args.architecture],
            handler=HANDLER_ENTRY_POINT,
            code=code_archive(schema, args.processor_code_dir),
            layers=layers,
            memory_size=args.memory_mb,
            timeout=args.timeout_seconds,
            reserved_concurrent_executions=args.reserved_concurrency,
            environment={"variables": {str(k): v for k, v in environment.items()}},
            logging_config={
                "log_format": "JSON",
                "log_group": log_group.name,
                "application_log_level": lambda_log_level,
                "system_log_level": defaults.SYSTEM_LOG_LEVEL,
            },
            tags=tags,
            # The role's permissions must be in place before the function can be invoked.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, role_policy]),
        )

        maximum_concurrency = args.effective_maximum_concurrency()
        self.event_source_mapping = aws.lambda_.EventSourceMapping(
            f"{name}-mapping",
            event_source_arn=self.queue.arn,
            function_name=self.function.arn,
            batch_size=args.batch_size,
            maximum_batching_window_in_seconds=args.batching_window_seconds,
            # Always on: one bad file must never fail (and redeliver) its neighbours.
            function_response_types=["ReportBatchItemFailures"],
            # Capped at the reservation when only that is set: pollers beyond it would be throttled, and
            # throttled receives count towards max_receive_count (healthy files would reach the DLQ).
            scaling_config=(
                {"maximum_concurrency": maximum_concurrency} if maximum_concurrency is not None else None
            ),
            enabled=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role_policy]),
        )

        # --- Alerts -----------------------------------------------------------------------------------
        if args.alert_topic_arn is not None:
            self.topic_arn = pulumi.Output.from_input(args.alert_topic_arn)
        else:
            # CloudWatch cannot publish to a topic under the AWS-managed SNS key: only a CMK or none.
            topic = aws.sns.Topic(
                f"{name}-alerts",
                kms_master_key_id=kms_key_arn,
                tags=tags,
                opts=child,
            )
            self.topic_arn = topic.arn
        for index, email in enumerate(args.alert_emails):
            aws.sns.TopicSubscription(
                f"{name}-alert-email-{index}",
                topic=self.topic_arn,
                protocol="email",
                endpoint=email,
                opts=child,
            )
        self.alarms = create_alarms(
            name,
            alarm_specs(args.queue_age_alarm_seconds),
            {"queue": self.queue.name, "dlq": self.dead_letter_queue.name, "function": self.function.name},
            self.topic_arn,
            tags,
            parent=self,
        )
        self.dashboard = create_dashboard(
            name,
            pipeline,
            service_name,
            region,
            self.queue.name,
            self.dead_letter_queue.name,
            self.function.name,
            parent=self,
        )

        self.outputs = {
            "pipeline": pulumi.Output.from_input(pipeline),
            "bucket": self.bucket_name,
            "inputPrefix": pulumi.Output.from_input(args.input_prefix),
            "outputPrefix": pulumi.Output.from_input(output_prefix),
            "queueUrl": self.queue.url,
            "queueArn": self.queue.arn,
            "dlqUrl": self.dead_letter_queue.url,
            "dlqArn": self.dead_letter_queue.arn,
            "functionName": self.function.name,
            "functionArn": self.function.arn,
            "eventSourceMappingId": self.event_source_mapping.uuid,
            "topicArn": self.topic_arn,
            "tableName": self.table.name if self.table is not None else pulumi.Output.from_input(""),
            "alarmNames": pulumi.Output.all(*[alarm.name for alarm in self.alarms]),
            "dashboardName": self.dashboard.dashboard_name,
        }
        self.register_outputs(self.outputs)


def auto_names(name: str, args: PipelineArgs) -> list[tuple[str, str]]:
    """``(kind, logical name)`` of every child AWS names after its logical name (plus Pulumi's suffix)."""
    names = [
        ("lambda function", f"{name}-function"),
        ("IAM role", f"{name}-role"),
        ("SQS queue", f"{name}-queue"),
        ("SQS queue", f"{name}-dlq"),
        *(("CloudWatch alarm", f"{name}-{spec.role}") for spec in alarm_specs(args.queue_age_alarm_seconds)),
    ]
    if args.bucket is None:
        names.append(("S3 bucket", f"{name}-bucket"))
    if args.notification_mode == "eventbridge":
        names.append(("EventBridge rule", f"{name}-rule"))
    if args.alert_topic_arn is None:
        names.append(("SNS topic", f"{name}-alerts"))
    if args.state_table:
        names.append(("DynamoDB table", f"{name}-state"))
    return names


def _check_bucket_ownership(pipeline: str, args: PipelineArgs) -> None:
    """Refuse what would silently change an existing bucket's single, bucket-wide configurations."""
    existing = args.bucket is not None and not isinstance(args.bucket, PipelineBucket)
    if existing and args.manage_bucket_notification and not args.take_over_bucket_notification:
        raise PipelineConfigError(
            f"pipeline {pipeline!r}: the bucket is an existing one, and S3 keeps a single notification "
            "configuration per bucket: this pipeline's BucketNotification would replace every notification "
            "the bucket has now, and deleting the stack would clear it. Set take_over_bucket_notification="
            "True to accept that, or manage_bucket_notification=False and merge notification_target into "
            "the resource that owns the bucket's notifications."
        )
    if args.bucket is not None and args.input_lifecycle("input") is not None:
        raise PipelineConfigError(
            f"pipeline {pipeline!r}: input_expiration_days / input_transition_days need a bucket this "
            "pipeline creates (a lifecycle configuration is bucket-wide too). For a shared PipelineBucket "
            "set PipelineBucketArgs.prefix_rules; for pipelines sharing a created bucket use a PipelineGroup."
        )


def powertools_parameter_name(architecture: str, runtime: str, version: str) -> str:
    """The public SSM parameter that holds the Powertools layer ARN for this combination."""
    return defaults.POWERTOOLS_LAYER_PARAMETER.format(
        architecture=architecture, runtime=runtime, version=version
    )


def powertools_layer_arn(
    pipeline: str, args: PipelineArgs, partition: pulumi.Output[str]
) -> pulumi.Output[str]:
    """The Powertools layer for the function's region, architecture and runtime.

    Read from Powertools' public SSM parameter rather than built from an account id: the publishing
    account differs by partition and not every region has every architecture; a missing layer then fails
    at preview (ParameterNotFound) instead of at function creation.
    """
    if args.powertools_layer_arn is not None:
        return pulumi.Output.from_input(args.powertools_layer_arn)
    parameter = powertools_parameter_name(args.architecture, args.python_runtime, args.powertools_version)

    def lookup(partition_name: str) -> pulumi.Output[str]:
        if partition_name != "aws":
            raise PipelineConfigError(
                f"pipeline {pipeline!r}: Powertools publishes {parameter} only in the commercial partition, "
                f"not in {partition_name!r}; set powertools_layer_arn to the layer's ARN for this region "
                "(see the Powertools installation guide for China and GovCloud)."
            )
        return aws.ssm.get_parameter_output(name=parameter).value

    return partition.apply(lookup)


def eventbridge_pattern(bucket: str, prefix: str, suffixes: tuple[str, ...]) -> dict[str, Any]:
    """EventBridge pattern for objects created under ``prefix`` ending in any of ``suffixes``."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"wildcard": f"{prefix}*{suffix}"} for suffix in suffixes]},
        },
    }
