"""Apply a captured stack to the local endpoint, one decision per resource type.

:data:`RESOURCE_TYPES` holds one entry per type token the component emits: *applied* with boto3 to the
endpoint, *emulated* in-process (the Lambda side: moto would run functions in Docker), both (alarms:
stored on the endpoint, evaluated here), *no local effect* (with the reason), or a *component*.
A type missing from the table is an error: a new resource in the component cannot be skipped silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from filepipe.local.alarms import AlarmSpec
from filepipe.local.capture import CapturedResource, CapturedStack
from filepipe.local.endpoint import EndpointAddress
from filepipe.local.esm import FunctionSpec, MappingConfigError, MappingSpec, check_mapping

if TYPE_CHECKING:
    from pulumi import AssetArchive

log = logging.getLogger(__name__)


class Handling(StrEnum):
    APPLIED = "applied"
    """Created on the endpoint with boto3."""
    EMULATED = "emulated"
    """Run in-process by the local runtime; nothing is created on the endpoint."""
    APPLIED_AND_EMULATED = "applied+emulated"
    """Created on the endpoint (so tools can list it) and given behaviour in-process."""
    NO_LOCAL_EFFECT = "no local effect"
    """Recorded only; the reason says why nothing is needed locally."""
    COMPONENT = "component"
    """A component resource: a grouping, nothing to create."""


class ApplyError(RuntimeError):
    """A captured resource cannot be provisioned locally."""


class ApplyContext:
    """Clients for the endpoint plus lookups over the captured stack."""

    def __init__(self, address: EndpointAddress, stack: CapturedStack) -> None:
        self.address = address
        self.stack = stack
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.address.client(service)  # type: ignore[call-overload]
        return self._clients[service]


Applier = Callable[[CapturedResource, ApplyContext], None]


@dataclass(frozen=True, slots=True)
class TypeRule:
    handling: Handling
    note: str
    apply: Applier | None = None


# -- appliers ----------------------------------------------------------------------------------------


def _tags(resource: CapturedResource) -> dict[str, str]:
    return {str(k): str(v) for k, v in (resource.inputs.get("tags") or {}).items()}


def _bucket(resource: CapturedResource, ctx: ApplyContext) -> None:
    s3 = ctx.client("s3")
    name = resource.get("bucket")
    kwargs: dict[str, Any] = {"Bucket": name}
    if ctx.address.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": ctx.address.region}
    s3.create_bucket(**kwargs)
    if tags := _tags(resource):
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )


def _bucket_versioning(resource: CapturedResource, ctx: ApplyContext) -> None:
    config = resource.inputs.get("versioningConfiguration") or {}
    ctx.client("s3").put_bucket_versioning(
        Bucket=resource.inputs["bucket"], VersioningConfiguration={"Status": config.get("status", "Enabled")}
    )


def _bucket_encryption(resource: CapturedResource, ctx: ApplyContext) -> None:
    rules = []
    for rule in resource.inputs.get("rules") or []:
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        by_default: dict[str, Any] = {"SSEAlgorithm": default.get("sseAlgorithm", "AES256")}
        if default.get("kmsMasterKeyId"):
            by_default["KMSMasterKeyID"] = default["kmsMasterKeyId"]
        entry: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": by_default}
        if rule.get("bucketKeyEnabled") is not None:
            entry["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
        rules.append(entry)
    ctx.client("s3").put_bucket_encryption(
        Bucket=resource.inputs["bucket"], ServerSideEncryptionConfiguration={"Rules": rules}
    )


def _s3_api_shape(value: Any) -> Any:
    """Pulumi's camelCase inputs as the S3 API's PascalCase (``id`` -> ``ID``), unset values dropped,
    and whole numbers as ints again (the engine passes every number as a float)."""
    if isinstance(value, Mapping):
        return {
            ("ID" if name == "id" else name[:1].upper() + name[1:]): _s3_api_shape(item)
            for name, item in value.items()
            if item is not None
        }
    if isinstance(value, list):
        return [_s3_api_shape(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _bucket_lifecycle(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("s3").put_bucket_lifecycle_configuration(
        Bucket=resource.inputs["bucket"],
        LifecycleConfiguration={"Rules": _s3_api_shape(resource.inputs.get("rules") or [])},
    )


def _public_access_block(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    ctx.client("s3").put_public_access_block(
        Bucket=inputs["bucket"],
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": bool(inputs.get("blockPublicAcls", False)),
            "IgnorePublicAcls": bool(inputs.get("ignorePublicAcls", False)),
            "BlockPublicPolicy": bool(inputs.get("blockPublicPolicy", False)),
            "RestrictPublicBuckets": bool(inputs.get("restrictPublicBuckets", False)),
        },
    )


def _requires_tls(statement: Mapping[str, Any]) -> bool:
    condition = statement.get("Condition") or {}
    secure = (condition.get("Bool") or {}).get("aws:SecureTransport")
    return statement.get("Effect") == "Deny" and str(secure).lower() == "false"


def local_bucket_policy(policy: str) -> str | None:
    """The policy without its TLS-only deny: the endpoint is plain HTTP on loopback (and moto enforces it)."""
    document = json.loads(policy)
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    kept = [statement for statement in statements if not _requires_tls(statement)]
    return json.dumps({**document, "Statement": kept}) if kept else None


def _bucket_policy(resource: CapturedResource, ctx: ApplyContext) -> None:
    policy = local_bucket_policy(resource.inputs["policy"])
    if policy is not None:
        ctx.client("s3").put_bucket_policy(Bucket=resource.inputs["bucket"], Policy=policy)


def _filter(entry: Mapping[str, Any]) -> dict[str, Any]:
    rules = [
        {"Name": name, "Value": entry[key]}
        for name, key in (("prefix", "filterPrefix"), ("suffix", "filterSuffix"))
        if entry.get(key)
    ]
    return {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}


def _bucket_notification(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    if inputs.get("lambdaFunctions"):
        raise ApplyError(
            f"{resource.name}: S3 -> Lambda notifications are not emulated locally (use a queue)"
        )
    config: dict[str, Any] = {}
    queues = [
        {
            **({"Id": entry["id"]} if entry.get("id") else {}),
            "QueueArn": entry["queueArn"],
            "Events": list(entry["events"]),
            **_filter(entry),
        }
        for entry in inputs.get("queues") or []
    ]
    topics = [
        {
            **({"Id": entry["id"]} if entry.get("id") else {}),
            "TopicArn": entry["topicArn"],
            "Events": list(entry["events"]),
            **_filter(entry),
        }
        for entry in inputs.get("topics") or []
    ]
    if queues:
        config["QueueConfigurations"] = queues
    if topics:
        config["TopicConfigurations"] = topics
    if inputs.get("eventbridge"):
        config["EventBridgeConfiguration"] = {}
    ctx.client("s3").put_bucket_notification_configuration(
        Bucket=inputs["bucket"], NotificationConfiguration=config
    )


_QUEUE_ATTRIBUTES = {
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "maxMessageSize": "MaximumMessageSize",
    "delaySeconds": "DelaySeconds",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "redrivePolicy": "RedrivePolicy",
    "redriveAllowPolicy": "RedriveAllowPolicy",
    "policy": "Policy",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
}


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _queue(resource: CapturedResource, ctx: ApplyContext) -> None:
    attributes = {
        attribute: _attribute_value(resource.inputs[key])
        for key, attribute in _QUEUE_ATTRIBUTES.items()
        if resource.inputs.get(key) not in (None, "")
    }
    url = ctx.client("sqs").create_queue(
        QueueName=resource.get("name"), Attributes=attributes, tags=_tags(resource)
    )["QueueUrl"]
    if url != resource.get("url"):
        raise ApplyError(
            f"{resource.name}: the endpoint serves {url}, the capture assumed {resource.get('url')}"
        )


def _queue_policy(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("sqs").set_queue_attributes(
        QueueUrl=resource.inputs["queueUrl"], Attributes={"Policy": resource.inputs["policy"]}
    )


def _table(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    dynamodb = ctx.client("dynamodb")
    key_schema = [{"AttributeName": inputs["hashKey"], "KeyType": "HASH"}]
    if inputs.get("rangeKey"):
        key_schema.append({"AttributeName": inputs["rangeKey"], "KeyType": "RANGE"})
    kwargs: dict[str, Any] = {
        "TableName": resource.get("name"),
        "KeySchema": key_schema,
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs.get("attributes") or []
        ],
        "BillingMode": inputs.get("billingMode") or "PROVISIONED",
    }
    if kwargs["BillingMode"] == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = {
            "ReadCapacityUnits": int(inputs.get("readCapacity") or 5),
            "WriteCapacityUnits": int(inputs.get("writeCapacity") or 5),
        }
    indexes = []
    for index in inputs.get("globalSecondaryIndexes") or []:
        schema = [{"AttributeName": index["hashKey"], "KeyType": "HASH"}]
        if index.get("rangeKey"):
            schema.append({"AttributeName": index["rangeKey"], "KeyType": "RANGE"})
        projection: dict[str, Any] = {"ProjectionType": index.get("projectionType", "ALL")}
        if index.get("nonKeyAttributes"):
            projection["NonKeyAttributes"] = list(index["nonKeyAttributes"])
        entry: dict[str, Any] = {"IndexName": index["name"], "KeySchema": schema, "Projection": projection}
        if kwargs["BillingMode"] == "PROVISIONED":
            entry["ProvisionedThroughput"] = kwargs["ProvisionedThroughput"]
        indexes.append(entry)
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes
    if tags := _tags(resource):
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    dynamodb.create_table(**kwargs)
    ttl = inputs.get("ttl") or {}
    if ttl.get("enabled") and ttl.get("attributeName"):
        dynamodb.update_time_to_live(
            TableName=resource.get("name"),
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]},
        )
    if (inputs.get("pointInTimeRecovery") or {}).get("enabled"):
        dynamodb.update_continuous_backups(
            TableName=resource.get("name"),
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )


def _topic(resource: CapturedResource, ctx: ApplyContext) -> None:
    attributes = {
        attribute: str(resource.inputs[key])
        for key, attribute in (
            ("kmsMasterKeyId", "KmsMasterKeyId"),
            ("displayName", "DisplayName"),
            ("policy", "Policy"),
        )
        if resource.inputs.get(key)
    }
    arn = ctx.client("sns").create_topic(
        Name=resource.get("name"),
        Attributes=attributes,
        Tags=[{"Key": k, "Value": v} for k, v in _tags(resource).items()],
    )["TopicArn"]
    if arn != resource.get("arn"):
        raise ApplyError(
            f"{resource.name}: the endpoint created {arn}, the capture assumed {resource.get('arn')}"
        )


def _topic_subscription(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    attributes = {
        attribute: _attribute_value(inputs[key])
        for key, attribute in (("rawMessageDelivery", "RawMessageDelivery"), ("filterPolicy", "FilterPolicy"))
        if inputs.get(key) not in (None, "")
    }
    ctx.client("sns").subscribe(
        TopicArn=inputs["topic"],
        Protocol=inputs["protocol"],
        Endpoint=inputs["endpoint"],
        Attributes=attributes,
    )


def _role(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    kwargs: dict[str, Any] = {
        "RoleName": resource.get("name"),
        "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
    }
    if inputs.get("path"):
        kwargs["Path"] = inputs["path"]
    if inputs.get("description"):
        kwargs["Description"] = inputs["description"]
    ctx.client("iam").create_role(**kwargs)


def _role_policy(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("iam").put_role_policy(
        RoleName=resource.inputs["role"],
        PolicyName=resource.get("name"),
        PolicyDocument=resource.inputs["policy"],
    )


def _log_group(resource: CapturedResource, ctx: ApplyContext) -> None:
    logs = ctx.client("logs")
    name = resource.get("name")
    logs.create_log_group(logGroupName=name, tags=_tags(resource))
    if resource.inputs.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(resource.inputs["retentionInDays"]))


def _metric_alarm(resource: CapturedResource, ctx: ApplyContext) -> None:
    spec = alarm_spec(resource)
    kwargs: dict[str, Any] = {
        "AlarmName": spec.name,
        "AlarmDescription": spec.description,
        "ActionsEnabled": spec.actions_enabled,
        "OKActions": list(spec.ok_actions),
        "AlarmActions": list(spec.alarm_actions),
        "InsufficientDataActions": list(spec.insufficient_data_actions),
        "MetricName": spec.metric_name,
        "Namespace": spec.namespace,
        "Statistic": spec.statistic,
        "Dimensions": [{"Name": k, "Value": v} for k, v in spec.dimensions.items()],
        "Period": spec.period_seconds,
        "EvaluationPeriods": spec.evaluation_periods,
        "Threshold": spec.threshold,
        "ComparisonOperator": spec.comparison_operator,
        "TreatMissingData": spec.treat_missing_data,
    }
    if spec.datapoints_to_alarm:
        kwargs["DatapointsToAlarm"] = spec.datapoints_to_alarm
    ctx.client("cloudwatch").put_metric_alarm(**kwargs)


def _dashboard(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("cloudwatch").put_dashboard(
        DashboardName=resource.get("dashboardName"), DashboardBody=resource.inputs["dashboardBody"]
    )


def _event_rule(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    kwargs: dict[str, Any] = {"Name": resource.get("name"), "State": inputs.get("state") or "ENABLED"}
    for key, param in (
        ("eventPattern", "EventPattern"),
        ("scheduleExpression", "ScheduleExpression"),
        ("description", "Description"),
        ("eventBusName", "EventBusName"),
    ):
        if inputs.get(key):
            kwargs[param] = inputs[key]
    ctx.client("events").put_rule(**kwargs)


def _event_target(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    target: dict[str, Any] = {"Id": resource.get("targetId"), "Arn": inputs["arn"]}
    for key, param in (("input", "Input"), ("inputPath", "InputPath")):
        if inputs.get(key):
            target[param] = inputs[key]
    kwargs: dict[str, Any] = {"Rule": inputs["rule"], "Targets": [target]}
    if inputs.get("eventBusName"):
        kwargs["EventBusName"] = inputs["eventBusName"]
    response = ctx.client("events").put_targets(**kwargs)
    if response.get("FailedEntryCount"):
        raise ApplyError(f"{resource.name}: {response.get('FailedEntries')}")


RESOURCE_TYPES: dict[str, TypeRule] = {
    "filepipe:index:FileProcessingPipeline": TypeRule(Handling.COMPONENT, "groups a pipeline's resources"),
    "filepipe:index:PipelineGroup": TypeRule(Handling.COMPONENT, "groups pipelines sharing a bucket"),
    "filepipe:index:PipelineBucket": TypeRule(Handling.COMPONENT, "groups the bucket's resources"),
    "aws:s3/bucket:Bucket": TypeRule(Handling.APPLIED, "CreateBucket", _bucket),
    "aws:s3/bucketVersioning:BucketVersioning": TypeRule(
        Handling.APPLIED, "PutBucketVersioning (the handler keys state on versionId)", _bucket_versioning
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": TypeRule(
        Handling.APPLIED, "PutBucketEncryption", _bucket_encryption
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": TypeRule(
        Handling.APPLIED,
        "PutBucketLifecycleConfiguration (stored; moto does not expire objects)",
        _bucket_lifecycle,
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": TypeRule(
        Handling.APPLIED, "PutPublicAccessBlock", _public_access_block
    ),
    "aws:s3/bucketPolicy:BucketPolicy": TypeRule(
        Handling.APPLIED,
        "PutBucketPolicy, minus the TLS-only deny (the endpoint is plain HTTP; moto enforces policies)",
        _bucket_policy,
    ),
    "aws:s3/bucketNotification:BucketNotification": TypeRule(
        Handling.APPLIED, "PutBucketNotificationConfiguration: moto delivers S3 events", _bucket_notification
    ),
    "aws:sqs/queue:Queue": TypeRule(Handling.APPLIED, "CreateQueue: moto applies the redrive policy", _queue),
    "aws:sqs/queuePolicy:QueuePolicy": TypeRule(
        Handling.APPLIED, "SetQueueAttributes Policy (stored, not enforced)", _queue_policy
    ),
    "aws:kms/key:Key": TypeRule(
        Handling.NO_LOCAL_EFFECT,
        "moto cannot create a key with the captured id, and its SQS/SNS/DynamoDB accept any key id",
    ),
    "aws:kms/alias:Alias": TypeRule(Handling.NO_LOCAL_EFFECT, "names the key above"),
    "aws:iam/role:Role": TypeRule(Handling.APPLIED, "CreateRole (not enforced locally)", _role),
    "aws:iam/rolePolicy:RolePolicy": TypeRule(Handling.APPLIED, "PutRolePolicy (not enforced)", _role_policy),
    "aws:cloudwatch/logGroup:LogGroup": TypeRule(Handling.APPLIED, "CreateLogGroup", _log_group),
    "aws:lambda/layerVersion:LayerVersion": TypeRule(
        Handling.EMULATED, "the handler's dependencies are installed in the local virtualenv"
    ),
    "aws:lambda/function:Function": TypeRule(
        Handling.EMULATED, "build_handler() in-process with the function's environment, timeout and code"
    ),
    "aws:lambda/eventSourceMapping:EventSourceMapping": TypeRule(
        Handling.EMULATED,
        "EventSourceMappingRunner (moto's own mapping would invoke the function in Docker)",
    ),
    "aws:dynamodb/table:Table": TypeRule(Handling.APPLIED, "CreateTable + TTL + PITR", _table),
    "aws:sns/topic:Topic": TypeRule(Handling.APPLIED, "CreateTopic", _topic),
    "aws:sns/topicSubscription:TopicSubscription": TypeRule(
        Handling.APPLIED,
        "Subscribe (e-mail stays pending; the local subscriber prints alerts)",
        _topic_subscription,
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": TypeRule(
        Handling.APPLIED_AND_EMULATED,
        "PutMetricAlarm; evaluated by AlarmEvaluator (moto never evaluates alarms)",
        _metric_alarm,
    ),
    "aws:cloudwatch/dashboard:Dashboard": TypeRule(Handling.APPLIED, "PutDashboard", _dashboard),
    "aws:cloudwatch/eventRule:EventRule": TypeRule(
        Handling.APPLIED, "PutRule: moto routes S3 EventBridge events to the rule's targets", _event_rule
    ),
    "aws:cloudwatch/eventTarget:EventTarget": TypeRule(Handling.APPLIED, "PutTargets", _event_target),
}


def check_types(stack: CapturedStack) -> None:
    """Fail before anything is created if the stack has a type the table does not decide."""
    unknown = sorted({resource.type for resource in stack.resources if resource.type not in RESOURCE_TYPES})
    if unknown:
        raise ApplyError(
            "the stack has resource types the local runtime neither applies nor emulates: "
            + ", ".join(unknown)
            + " (add them to filepipe.local.apply.RESOURCE_TYPES)"
        )


# -- the emulated side, read from the capture ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalFunction:
    spec: FunctionSpec
    code: AssetArchive | None
    """The function's code archive as the component built it (schema file, processor code)."""


