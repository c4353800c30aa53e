"""FileProcessingPipeline: S3 -> SQS -> Lambda -> DLQ -> alarms -> SNS for one input prefix.

The constructor validates every input first, then builds the pipeline section by section: each section is a
function below that takes what it needs and returns the resources the component keeps.

No ``from __future__ import annotations``: Pulumi's analyzer reads the component's annotations as live
objects (its outputs are the annotated public attributes).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pulumi
import pulumi_aws as aws

from . import defaults
from .args import PipelineArgs, PipelineBucketArgs
from .breaker import CircuitBreaker, breaker_table, create_circuit_breaker, handler_environment
from .breaker import auto_names as breaker_auto_names
from .bucket import PipelineBucket, bucket_name_of
from .dependencies import build_layer_dir, unzipped_size
from .errors import PipelineConfigError
from .handler.settings import ATTENTION_INDEX, METRICS_NAMESPACE, EnvVar, OutputFormat, StateAttribute
from .lambda_code import (
    HANDLER_ENTRY_POINT,
    SCHEMA_FILE,
    archive_unzipped_size,
    code_archive,
    handler_requirements_file,
    parquet_requirements_file,
)
from .monitoring import alarm_specs, create_alarms, create_dashboard
from .naming import check_auto_names, scoped
from .notifications import NotificationTarget, bucket_notification
from .outputs import PipelineOutput
from .policies import (
    PIPELINE_KEY_SERVICES,
    PolicyDocument,
    eventbridge_to_queue_policy,
    function_role_policy,
    kms_key_policy,
    lambda_assume_role_policy,
    s3_to_queue_policy,
    sns_to_queue_policy,
)
from .resolved import PipelineSettings, resolve_bucket, resolve_pipeline
from .routing import RoutingTopic, filter_policy, routing_topic
from .validation import (
    InputFilter,
    capacity_warnings,
    load_schema,
    validate_bucket_filters,
    validate_bucket_lifecycle,
    validate_pipeline,
)

TYPE_TOKEN = "filepipe:index:FileProcessingPipeline"


class FileProcessingPipeline(pulumi.ComponentResource):
    """One file-processing pipeline: files under a prefix are read, validated, transformed and written
    under an output prefix; failures are retried, poison files parked in a DLQ and alerted on."""

    bucket_name: pulumi.Output[str]
    """The bucket files arrive in (and outputs are written to)."""
    input_prefix: str
    """The key prefix files arrive under."""
    input_suffixes: list[str]
    """The key suffixes that trigger processing."""
    output_prefix: str
    """Where results are written."""
    queue_url: pulumi.Output[str]
    """The queue S3 (or EventBridge, or the routing topic) notifies."""
    queue_arn: pulumi.Output[str]
    """ARN of the queue; a bucket notification you manage yourself targets it."""
    dlq_url: pulumi.Output[str]
    """Where poison files' messages are parked (the dead-letter queue)."""
    dlq_arn: pulumi.Output[str]
    """ARN of the dead-letter queue."""
    function_name: pulumi.Output[str]
    """The handler function."""
    function_arn: pulumi.Output[str]
    """ARN of the handler function."""
    log_group_name: pulumi.Output[str]
    """The function's log group."""
    event_source_mapping_id: pulumi.Output[str]
    """Queue -> function wiring (pause processing by disabling it)."""
    table_name: pulumi.Output[str]
    """Processing state per file version; empty when ``state_table`` is false."""
    topic_arn: pulumi.Output[str]
    """The SNS topic alerts go to."""
    alarm_names: pulumi.Output[list[str]]
    """DLQ depth, age of oldest message, function errors, function throttles (and the breaker's)."""
    dashboard_name: pulumi.Output[str]
    """The pipeline's CloudWatch dashboard."""
    breaker_table_name: pulumi.Output[str] | None
    """The circuit breaker's state table; unset without ``circuit_breaker``."""
    breaker_function_name: pulumi.Output[str] | None
    """The circuit breaker's function; unset without ``circuit_breaker``."""
    routing_topic_arn: pulumi.Output[str] | None
    """``sns`` mode: the routing topic, when this pipeline created it (it manages its bucket's
    notification)."""

    # The resources themselves: Python programs read them through the properties below; the schema (every
    # other language) carries the names and ARNs above.
    _queue: aws.sqs.Queue
    _dead_letter_queue: aws.sqs.Queue
    _function: aws.lambda_.Function
    _event_source_mapping: aws.lambda_.EventSourceMapping
    _table: aws.dynamodb.Table | None
    _alarms: list[aws.cloudwatch.MetricAlarm]
    _dashboard: aws.cloudwatch.Dashboard
    _circuit_breaker: CircuitBreaker | None
    _notification_target: NotificationTarget
    _subscription: aws.sns.TopicSubscription | None
    _routing_topic: aws.sns.Topic | None
    _outputs: dict[str, pulumi.Output[Any]]

    def __init__(self, name: str, args: PipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Validate first: nothing is registered for an invalid pipeline.
        settings = resolve_pipeline(args, name)
        pipeline = settings.pipeline_name or name
        input_filter = validate_pipeline(pipeline, settings)
        if settings.manage_bucket_notification:
            validate_bucket_filters(name, [input_filter])
        check_auto_names(pipeline, auto_names(name, settings))
        _check_bucket_ownership(pipeline, settings)
        schema = load_schema(settings.schema, settings.schema_document)
        bucket_args = _created_bucket_args(name, pipeline, settings)

        # Then build, section by section; each section returns what the component keeps.
        super().__init__(TYPE_TOKEN, name, None, opts)
        # Attached to the component, so `pulumi preview` shows them under this pipeline.
        for warning in capacity_warnings(pipeline, settings):
            pulumi.log.warn(warning, resource=self)
        scope = _Scope(
            name,
            pipeline,
            settings,
            tags={**settings.tags, "filepipe:pipeline": pipeline},
            parent=self,
            region=aws.get_region_output().region,
            account_id=aws.get_caller_identity_output().account_id,
            partition=aws.get_partition_output().partition,
        )

        if settings.bucket is not None:
            self.bucket_name = bucket_name_of(settings.bucket)
        else:
            created = PipelineBucket(
                f"{name}-bucket", bucket_args or PipelineBucketArgs(), opts=scope.options()
            )
            self.bucket_name = created.bucket_name
        kms_key_arn = _customer_managed_key_arn(scope)
        queues = _queues(scope, kms_key_arn)
        self._queue, self._dead_letter_queue = queues
        routes = _own_routing_topic(scope, self.bucket_name, kms_key_arn)
        self._routing_topic = routes.topic if routes is not None else None
        topic_arn = routes.topic.arn if routes is not None else settings.routing_topic_arn
        self._notification_target, self._subscription = _event_delivery(
            scope, input_filter, queues, self.bucket_name, topic_arn
        )
        if settings.manage_bucket_notification:
            bucket_notification(
                name, self.bucket_name, [self._notification_target], parent=self, routes=routes
            )
        self._table = _state_table(scope, kms_key_arn) if settings.state_table else None
        # The breaker's table before the handler: the handler reads it on a message's last delivery.
        state_of_breaker = (
            breaker_table(name, kms_key_arn, scope.tags, scope.options())
            if settings.circuit_breaker is not None
            else None
        )
        self._function, self._event_source_mapping = _function(
            scope,
            queues,
            self._table,
            kms_key_arn,
            bucket_name=self.bucket_name,
            schema=schema,
            breaker_table=state_of_breaker,
        )
        self.topic_arn = _alert_topic_arn(scope, kms_key_arn)
        self._alarms, self._dashboard = _monitoring(scope, queues, self._function, self.topic_arn)
        self._circuit_breaker = (
            _circuit_breaker(scope, state_of_breaker, self._event_source_mapping, self.topic_arn, kms_key_arn)
            if state_of_breaker is not None
            else None
        )

        self.input_prefix = settings.input_prefix
        self.input_suffixes = list(settings.effective_suffixes())
        self.output_prefix = settings.effective_output_prefix()
        self.queue_url, self.queue_arn = self._queue.url, self._queue.arn
        self.dlq_url, self.dlq_arn = self._dead_letter_queue.url, self._dead_letter_queue.arn
        self.function_name, self.function_arn = self._function.name, self._function.arn
        self.log_group_name = self._function.logging_config.apply(
            lambda config: config.log_group or "" if config is not None else ""
        )
        self.event_source_mapping_id = self._event_source_mapping.uuid
        self.table_name = self._table.name if self._table is not None else pulumi.Output.from_input("")
        self.alarm_names = pulumi.Output.all(*[alarm.name for alarm in self._alarms])
        self.dashboard_name = self._dashboard.dashboard_name
        breaker = self._circuit_breaker
        self.breaker_table_name = breaker.table.name if breaker is not None else None
        self.breaker_function_name = breaker.function.name if breaker is not None else None
        self.routing_topic_arn = self._routing_topic.arn if self._routing_topic is not None else None

        self._outputs = {
            PipelineOutput.PIPELINE: pulumi.Output.from_input(pipeline),
            PipelineOutput.BUCKET: self.bucket_name,
            PipelineOutput.INPUT_PREFIX: pulumi.Output.from_input(self.input_prefix),
            PipelineOutput.INPUT_SUFFIXES: pulumi.Output.from_input(self.input_suffixes),
            PipelineOutput.OUTPUT_PREFIX: pulumi.Output.from_input(self.output_prefix),
            PipelineOutput.QUEUE_URL: self.queue_url,
            PipelineOutput.QUEUE_ARN: self.queue_arn,
            PipelineOutput.DLQ_URL: self.dlq_url,
            PipelineOutput.DLQ_ARN: self.dlq_arn,
            PipelineOutput.FUNCTION_NAME: self.function_name,
            PipelineOutput.FUNCTION_ARN: self.function_arn,
            PipelineOutput.LOG_GROUP_NAME: self.log_group_name,
            PipelineOutput.EVENT_SOURCE_MAPPING_ID: self.event_source_mapping_id,
            PipelineOutput.TOPIC_ARN: self.topic_arn,
            PipelineOutput.TABLE_NAME: self.table_name,
            PipelineOutput.ALARM_NAMES: self.alarm_names,
            PipelineOutput.DASHBOARD_NAME: self.dashboard_name,
        }
        if self.breaker_table_name is not None and self.breaker_function_name is not None:
            self._outputs[PipelineOutput.BREAKER_TABLE_NAME] = self.breaker_table_name
            self._outputs[PipelineOutput.BREAKER_FUNCTION_NAME] = self.breaker_function_name
        self.register_outputs(self._outputs)

    # --- Python programs: the resources themselves -------------------------------------------------
    @property
    def queue(self) -> aws.sqs.Queue:
        """The queue S3 (or EventBridge) notifies."""
        return self._queue

    @property
    def dead_letter_queue(self) -> aws.sqs.Queue:
        """Where poison files' messages are parked."""
        return self._dead_letter_queue

    @property
    def function(self) -> aws.lambda_.Function:
        """The handler."""
        return self._function

    @property
    def event_source_mapping(self) -> aws.lambda_.EventSourceMapping:
        """Queue -> function wiring (pause processing by disabling it)."""
        return self._event_source_mapping

    @property
    def table(self) -> aws.dynamodb.Table | None:
        """Processing state per file version (``None`` when ``state_table=False``)."""
        return self._table

    @property
    def alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        """DLQ depth, age of oldest message, function errors, function throttles."""
        return self._alarms

    @property
    def dashboard(self) -> aws.cloudwatch.Dashboard:
        """The pipeline's CloudWatch dashboard."""
        return self._dashboard

    @property
    def circuit_breaker(self) -> CircuitBreaker | None:
        """The breaker's table, function, alarms and timer (``None`` without ``circuit_breaker``)."""
        return self._circuit_breaker

    @property
    def notification_target(self) -> NotificationTarget:
        """What the bucket's (single) notification configuration needs for this pipeline."""
        return self._notification_target

    @property
    def subscription(self) -> aws.sns.TopicSubscription | None:
        """``sns`` mode: the queue's filtered subscription to the bucket's routing topic."""
        return self._subscription

    @property
    def routing_topic(self) -> aws.sns.Topic | None:
        """``sns`` mode: the routing topic, when this pipeline created it."""
        return self._routing_topic

    @property
    def outputs(self) -> dict[str, pulumi.Output[Any]]:
        """Everything a stack exports for this pipeline (camelCase keys, as ``pulumi stack output`` shows)."""
        return self._outputs


@dataclass(frozen=True)
class _Scope:
    """What every section of one pipeline shares: names, inputs, tags, the parent of its children and the
    account, partition and region it is deployed to (looked up once)."""

    name: str
    """The component's resource name: children are ``f"{name}-<role>"``."""
    pipeline: str
    """The pipeline's name (logs, metrics, alarms, dashboard)."""
    args: PipelineSettings
    tags: dict[str, pulumi.Input[str]]
    parent: pulumi.Resource
    region: pulumi.Output[str]
    account_id: pulumi.Output[str]
    partition: pulumi.Output[str]

    def options(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """A child's options: parented to the pipeline, after ``depends_on`` (what its inputs do not imply)."""
        if depends_on:
            return pulumi.ResourceOptions(parent=self.parent, depends_on=list(depends_on))
        return pulumi.ResourceOptions(parent=self.parent)

    @property
    def service_name(self) -> str:
        """Powertools adds it to every metric as the ``service`` dimension (the dashboard's too)."""
        return self.pipeline

    def description(self, what: str) -> str:
        return f"filepipe {self.pipeline}: {what}"


class _Queues(NamedTuple):
    """The queue S3 (or EventBridge) notifies and the dead-letter queue it redrives to."""

    queue: aws.sqs.Queue
    dead_letter_queue: aws.sqs.Queue


def _json(document: Callable[..., PolicyDocument], **inputs: pulumi.Input[Any]) -> pulumi.Output[str]:
    """Render a policy function over its resolved keyword inputs as a JSON string."""
    return pulumi.Output.all(**inputs).apply(lambda values: json.dumps(document(**values)))


def _created_bucket_args(name: str, pipeline: str, args: PipelineSettings) -> PipelineBucketArgs | None:
    """The inputs of the bucket this pipeline creates, with its input lifecycle rule, validated; ``None``
    when it uses an existing or shared bucket."""
    if args.existing_bucket:
        return None
    input_rule = args.input_lifecycle(f"inputs-{pipeline}")
    bucket_args = PipelineBucketArgs(prefix_rules=[input_rule.as_args()] if input_rule else [])
    bucket = resolve_bucket(bucket_args)
    validate_bucket_lifecycle(
        f"{name}-bucket",
        abort_incomplete_multipart_upload_days=bucket.abort_incomplete_multipart_upload_days,
        noncurrent_version_expiration_days=bucket.noncurrent_version_expiration_days,
        rules=bucket.prefix_rules,
        longest_dlq_retention_seconds=args.dlq_retention_seconds,
    )
    return bucket_args


def _customer_managed_key_arn(scope: _Scope) -> pulumi.Output[str] | None:
    """The key queues, state table and alert topic are encrypted with: ``None`` for SSE-SQS, else the given
    key or a created one that S3 and CloudWatch may use."""
    args = scope.args
    if args.encryption != "kms":
        return None
    if args.kms_key_arn is not None:
        return pulumi.Output.from_input(args.kms_key_arn)
    key = aws.kms.Key(
        f"{scope.name}-key",
        description=scope.description("queues and alert topic"),
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=_json(
            kms_key_policy,
            partition=scope.partition,
            account_id=scope.account_id,
            # A routing topic delivers to the queues (and, on a failed delivery, to the DLQ).
            services=(*PIPELINE_KEY_SERVICES, "SNS")
            if args.notification_mode == "sns"
            else PIPELINE_KEY_SERVICES,
        ),
        tags=scope.tags,
        opts=scope.options(),
    )
    aws.kms.Alias(
        f"{scope.name}-key-alias",
        name=scoped("KMS alias", scope.name, separator="/", prefix="alias/"),
        target_key_id=key.id,
        opts=scope.options(),
    )
    return key.arn


def _queues(scope: _Scope, kms_key_arn: pulumi.Output[str] | None) -> _Queues:
    """The queue and its dead-letter queue: the DLQ outlives the queue, which redrives to it after
    ``max_receive_count`` deliveries."""
    args = scope.args
    encryption: dict[str, Any] = (
        {"kms_master_key_id": kms_key_arn, "kms_data_key_reuse_period_seconds": 300}
        if kms_key_arn is not None
        else {"sqs_managed_sse_enabled": True}
    )
    dead_letter_queue = aws.sqs.Queue(
        f"{scope.name}-dlq",
        message_retention_seconds=args.dlq_retention_seconds,
        tags=scope.tags,
        opts=scope.options(),
        **encryption,
    )
    queue = aws.sqs.Queue(
        f"{scope.name}-queue",
        visibility_timeout_seconds=args.effective_visibility_timeout(),
        message_retention_seconds=args.message_retention_seconds,
        redrive_policy=dead_letter_queue.arn.apply(
            lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count})
        ),
        tags=scope.tags,
        opts=scope.options(),
        **encryption,
    )
    return _Queues(queue, dead_letter_queue)