@dataclass(slots=True)
class AppliedStack:
    """What the local runtime runs, after the endpoint has been provisioned."""

    functions: dict[str, LocalFunction] = field(default_factory=dict)
    mappings: list[MappingSpec] = field(default_factory=list)
    alarms: list[AlarmSpec] = field(default_factory=list)
    topic_arns: list[str] = field(default_factory=list)
    handled: list[tuple[CapturedResource, Handling]] = field(default_factory=list)
    existing_buckets: list[str] = field(default_factory=list)
    """Buckets the stack refers to without creating them, created locally as stand-ins."""


DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30
"""SQS's visibility timeout for a queue that declares none."""


def _number(value: Any, default: float) -> float:
    return default if value is None else float(value)


def function_spec(resource: CapturedResource) -> LocalFunction:
    variables = (resource.inputs.get("environment") or {}).get("variables") or {}
    spec = FunctionSpec(
        name=resource.get("name"),
        arn=resource.get("arn"),
        timeout_seconds=_number(resource.inputs.get("timeout"), 3),
        memory_mb=int(_number(resource.inputs.get("memorySize"), 128)),
        environment={str(k): str(v) for k, v in variables.items()},
        handler=str(resource.inputs.get("handler") or ""),
    )
    return LocalFunction(spec=spec, code=resource.inputs.get("code"))