def _own_routing_topic(
    scope: _Scope, bucket_name: pulumi.Output[str], kms_key_arn: pulumi.Output[str] | None
) -> RoutingTopic | None:
    """``sns`` mode on a pipeline that owns its bucket's notification and was given no topic: its own
    routing topic, under the pipeline's key (which admits S3)."""
    args = scope.args
    if args.notification_mode != "sns" or args.routing_topic_arn is not None:
        return None
    return routing_topic(
        scope.name,
        bucket_name,
        encrypted=kms_key_arn is not None,
        kms_key_arn=kms_key_arn,
        tags=scope.tags,
        parent=scope.parent,
    )


def _event_delivery(
    scope: _Scope,
    input_filter: InputFilter,
    queues: _Queues,
    bucket_name: pulumi.Output[str],
    topic_arn: pulumi.Input[str] | None,
) -> tuple[NotificationTarget, aws.sns.TopicSubscription | None]:
    """Let S3 notifications, an EventBridge rule or the routing topic send to the queue. Returns what the
    bucket's notification needs from this pipeline, including the resource it must wait for (S3 validates
    the destination), and the subscription in ``sns`` mode."""
    args = scope.args
    queue = queues.queue
    rule: aws.cloudwatch.EventRule | None = None
    subscription: aws.sns.TopicSubscription | None = None
    if args.notification_mode == "eventbridge":
        rule = aws.cloudwatch.EventRule(
            f"{scope.name}-rule",
            description=scope.description(f"objects created under {args.input_prefix}"),
            event_pattern=bucket_name.apply(
                lambda bucket: json.dumps(
                    eventbridge_pattern(bucket, args.input_prefix, input_filter.suffixes)
                )
            ),
            tags=scope.tags,
            opts=scope.options(),
        )
        policy = _json(
            eventbridge_to_queue_policy, queue_arn=queue.arn, rule_arn=rule.arn, account_id=scope.account_id
        )
    elif args.notification_mode == "sns":
        assert topic_arn is not None  # _own_routing_topic created one or raised
        policy = _json(
            sns_to_queue_policy, queue_arn=queue.arn, topic_arn=topic_arn, account_id=scope.account_id
        )
    else:
        bucket_arn = pulumi.Output.concat("arn:", scope.partition, ":s3:::", bucket_name)
        policy = _json(
            s3_to_queue_policy, queue_arn=queue.arn, bucket_arn=bucket_arn, account_id=scope.account_id
        )
    queue_policy = aws.sqs.QueuePolicy(
        f"{scope.name}-queue-policy", queue_url=queue.url, policy=policy, opts=scope.options()
    )
    ready: pulumi.Resource = queue_policy
    if rule is not None:
        aws.cloudwatch.EventTarget(
            f"{scope.name}-target", rule=rule.name, arn=queue.arn, opts=scope.options(queue_policy)
        )
    if args.notification_mode == "sns":
        assert topic_arn is not None
        subscription = _subscription(scope, input_filter, queues, topic_arn, queue_policy)
        ready = subscription
    target = NotificationTarget(
        pipeline=scope.pipeline,
        mode=args.notification_mode,
        queue_arn=queue.arn,
        prefix=args.input_prefix,
        suffixes=input_filter.suffixes,
        ready=ready,
        route=input_filter.route,
    )
    return target, subscription