def mapping_spec(resource: CapturedResource, stack: CapturedStack) -> MappingSpec:
    inputs = resource.inputs
    source = str(inputs.get("eventSourceArn", ""))
    queues = {queue.get("arn"): queue for queue in stack.of_type("aws:sqs/queue:Queue")}
    if source not in queues:
        raise ApplyError(
            f"{resource.name}: only SQS event sources from this stack are emulated, got {source!r}"
        )
    function = str(inputs.get("functionName", ""))
    functions = stack.of_type("aws:lambda/function:Function")
    matches = [f for f in functions if function in (f.get("arn"), f.get("name"), f.get("qualifiedArn"))]
    if not matches:
        raise ApplyError(f"{resource.name}: function {function!r} is not in this stack")
    scaling = inputs.get("scalingConfig") or {}
    concurrency = scaling.get("maximumConcurrency")
    spec = MappingSpec(
        name=resource.name,
        queue_url=queues[source].get("url"),
        queue_arn=source,
        function_name=matches[0].get("name"),
        batch_size=int(_number(inputs.get("batchSize"), 10)),
        batching_window_seconds=_number(inputs.get("maximumBatchingWindowInSeconds"), 0),
        function_response_types=tuple(inputs.get("functionResponseTypes") or ()),
        enabled=bool(inputs.get("enabled", True)),
        maximum_concurrency=int(concurrency) if concurrency is not None else None,
        visibility_timeout_seconds=int(
            _number(queues[source].inputs.get("visibilityTimeoutSeconds"), DEFAULT_VISIBILITY_TIMEOUT_SECONDS)
        ),
    )
    try:
        check_mapping(spec, function_spec(matches[0]).spec)
    except MappingConfigError as error:
        raise ApplyError(str(error)) from error
    return spec


def alarm_spec(resource: CapturedResource) -> AlarmSpec:
    inputs = resource.inputs
    for unsupported in ("metricQueries", "extendedStatistic", "thresholdMetricId"):
        if inputs.get(unsupported):
            raise ApplyError(f"{resource.name}: alarms with {unsupported} are not emulated locally")
    return AlarmSpec(
        name=resource.get("name"),
        arn=resource.get("arn"),
        namespace=inputs["namespace"],
        metric_name=inputs["metricName"],
        dimensions={str(k): str(v) for k, v in (inputs.get("dimensions") or {}).items()},
        statistic=inputs.get("statistic") or "Average",
        period_seconds=int(_number(inputs.get("period"), 60)),
        evaluation_periods=int(_number(inputs.get("evaluationPeriods"), 1)),
        datapoints_to_alarm=int(inputs["datapointsToAlarm"]) if inputs.get("datapointsToAlarm") else None,
        threshold=_number(inputs.get("threshold"), 0),
        comparison_operator=inputs["comparisonOperator"],
        treat_missing_data=inputs.get("treatMissingData") or "missing",
        alarm_actions=tuple(inputs.get("alarmActions") or ()),
        ok_actions=tuple(inputs.get("okActions") or ()),
        insufficient_data_actions=tuple(inputs.get("insufficientDataActions") or ()),
        actions_enabled=bool(inputs.get("actionsEnabled", True)),
        description=inputs.get("alarmDescription") or "",
    )