def _subscription(
    scope: _Scope,
    input_filter: InputFilter,
    queues: _Queues,
    topic_arn: pulumi.Input[str],
    queue_policy: aws.sqs.QueuePolicy,
) -> aws.sns.TopicSubscription:
    """The queue's subscription to the routing topic: only this pipeline's route, the S3 event delivered
    unchanged, and a delivery SNS gives up on parked in the pipeline's DLQ (alarmed) instead of lost."""
    dead_letter_queue = queues.dead_letter_queue
    dlq_policy = aws.sqs.QueuePolicy(
        f"{scope.name}-dlq-policy",
        queue_url=dead_letter_queue.url,
        policy=_json(
            sns_to_queue_policy,
            queue_arn=dead_letter_queue.arn,
            topic_arn=topic_arn,
            account_id=scope.account_id,
        ),
        opts=scope.options(),
    )
    return aws.sns.TopicSubscription(
        f"{scope.name}-subscription",
        topic=topic_arn,
        protocol="sqs",
        endpoint=queues.queue.arn,
        # The handler reads S3 events; without raw delivery each would arrive wrapped in an SNS envelope.
        raw_message_delivery=True,
        # S3 sets no message attributes: the route is matched on the event itself.
        filter_policy_scope="MessageBody",
        filter_policy=json.dumps(filter_policy(input_filter.route)),
        redrive_policy=dead_letter_queue.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn})),
        opts=scope.options(queue_policy, dlq_policy),
    )


def _state_table(scope: _Scope, kms_key_arn: pulumi.Output[str] | None) -> aws.dynamodb.Table:
    """One item per object key, TTL'd, recoverable."""
    return aws.dynamodb.Table(
        f"{scope.name}-state",
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
        tags=scope.tags,
        opts=scope.options(),
    )


def _function(
    scope: _Scope,
    queues: _Queues,
    table: aws.dynamodb.Table | None,
    kms_key_arn: pulumi.Output[str] | None,
    *,
    bucket_name: pulumi.Output[str],
    schema: dict[str, object] | None,
    breaker_table: aws.dynamodb.Table | None = None,
) -> tuple[aws.lambda_.Function, aws.lambda_.EventSourceMapping]:
    """``(function, event source mapping)``, with the function's log group, role and layers."""
    args = scope.args
    queue, dead_letter_queue = queues
    # Logs first, so the function never creates an unmanaged group without retention.
    log_group = aws.cloudwatch.LogGroup(
        f"{scope.name}-logs",
        name=scoped("log group", scope.name, prefix="/aws/lambda/"),
        retention_in_days=args.log_retention_days,
        tags=scope.tags,
        opts=scope.options(),
    )
    role, role_policy = _function_role(
        scope,
        bucket_name=bucket_name,
        queue_arn=queue.arn,
        dlq_arn=dead_letter_queue.arn,
        log_group_arn=log_group.arn,
        table_arn=table.arn if table is not None else None,
        kms_key_arn=kms_key_arn,
        breaker_table_arn=breaker_table.arn if breaker_table is not None else None,
    )
    code = code_archive(schema, args.processor_code_dir)
    layers = _layers(scope, code)
    lambda_log_level, python_log_level = args.log_levels()
    environment = _environment(
        scope,
        python_log_level=python_log_level,
        dlq_url=dead_letter_queue.url,
        table_name=table.name if table is not None else None,
        has_schema=schema is not None,
    )
    if breaker_table is not None and args.circuit_breaker is not None:
        environment.update(
            {str(k): v for k, v in handler_environment(args.circuit_breaker, breaker_table).items()}
        )
    function = aws.lambda_.Function(
        f"{scope.name}-function",
        description=scope.description(f"{args.input_prefix} -> {args.effective_output_prefix()}"),
        role=role.arn,
        runtime=args.python_runtime,
        architectures=[args.architecture],
        handler=HANDLER_ENTRY_POINT,
        code=code,
        layers=layers,
        memory_size=args.memory_mb,
        timeout=args.timeout_seconds,
        reserved_concurrent_executions=args.reserved_concurrency,
        environment={"variables": environment},
        logging_config={
            "log_format": "JSON",
            "log_group": log_group.name,
            "application_log_level": lambda_log_level,
            "system_log_level": defaults.SYSTEM_LOG_LEVEL,
        },
        tags=scope.tags,
        # The role's permissions must be in place before the function can be invoked.
        opts=scope.options(log_group, role_policy),
    )

    maximum_concurrency = args.effective_maximum_concurrency()
    event_source_mapping = aws.lambda_.EventSourceMapping(
        f"{scope.name}-mapping",
        event_source_arn=queue.arn,
        function_name=function.arn,
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
        tags=scope.tags,
        opts=(
            # The breaker switches the mapping on and off: a deploy during an outage must not re-enable it.
            pulumi.ResourceOptions.merge(
                scope.options(role_policy), pulumi.ResourceOptions(ignore_changes=["enabled"])
            )
            if args.circuit_breaker is not None
            else scope.options(role_policy)
        ),
    )
    return function, event_source_mapping