def existing_buckets(stack: CapturedStack) -> list[str]:
    """Buckets the stack uses but does not create (``bucket: <existing name>`` in the stack config)."""
    created = {bucket.get("bucket") for bucket in stack.of_type("aws:s3/bucket:Bucket")}
    used = [
        str(resource.inputs["bucket"])
        for resource in stack.resources
        if resource.type.startswith("aws:s3/")
        and resource.type != "aws:s3/bucket:Bucket"
        and resource.inputs.get("bucket")
    ]
    return [name for name in dict.fromkeys(used) if name not in created]


def apply_stack(stack: CapturedStack, address: EndpointAddress) -> AppliedStack:
    """Create every applied resource on the endpoint, in registration order; collect the emulated ones.

    Buckets the stack only refers to exist in the cloud before the stack does; locally they are
    created first (versioned, like the buckets the component creates), so the pipelines have them.
    """
    check_types(stack)
    ctx = ApplyContext(address, stack)
    applied = AppliedStack()
    for name in existing_buckets(stack):
        kwargs: dict[str, Any] = {"Bucket": name}
        if address.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": address.region}
        ctx.client("s3").create_bucket(**kwargs)
        ctx.client("s3").put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        applied.existing_buckets.append(name)
    for resource in stack.resources:
        rule = RESOURCE_TYPES[resource.type]
        if rule.apply is not None:
            try:
                rule.apply(resource, ctx)
            except ApplyError:
                raise
            except Exception as error:
                raise ApplyError(f"{resource.type} {resource.name}: {error}") from error
        if resource.type == "aws:lambda/function:Function":
            local = function_spec(resource)
            applied.functions[local.spec.name] = local
        elif resource.type == "aws:lambda/eventSourceMapping:EventSourceMapping":
            applied.mappings.append(mapping_spec(resource, stack))
        elif resource.type == "aws:cloudwatch/metricAlarm:MetricAlarm":
            applied.alarms.append(alarm_spec(resource))
        elif resource.type == "aws:sns/topic:Topic":
            applied.topic_arns.append(resource.get("arn"))
        applied.handled.append((resource, rule.handling))
    return applied


def describe_resource(resource: CapturedResource) -> str:
    """A short physical identifier for listings."""
    for key in ("url", "arn", "name", "bucket", "dashboardName"):
        value = resource.outputs.get(key)
        if isinstance(value, str) and value:
            return value
    return resource.resource_id


def outputs_json(stack: CapturedStack) -> str:
    """The stack outputs in the shape of ``pulumi stack output --json``."""
    return json.dumps(stack.outputs, indent=2, sort_keys=False)