def _function_role(
    scope: _Scope,
    *,
    bucket_name: pulumi.Output[str],
    queue_arn: pulumi.Output[str],
    dlq_arn: pulumi.Output[str],
    log_group_arn: pulumi.Output[str],
    table_arn: pulumi.Output[str] | None,
    kms_key_arn: pulumi.Output[str] | None,
    breaker_table_arn: pulumi.Output[str] | None = None,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """``(role, its policy)``: least privilege, exactly the objects, queues, table, logs and key it uses."""
    role = aws.iam.Role(
        f"{scope.name}-role",
        assume_role_policy=json.dumps(lambda_assume_role_policy()),
        tags=scope.tags,
        opts=scope.options(),
    )
    role_policy = aws.iam.RolePolicy(
        f"{scope.name}-role-policy",
        role=role.id,
        policy=_json(
            function_role_policy,
            partition=scope.partition,
            bucket=bucket_name,
            input_prefix=scope.args.input_prefix,
            output_prefix=scope.args.effective_output_prefix(),
            queue_arn=queue_arn,
            dlq_arn=dlq_arn,
            log_group_arn=log_group_arn,
            table_arn=table_arn,
            kms_key_arn=kms_key_arn,
            breaker_table_arn=breaker_table_arn,
        ),
        opts=scope.options(),
    )
    return role, role_policy


def _layers(scope: _Scope, code: pulumi.AssetArchive) -> list[pulumi.Input[str]]:
    """Powertools, the bundled handler dependencies, pyarrow for Parquet output (created layers) and the
    user's extra layers.

    pyarrow is a layer of its own that only Parquet pipelines get: it is most of the 250 MB Lambda allows
    a function and its layers, unzipped. Without ``bundle_dependencies`` neither layer is built and
    ``extra_layers`` must bring the packages (pyarrow too, for Parquet; docs/performance.md says how).
    """
    args = scope.args
    layers: list[pulumi.Input[str]] = [powertools_layer_arn(scope.pipeline, args, scope.partition)]
    # (resource name suffix, requirements, what the layer holds)
    wanted = [("dependencies", handler_requirements_file(), "filepipe handler dependencies")]
    if args.output_format == "parquet":
        wanted.append(("parquet", parquet_requirements_file(), "filepipe Parquet writer (pyarrow)"))
    built = (
        [
            (role, requirements, holds, build_layer_dir(requirements, args.architecture, args.python_runtime))
            for role, requirements, holds in wanted
        ]
        if args.bundle_dependencies
        else []
    )
    # Refused here rather than by Lambda at deploy time, after everything else has been created.
    unzipped = {"function code": archive_unzipped_size(code)}
    unzipped.update({f"{role} layer": unzipped_size(layer_dir) for role, _, _, layer_dir in built})
    if sum(unzipped.values()) > defaults.UNZIPPED_CODE_LIMIT_BYTES:
        parts = ", ".join(f"{what} {size / 2**20:.1f}" for what, size in unzipped.items())
        raise PipelineConfigError(
            f"function code and layers unzip to {sum(unzipped.values()) / 2**20:.1f} MiB ({parts}), over "
            f"Lambda's {defaults.UNZIPPED_CODE_LIMIT_BYTES / 2**20:.0f} MiB for a function and its layers."
        )
    for role, requirements, holds, layer_dir in built:
        layer = aws.lambda_.LayerVersion(
            f"{scope.name}-{role}",
            layer_name=scoped("lambda layer", scope.name, suffix=f"-{role}"),
            code=pulumi.FileArchive(str(layer_dir)),
            compatible_runtimes=[args.python_runtime],
            compatible_architectures=[args.architecture],
            description=f"{holds} (handler/{requirements.name})",
            opts=scope.options(),
        )
        layers.append(layer.arn)
    layers.extend(args.extra_layers)
    return layers


def _environment(
    scope: _Scope,
    *,
    python_log_level: str,
    dlq_url: pulumi.Output[str],
    table_name: pulumi.Output[str] | None,
    has_schema: bool,
) -> dict[str, pulumi.Input[str]]:
    """The handler's settings, as ``filepipe.handler.settings`` parses them."""
    args = scope.args
    environment: dict[str, pulumi.Input[str]] = {
        EnvVar.PIPELINE_NAME: scope.pipeline,
        EnvVar.INPUT_PREFIX: args.input_prefix,
        EnvVar.OUTPUT_PREFIX: args.effective_output_prefix(),
        EnvVar.INPUT_FORMAT: str(args.input_format),
        EnvVar.INPUT_COMPRESSION: str(args.input_compression),
        EnvVar.OUTPUT_COMPRESSION: str(args.output_compression),
        EnvVar.OUTPUT_FORMAT: str(args.output_format),
        EnvVar.INVALID_RECORDS: str(args.invalid_records),
        EnvVar.MAX_FILE_BYTES: str(args.max_file_bytes),
        EnvVar.DLQ_URL: dlq_url,
        EnvVar.LEASE_SECONDS: str(args.timeout_seconds + 30),
        EnvVar.TIMEOUT_MARGIN_MS: str(args.effective_timeout_margin_ms()),
        EnvVar.BACKOFF_BASE_SECONDS: str(defaults.BACKOFF_BASE_SECONDS),
        EnvVar.BACKOFF_MAX_SECONDS: str(defaults.BACKOFF_MAX_SECONDS),
        EnvVar.MAX_RECEIVE_COUNT: str(args.max_receive_count),
        EnvVar.STATE_TTL_DAYS: str(defaults.STATE_TTL_DAYS),
        EnvVar.POWERTOOLS_SERVICE_NAME: scope.service_name,
        EnvVar.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        EnvVar.POWERTOOLS_LOG_LEVEL: python_log_level,
    }
    if table_name is not None:
        environment[EnvVar.STATE_TABLE] = table_name
    if has_schema:
        environment[EnvVar.SCHEMA_FILE] = SCHEMA_FILE
    if args.processor is not None:
        environment[EnvVar.PROCESSOR] = args.processor
    if args.file_processor is not None:
        environment[EnvVar.FILE_PROCESSOR] = args.file_processor
    if args.output_format == OutputFormat.PARQUET:
        environment[EnvVar.PARQUET_COMPRESSION] = str(args.parquet_compression)
        environment[EnvVar.PARQUET_ROW_GROUP_ROWS] = str(args.parquet_row_group_rows)
    return {str(key): value for key, value in environment.items()}


def _alert_topic_arn(scope: _Scope, kms_key_arn: pulumi.Output[str] | None) -> pulumi.Output[str]:
    """The topic alarms publish to (the given one, or one created) with the e-mail subscriptions."""
    args = scope.args
    if args.alert_topic_arn is not None:
        topic_arn = pulumi.Output.from_input(args.alert_topic_arn)
    else:
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key: only a CMK or none.
        topic = aws.sns.Topic(
            f"{scope.name}-alerts", kms_master_key_id=kms_key_arn, tags=scope.tags, opts=scope.options()
        )
        topic_arn = topic.arn
    for index, email in enumerate(args.alert_emails):
        aws.sns.TopicSubscription(
            f"{scope.name}-alert-email-{index}",
            topic=topic_arn,
            protocol="email",
            endpoint=email,
            opts=scope.options(),
        )
    return topic_arn


def _monitoring(
    scope: _Scope,
    queues: _Queues,
    function: aws.lambda_.Function,
    topic_arn: pulumi.Output[str],
) -> tuple[list[aws.cloudwatch.MetricAlarm], aws.cloudwatch.Dashboard]:
    """``(alarms, dashboard)`` over the pipeline's queues and function."""
    queue, dead_letter_queue = queues
    alarms = create_alarms(
        scope.name,
        alarm_specs(scope.args.queue_age_alarm_seconds),
        {"queue": queue.name, "dlq": dead_letter_queue.name, "function": function.name},
        topic_arn,
        scope.tags,
        parent=scope.parent,
    )
    dashboard = create_dashboard(
        scope.name,
        scope.pipeline,
        scope.service_name,
        scope.region,
        queue.name,
        dead_letter_queue.name,
        function.name,
        parent=scope.parent,
    )
    return alarms, dashboard


def _circuit_breaker(
    scope: _Scope,
    table: aws.dynamodb.Table,
    mapping: aws.lambda_.EventSourceMapping,
    topic_arn: pulumi.Output[str],
    kms_key_arn: pulumi.Output[str] | None,
) -> CircuitBreaker:
    args = scope.args
    assert args.circuit_breaker is not None
    return create_circuit_breaker(
        scope.name,
        pipeline=scope.pipeline,
        service=scope.service_name,
        breaker=args.circuit_breaker,
        table=table,
        mapping=mapping,
        closed_concurrency=args.effective_maximum_concurrency(),
        topic_arn=topic_arn,
        kms_key_arn=kms_key_arn,
        log_retention_days=args.log_retention_days,
        tags=scope.tags,
        partition=scope.partition,
        region=scope.region,
        account_id=scope.account_id,
        parent=scope.parent,
    )


def auto_names(name: str, args: PipelineSettings) -> list[tuple[str, str]]:
    """``(kind, logical name)`` of every child AWS names after its logical name (plus Pulumi's suffix)."""
    names = [
        ("lambda function", f"{name}-function"),
        ("IAM role", f"{name}-role"),
        ("SQS queue", f"{name}-queue"),
        ("SQS queue", f"{name}-dlq"),
        *(("CloudWatch alarm", f"{name}-{spec.role}") for spec in alarm_specs(args.queue_age_alarm_seconds)),
    ]
    if not args.existing_bucket:
        names.append(("S3 bucket", f"{name}-bucket"))
    if args.notification_mode == "eventbridge":
        names.append(("EventBridge rule", f"{name}-rule"))
    if args.notification_mode == "sns" and args.routing_topic_arn is None:
        names.append(("SNS topic", f"{name}-routes"))
    if args.alert_topic_arn is None:
        names.append(("SNS topic", f"{name}-alerts"))
    if args.state_table:
        names.append(("DynamoDB table", f"{name}-state"))
    if args.circuit_breaker is not None:
        names.extend(breaker_auto_names(name))
    return names


def _check_bucket_ownership(pipeline: str, args: PipelineSettings) -> None:
    """Refuse what would silently change an existing bucket's single, bucket-wide configurations."""
    existing = args.existing_bucket
    if (
        args.notification_mode == "sns"
        and not args.manage_bucket_notification
        and args.routing_topic_arn is None
    ):
        raise PipelineConfigError(
            f"pipeline {pipeline!r}: notification_mode='sns' without manage_bucket_notification needs "
            "routing_topic_arn: the topic belongs to whoever owns the bucket's notification (a PipelineGroup "
            "passes its own)."
        )
    if existing and args.manage_bucket_notification and not args.take_over_bucket_notification:
        raise PipelineConfigError(
            f"pipeline {pipeline!r}: the bucket is an existing one, and S3 keeps a single notification "
            "configuration per bucket: this pipeline's BucketNotification would replace every notification "
            "the bucket has now, and deleting the stack would clear it. Set take_over_bucket_notification="
            "True to accept that, or manage_bucket_notification=False and merge notification_target into "
            "the resource that owns the bucket's notifications."
        )
    if existing and args.input_lifecycle("input") is not None:
        raise PipelineConfigError(
            f"pipeline {pipeline!r}: input_expiration_days / input_transition_days need a bucket this "
            "pipeline creates (a lifecycle configuration is bucket-wide too). For a shared PipelineBucket "
            "set PipelineBucketArgs prefix_rules; for pipelines sharing a created bucket use a PipelineGroup."
        )


def powertools_parameter_name(architecture: str, runtime: str, version: str) -> str:
    """The public SSM parameter that holds the Powertools layer ARN for this combination."""
    return defaults.POWERTOOLS_LAYER_PARAMETER.format(
        architecture=architecture, runtime=runtime, version=version
    )


def powertools_layer_arn(
    pipeline: str, args: PipelineSettings, partition: pulumi.Output[str]
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
