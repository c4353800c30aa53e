"""The local runtime's table of resource types, and applying a captured stack with it.

:data:`RESOURCE_TYPES` has one :class:`ResourceType` per type token a stack may declare, and the entry is
everything the local runtime does with that type:

- ``outputs``: what the Pulumi mocks (:mod:`filepipe.local.capture`) answer its registration with, the
  identifiers it will have on the endpoint;
- ``apply``: how it is created on the endpoint with boto3;
- ``emulate``: what it adds to the in-process :class:`Emulation` (functions, mappings, alarms, alert
  topics);
- ``handling`` and ``note``: how it runs locally, as ``filepipe local up`` lists it: *applied*,
  *emulated* (layers: their packages are in the local virtualenv), both (functions and mappings:
  stored on the endpoint so any process can operate them, run here because moto would run them in
  Docker; alarms: stored on the endpoint, evaluated here), *no local effect* (with the reason), or a
  *component*.

A type missing from the table is an error before anything is created: a new resource in the component
cannot be skipped silently. Adding a type is one entry (with its outputs and applier beside it) and its
test. Entries are grouped by service; other modules refer to a type by its entry (``QUEUE.token``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from filepipe.local import lambda_fidelity
from filepipe.local.alarms import LocalAlarm
from filepipe.local.endpoint import EndpointAddress
from filepipe.local.esm import FunctionSpec, MappingConfigError, MappingSpec, check_mapping
from filepipe.local.invocations import LocalSchedule, rate_seconds

if TYPE_CHECKING:
    from filepipe.local.capture import CapturedResource, CapturedStack

log = logging.getLogger(__name__)


class Handling(StrEnum):
    APPLIED = "applied"
    """Created on the endpoint with boto3."""
    EMULATED = "emulated"
    """Run in-process by the local runtime; nothing is created on the endpoint."""
    APPLIED_AND_EMULATED = "applied+emulated"
    """Created on the endpoint (so tools can list it) and given behaviour in-process."""
    NO_LOCAL_EFFECT = "no local effect"
    """Recorded only; the note says why nothing is needed locally."""
    COMPONENT = "component"
    """A component resource: a grouping, nothing to create."""


class ApplyError(RuntimeError):
    """A captured resource cannot be provisioned locally."""


class ApplyContext:
    """Clients for the endpoint, one per service for the whole apply."""

    def __init__(self, address: EndpointAddress) -> None:
        self.address = address
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.address.client(service)  # type: ignore[call-overload]
        return self._clients[service]


@dataclass(slots=True)
class Emulation:
    """What the local runtime runs in-process, read from the captured stack."""

    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    """By function name."""
    mappings: list[MappingSpec] = field(default_factory=list)
    alarms: list[LocalAlarm] = field(default_factory=list)
    alert_topics: list[str] = field(default_factory=list)
    """Topic ARNs the local alert subscriber listens to."""
    schedules: list[LocalSchedule] = field(default_factory=list)
    """EventBridge schedule rules with Lambda targets (fired by the local schedule runner)."""


# -- what an entry is made of -------------------------------------------------------------------------------


_NAMESPACE: Final = uuid.UUID("5f1c8d0e-6d1b-4a53-9a57-6f0d2b3c4e11")


@dataclass(frozen=True, slots=True)
class NameRule:
    """The names a service accepts: a logical name is made valid by replacing runs of other characters."""

    invalid: str
    """A pattern of the characters the service refuses."""
    max_length: int
    lower: bool = False

    def valid(self, logical_name: str) -> str:
        value = logical_name.lower() if self.lower else logical_name
        value = re.sub(self.invalid, "-", value).strip("-.")
        return value[: self.max_length].rstrip("-.") or "resource"


ANY_NAME: Final = NameRule(r"[^A-Za-z0-9_.-]+", 255)


@dataclass(frozen=True, slots=True)
class Registration:
    """A resource registering under the mocks: what its local identifiers are derived from."""

    logical_name: str
    inputs: Mapping[str, Any]
    address: EndpointAddress

    def name(self, rule: NameRule = ANY_NAME, key: str = "name") -> str:
        """The name the program set in input ``key``, else the logical name made valid by ``rule``."""
        return str(self.inputs.get(key) or rule.valid(self.logical_name))

    def stable_id(self) -> str:
        """An id the service would generate, the same on every capture of the program."""
        return str(uuid.uuid5(_NAMESPACE, self.logical_name))

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.address.region}:{self.address.account_id}:{resource}"


Outputs = Callable[[Registration], tuple[str, dict[str, Any]]]
"""``(id, outputs)`` of a registration; the mocks add the inputs to the outputs."""
Applier = Callable[["CapturedResource", ApplyContext], None]
Emulator = Callable[["CapturedResource", "CapturedStack", Emulation], None]
"""Adds what the resource contributes to the emulation (it may look up the resources it refers to)."""


def _named(registration: Registration) -> tuple[str, dict[str, Any]]:
    """A resource identified by its name, with no outputs beyond its inputs."""
    return registration.name(), {}


@dataclass(frozen=True, slots=True)
class ResourceType:
    """Everything the local runtime does with one resource type."""

    token: str
    handling: Handling
    note: str
    """How it runs locally, or why nothing is needed."""
    outputs: Outputs = _named
    apply: Applier | None = None
    emulate: Emulator | None = None

    def __post_init__(self) -> None:
        applied = self.handling in {Handling.APPLIED, Handling.APPLIED_AND_EMULATED}
        if applied != (self.apply is not None):
            raise ValueError(f"{self.token}: an applier is needed exactly when the type is applied")


def _tags(resource: CapturedResource) -> dict[str, str]:
    return {str(k): str(v) for k, v in (resource.inputs.get("tags") or {}).items()}


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _applied(resource: CapturedResource, created: str, key: str) -> None:
    """Fail when the endpoint created something else than the capture assumed (and wired in)."""
    if created != resource.get(key):
        raise ApplyError(
            f"{resource.name}: the endpoint created {created}, the capture assumed {resource.get(key)}"
        )


# -- components ------------------------------------------------------------------------------------------


PIPELINE = ResourceType(
    "filepipe:index:FileProcessingPipeline", Handling.COMPONENT, "groups a pipeline's resources"
)
PIPELINE_GROUP = ResourceType(
    "filepipe:index:PipelineGroup", Handling.COMPONENT, "groups pipelines sharing a bucket"
)
PIPELINE_BUCKET = ResourceType(
    "filepipe:index:PipelineBucket", Handling.COMPONENT, "groups the bucket's resources"
)


# -- S3 --------------------------------------------------------------------------------------------------


BUCKET_NAME: Final = NameRule(r"[^a-z0-9.-]+", 63, lower=True)


def _bucket_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    bucket, region = registration.name(BUCKET_NAME, key="bucket"), registration.address.region
    return bucket, {
        "bucket": bucket,
        "arn": f"arn:aws:s3:::{bucket}",
        "bucketDomainName": f"{bucket}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
        "region": region,
    }


def _of_bucket(registration: Registration) -> tuple[str, dict[str, Any]]:
    """A bucket's configuration resource, identified by its bucket."""
    return str(registration.inputs.get("bucket") or registration.name()), {}


def create_bucket(ctx: ApplyContext, name: str, tags: Mapping[str, str]) -> None:
    s3 = ctx.client("s3")
    kwargs: dict[str, Any] = {"Bucket": name}
    if ctx.address.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": ctx.address.region}
    s3.create_bucket(**kwargs)
    if tags:
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )


def put_bucket_versioning(ctx: ApplyContext, bucket: str, status: str) -> None:
    ctx.client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _bucket(resource: CapturedResource, ctx: ApplyContext) -> None:
    create_bucket(ctx, resource.get("bucket"), _tags(resource))


def _bucket_versioning(resource: CapturedResource, ctx: ApplyContext) -> None:
    config = resource.inputs.get("versioningConfiguration") or {}
    put_bucket_versioning(ctx, resource.inputs["bucket"], config.get("status", "Enabled"))


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


def _notification_target(entry: Mapping[str, Any], arn_key: str) -> dict[str, Any]:
    """One queue or topic of a notification configuration, with its key filter."""
    rules = [
        {"Name": name, "Value": entry[key]}
        for name, key in (("prefix", "filterPrefix"), ("suffix", "filterSuffix"))
        if entry.get(key)
    ]
    return {
        **({"Id": entry["id"]} if entry.get("id") else {}),
        arn_key[:1].upper() + arn_key[1:]: entry[arn_key],
        "Events": list(entry["events"]),
        **({"Filter": {"Key": {"FilterRules": rules}}} if rules else {}),
    }


def _bucket_notification(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    if inputs.get("lambdaFunctions"):
        raise ApplyError(
            f"{resource.name}: S3 -> Lambda notifications are not emulated locally (use a queue)"
        )
    config: dict[str, Any] = {}
    for section, key, arn_key in (
        ("QueueConfigurations", "queues", "queueArn"),
        ("TopicConfigurations", "topics", "topicArn"),
    ):
        if targets := [_notification_target(entry, arn_key) for entry in inputs.get(key) or []]:
            config[section] = targets
    if inputs.get("eventbridge"):
        config["EventBridgeConfiguration"] = {}
    ctx.client("s3").put_bucket_notification_configuration(
        Bucket=inputs["bucket"], NotificationConfiguration=config
    )


BUCKET = ResourceType("aws:s3/bucket:Bucket", Handling.APPLIED, "CreateBucket", _bucket_outputs, _bucket)
BUCKET_VERSIONING = ResourceType(
    "aws:s3/bucketVersioning:BucketVersioning",
    Handling.APPLIED,
    "PutBucketVersioning (the handler keys state on versionId)",
    _of_bucket,
    _bucket_versioning,
)
BUCKET_ENCRYPTION = ResourceType(
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    Handling.APPLIED,
    "PutBucketEncryption",
    _of_bucket,
    _bucket_encryption,
)
BUCKET_LIFECYCLE = ResourceType(
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    Handling.APPLIED,
    "PutBucketLifecycleConfiguration (stored; moto does not expire objects)",
    _of_bucket,
    _bucket_lifecycle,
)
BUCKET_PUBLIC_ACCESS_BLOCK = ResourceType(
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    Handling.APPLIED,
    "PutPublicAccessBlock",
    _of_bucket,
    _public_access_block,
)
BUCKET_POLICY = ResourceType(
    "aws:s3/bucketPolicy:BucketPolicy",
    Handling.APPLIED,
    "PutBucketPolicy, minus the TLS-only deny (the endpoint is plain HTTP; moto enforces policies)",
    _of_bucket,
    _bucket_policy,
)
BUCKET_NOTIFICATION = ResourceType(
    "aws:s3/bucketNotification:BucketNotification",
    Handling.APPLIED,
    "PutBucketNotificationConfiguration: moto delivers S3 events (to queues, topics, EventBridge)",
    _of_bucket,
    _bucket_notification,
)


# -- SQS -------------------------------------------------------------------------------------------------


QUEUE_NAME: Final = NameRule(r"[^A-Za-z0-9_-]+", 80)

_QUEUE_ATTRIBUTES: Final = {
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


def _queue_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    queue = registration.name(QUEUE_NAME)
    if registration.inputs.get("fifoQueue") and not queue.endswith(".fifo"):
        queue += ".fifo"
    url = f"{registration.address.url}/{registration.address.account_id}/{queue}"
    return url, {"name": queue, "url": url, "arn": registration.arn("sqs", queue)}


def _queue(resource: CapturedResource, ctx: ApplyContext) -> None:
    attributes = {
        attribute: _attribute_value(resource.inputs[key])
        for key, attribute in _QUEUE_ATTRIBUTES.items()
        if resource.inputs.get(key) not in (None, "")
    }
    response = ctx.client("sqs").create_queue(
        QueueName=resource.get("name"), Attributes=attributes, tags=_tags(resource)
    )
    _applied(resource, response["QueueUrl"], "url")


def _queue_policy_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    return str(registration.inputs.get("queueUrl") or registration.name()), {}


def _queue_policy(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("sqs").set_queue_attributes(
        QueueUrl=resource.inputs["queueUrl"], Attributes={"Policy": resource.inputs["policy"]}
    )


QUEUE = ResourceType(
    "aws:sqs/queue:Queue",
    Handling.APPLIED,
    "CreateQueue: moto applies the redrive policy",
    _queue_outputs,
    _queue,
)
QUEUE_POLICY = ResourceType(
    "aws:sqs/queuePolicy:QueuePolicy",
    Handling.APPLIED,
    "SetQueueAttributes Policy (stored, not enforced)",
    _queue_policy_outputs,
    _queue_policy,
)


# -- KMS -------------------------------------------------------------------------------------------------


def _key_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    key_id = registration.stable_id()
    return key_id, {"keyId": key_id, "arn": registration.arn("kms", f"key/{key_id}")}


def _alias_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    alias = str(registration.inputs.get("name") or f"alias/{registration.name()}")
    return alias, {"name": alias, "arn": registration.arn("kms", alias)}


KMS_KEY = ResourceType(
    "aws:kms/key:Key",
    Handling.NO_LOCAL_EFFECT,
    "moto cannot create a key with the captured id, and its SQS/SNS/DynamoDB accept any key id",
    _key_outputs,
)
KMS_ALIAS = ResourceType(
    "aws:kms/alias:Alias", Handling.NO_LOCAL_EFFECT, "names the key above", _alias_outputs
)


# -- IAM -------------------------------------------------------------------------------------------------


FUNCTION_NAME: Final = NameRule(r"[^A-Za-z0-9_-]+", 64)
"""Lambda functions and IAM roles."""


def _role_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    role = registration.name(FUNCTION_NAME)
    return role, {
        "name": role,
        "arn": f"arn:aws:iam::{registration.address.account_id}:role/{role}",
        "uniqueId": "AROA" + registration.stable_id().replace("-", "")[:17].upper(),
    }


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


def _role_policy_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    name = registration.name()
    return f"{registration.inputs.get('role', '')}:{name}", {"name": name}


def _role_policy(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("iam").put_role_policy(
        RoleName=resource.inputs["role"],
        PolicyName=resource.get("name"),
        PolicyDocument=resource.inputs["policy"],
    )


ROLE = ResourceType(
    "aws:iam/role:Role", Handling.APPLIED, "CreateRole (not enforced locally)", _role_outputs, _role
)
ROLE_POLICY = ResourceType(
    "aws:iam/rolePolicy:RolePolicy",
    Handling.APPLIED,
    "PutRolePolicy (not enforced)",
    _role_policy_outputs,
    _role_policy,
)


# -- Lambda ----------------------------------------------------------------------------------------------


def _function_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    function = registration.name(FUNCTION_NAME)
    arn = registration.arn("lambda", f"function:{function}")
    region = registration.address.region
    return function, {
        "name": function,
        "arn": arn,
        "qualifiedArn": f"{arn}:$LATEST",
        "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
        "version": "$LATEST",
    }


def referenced_function(stack: CapturedStack, reference: str) -> CapturedResource | None:
    """The stack's function that ``reference`` names (by name, ARN or qualified ARN, as a mapping does)."""
    for function in stack.of_type(FUNCTION.token):
        if reference in (function.get("name"), function.get("arn"), function.get("qualifiedArn")):
            return function
    return None


def _placeholder_code() -> bytes:
    """The zip the endpoint stores as a function's code.

    moto keeps the code only to report ``CodeSize`` / ``CodeSha256``, and would run it only in Docker,
    which it never does here (the local runner invokes the installed handler in-process): uploading
    the component's archive would store a copy nothing reads.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "README.txt", "filepipe local: this function runs in the `filepipe local up` process.\n"
        )
    return buffer.getvalue()


_LOGGING_CONFIG: Final = {
    "logFormat": "LogFormat",
    "logGroup": "LogGroup",
    "applicationLogLevel": "ApplicationLogLevel",
    "systemLogLevel": "SystemLogLevel",
}


def _function(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    lambda_ = ctx.client("lambda")
    kwargs: dict[str, Any] = {
        "FunctionName": resource.get("name"),
        # moto refuses a role IAM does not have; the role registers (and is created) before its function.
        "Role": inputs["role"],
        "Code": {"ZipFile": _placeholder_code()},
        "Timeout": int(resource.number("timeout", 3)),
        "MemorySize": int(resource.number("memorySize", 128)),
        "Tags": _tags(resource),
        # No Layers: they are emulated (their packages are in the local virtualenv), so no layer version
        # exists on the endpoint, and moto refuses a function whose layer it does not have.
    }
    for key, param in (("runtime", "Runtime"), ("handler", "Handler"), ("description", "Description")):
        if inputs.get(key):
            kwargs[param] = inputs[key]
    if inputs.get("architectures"):
        kwargs["Architectures"] = list(inputs["architectures"])
    if variables := (inputs.get("environment") or {}).get("variables"):
        kwargs["Environment"] = {"Variables": {str(k): str(v) for k, v in variables.items()}}
    logging_config = inputs.get("loggingConfig") or {}
    if config := {
        param: logging_config[key] for key, param in _LOGGING_CONFIG.items() if logging_config.get(key)
    }:
        kwargs["LoggingConfig"] = config
    response = lambda_.create_function(**kwargs)
    _applied(resource, response["FunctionArn"], "arn")
    reserved = inputs.get("reservedConcurrentExecutions")
    if reserved is not None and int(reserved) >= 0:
        lambda_.put_function_concurrency(
            FunctionName=resource.get("name"), ReservedConcurrentExecutions=int(reserved)
        )


def _emulate_function(resource: CapturedResource, stack: CapturedStack, emulation: Emulation) -> None:
    function = FunctionSpec.from_resource(resource)
    emulation.functions[function.name] = function


def _layer_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    layer_arn = registration.arn("lambda", f"layer:{registration.name(key='layerName')}")
    return f"{layer_arn}:1", {"layerArn": layer_arn, "arn": f"{layer_arn}:1", "version": "1"}


def _mapping_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    mapping_id = registration.stable_id()
    function = str(registration.inputs.get("functionName", ""))
    return mapping_id, {
        "uuid": mapping_id,
        "functionArn": function
        if function.startswith("arn:")
        else registration.arn("lambda", f"function:{function}"),
        "state": "Enabled" if registration.inputs.get("enabled", True) else "Disabled",
    }


def _mapping(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    kwargs: dict[str, Any] = {
        "EventSourceArn": inputs["eventSourceArn"],
        "FunctionName": inputs["functionName"],
        "Enabled": bool(inputs.get("enabled", True)),
        "Tags": _tags(resource),
    }
    if inputs.get("batchSize") is not None:
        kwargs["BatchSize"] = int(inputs["batchSize"])
    if inputs.get("maximumBatchingWindowInSeconds") is not None:
        kwargs["MaximumBatchingWindowInSeconds"] = int(inputs["maximumBatchingWindowInSeconds"])
    if inputs.get("functionResponseTypes"):
        kwargs["FunctionResponseTypes"] = list(inputs["functionResponseTypes"])
    concurrency = (inputs.get("scalingConfig") or {}).get("maximumConcurrency")
    if concurrency is not None:
        kwargs["ScalingConfig"] = {"MaximumConcurrency": int(concurrency)}
    created = ctx.client("lambda").create_event_source_mapping(**kwargs)["UUID"]
    # moto draws its own UUID; the stack outputs carry the one the capture assigned. The endpoint runs
    # in this process and nothing else uses it yet (its address is published after the apply).
    address = ctx.address
    lambda_fidelity.rekey_event_source_mapping(
        address.account_id, address.region, created, resource.get("uuid")
    )


def _emulate_mapping(resource: CapturedResource, stack: CapturedStack, emulation: Emulation) -> None:
    source = str(resource.inputs.get("eventSourceArn", ""))
    queue = next((queue for queue in stack.of_type(QUEUE.token) if queue.get("arn") == source), None)
    if queue is None:
        raise ApplyError(
            f"{resource.name}: only SQS event sources from this stack are emulated, got {source!r}"
        )
    reference = str(resource.inputs.get("functionName", ""))
    function = referenced_function(stack, reference)
    if function is None:
        raise ApplyError(f"{resource.name}: function {reference!r} is not in this stack")
    mapping = MappingSpec.from_resource(resource, queue=queue, function=function)
    try:
        check_mapping(mapping, FunctionSpec.from_resource(function))
    except MappingConfigError as error:
        raise ApplyError(str(error)) from error
    taken = next(
        (other for other in emulation.mappings if other.function_name == mapping.function_name), None
    )
    if taken is not None:
        raise ApplyError(
            f"event source mapping {mapping.name}: function {mapping.function_name} already has a mapping "
            f"({taken.name}); the local runtime runs one mapping per function"
        )
    emulation.mappings.append(mapping)


def _permission_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    statement = registration.name(key="statementId")
    return statement, {"statementId": statement}


LAYER_VERSION = ResourceType(
    "aws:lambda/layerVersion:LayerVersion",
    Handling.EMULATED,
    "the handler's dependencies are installed in the local virtualenv",
    _layer_outputs,
)
FUNCTION = ResourceType(
    "aws:lambda/function:Function",
    Handling.APPLIED_AND_EMULATED,
    "CreateFunction (configuration only, no layers); run by build_handler() in-process, its output "
    "put to its log group",
    _function_outputs,
    _function,
    _emulate_function,
)
PERMISSION = ResourceType(
    "aws:lambda/permission:Permission",
    Handling.NO_LOCAL_EFFECT,
    "who may invoke a function (alarms, schedules): the local runtime invokes in-process and does not "
    "enforce resource policies",
    _permission_outputs,
)
EVENT_SOURCE_MAPPING = ResourceType(
    "aws:lambda/eventSourceMapping:EventSourceMapping",
    Handling.APPLIED_AND_EMULATED,
    "CreateEventSourceMapping (moto never runs it); EventSourceMappingRunner polls, following its "
    "Enabled and MaximumConcurrency",
    _mapping_outputs,
    _mapping,
    _emulate_mapping,
)


# -- DynamoDB --------------------------------------------------------------------------------------------


def _table_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    table = registration.name()
    return table, {"name": table, "arn": registration.arn("dynamodb", f"table/{table}"), "streamArn": ""}


def _key_schema(hash_key: str, range_key: str | None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _table(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    dynamodb = ctx.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": resource.get("name"),
        "KeySchema": _key_schema(inputs["hashKey"], inputs.get("rangeKey")),
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
        projection: dict[str, Any] = {"ProjectionType": index.get("projectionType", "ALL")}
        if index.get("nonKeyAttributes"):
            projection["NonKeyAttributes"] = list(index["nonKeyAttributes"])
        entry: dict[str, Any] = {
            "IndexName": index["name"],
            "KeySchema": _key_schema(index["hashKey"], index.get("rangeKey")),
            "Projection": projection,
        }
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


TABLE = ResourceType(
    "aws:dynamodb/table:Table", Handling.APPLIED, "CreateTable + TTL + PITR", _table_outputs, _table
)


# -- SNS -------------------------------------------------------------------------------------------------


def _topic_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    topic = registration.name()
    arn = registration.arn("sns", topic)
    return arn, {"name": topic, "arn": arn}


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
    response = ctx.client("sns").create_topic(
        Name=resource.get("name"),
        Attributes=attributes,
        Tags=[{"Key": k, "Value": v} for k, v in _tags(resource).items()],
    )
    _applied(resource, response["TopicArn"], "arn")


def _emulate_topic(resource: CapturedResource, stack: CapturedStack, emulation: Emulation) -> None:
    # A topic a bucket notifies routes files to queues; only the others carry alerts.
    arn = resource.get("arn")
    routed = any(
        entry.get("topicArn") == arn
        for notification in stack.of_type(BUCKET_NOTIFICATION.token)
        for entry in notification.inputs.get("topics") or []
    )
    if not routed:
        emulation.alert_topics.append(arn)


def _topic_policy_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    return str(registration.inputs.get("arn") or registration.name()), {}


def _topic_policy(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("sns").set_topic_attributes(
        TopicArn=resource.inputs["arn"], AttributeName="Policy", AttributeValue=resource.inputs["policy"]
    )


def _subscription_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    arn = f"{registration.inputs.get('topic', '')}:{registration.stable_id()}"
    return arn, {"arn": arn}


def _topic_subscription(resource: CapturedResource, ctx: ApplyContext) -> None:
    inputs = resource.inputs
    # In this order: moto reads a filter policy with the scope already set.
    attributes = {
        attribute: _attribute_value(inputs[key])
        for key, attribute in (
            ("rawMessageDelivery", "RawMessageDelivery"),
            ("filterPolicyScope", "FilterPolicyScope"),
            ("filterPolicy", "FilterPolicy"),
            ("redrivePolicy", "RedrivePolicy"),
        )
        if inputs.get(key) not in (None, "")
    }
    ctx.client("sns").subscribe(
        TopicArn=inputs["topic"],
        Protocol=inputs["protocol"],
        Endpoint=inputs["endpoint"],
        Attributes=attributes,
    )


TOPIC = ResourceType(
    "aws:sns/topic:Topic",
    Handling.APPLIED,
    "CreateTopic (the local alert subscriber listens to it, unless a bucket notifies it: a routing topic)",
    _topic_outputs,
    _topic,
    _emulate_topic,
)
TOPIC_POLICY = ResourceType(
    "aws:sns/topicPolicy:TopicPolicy",
    Handling.APPLIED,
    "SetTopicAttributes Policy (stored, not enforced)",
    _topic_policy_outputs,
    _topic_policy,
)
TOPIC_SUBSCRIPTION = ResourceType(
    "aws:sns/topicSubscription:TopicSubscription",
    Handling.APPLIED,
    "Subscribe: moto delivers to SQS with body filter policies and raw delivery (redrive: sns_fidelity); "
    "e-mail stays pending, the local subscriber prints alerts",
    _subscription_outputs,
    _topic_subscription,
)


# -- CloudWatch and EventBridge --------------------------------------------------------------------------


def _log_group_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    group = registration.name()
    return group, {"name": group, "arn": registration.arn("logs", f"log-group:{group}")}


def _log_group(resource: CapturedResource, ctx: ApplyContext) -> None:
    logs = ctx.client("logs")
    name = resource.get("name")
    logs.create_log_group(logGroupName=name, tags=_tags(resource))
    if resource.inputs.get("retentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(resource.inputs["retentionInDays"]))


def _alarm_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    alarm = registration.name()
    return alarm, {"name": alarm, "arn": registration.arn("cloudwatch", f"alarm:{alarm}")}


def _metric_alarm(resource: CapturedResource, ctx: ApplyContext) -> None:
    alarm = LocalAlarm.from_resource(resource)
    kwargs: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "ActionsEnabled": alarm.actions_enabled,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Statistic": alarm.statistic,
        "Dimensions": [{"Name": k, "Value": v} for k, v in alarm.dimensions.items()],
        "Period": alarm.period_seconds,
        "EvaluationPeriods": alarm.evaluation_periods,
        "Threshold": alarm.threshold,
        "ComparisonOperator": alarm.comparison_operator,
        "TreatMissingData": alarm.treat_missing_data,
    }
    if alarm.datapoints_to_alarm:
        kwargs["DatapointsToAlarm"] = alarm.datapoints_to_alarm
    ctx.client("cloudwatch").put_metric_alarm(**kwargs)


def _emulate_alarm(resource: CapturedResource, stack: CapturedStack, emulation: Emulation) -> None:
    emulation.alarms.append(LocalAlarm.from_resource(resource))


def _dashboard_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    dashboard = registration.name(key="dashboardName")
    arn = f"arn:aws:cloudwatch::{registration.address.account_id}:dashboard/{dashboard}"
    return dashboard, {"dashboardName": dashboard, "dashboardArn": arn}


def _dashboard(resource: CapturedResource, ctx: ApplyContext) -> None:
    ctx.client("cloudwatch").put_dashboard(
        DashboardName=resource.get("dashboardName"), DashboardBody=resource.inputs["dashboardBody"]
    )


def _event_bus(inputs: Mapping[str, Any]) -> str:
    return str(inputs.get("eventBusName") or "default")


def _event_rule_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    rule, bus = registration.name(), _event_bus(registration.inputs)
    prefix = "" if bus == "default" else f"{bus}/"
    return rule, {"name": rule, "arn": registration.arn("events", f"rule/{prefix}{rule}")}


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


def _event_target_outputs(registration: Registration) -> tuple[str, dict[str, Any]]:
    target_id = registration.name(key="targetId")
    rule = registration.inputs.get("rule", "")
    return f"{_event_bus(registration.inputs)}-{rule}-{target_id}", {"targetId": target_id}


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


def _emulate_rule(resource: CapturedResource, stack: CapturedStack, emulation: Emulation) -> None:
    expression = resource.inputs.get("scheduleExpression")
    if expression:
        emulation.schedules.append(
            LocalSchedule(resource.get("name"), resource.get("arn"), rate_seconds(str(expression)))
        )


def _emulate_target(resource: CapturedResource, stack: CapturedStack, emulation: Emulation) -> None:
    schedule = next((s for s in emulation.schedules if s.rule == resource.inputs.get("rule")), None)
    if schedule is None:
        return  # an event pattern's target: moto routes those events itself
    arn = str(resource.inputs.get("arn", ""))
    if referenced_function(stack, arn) is None:
        raise ApplyError(f"{resource.name}: only this stack's functions are emulated as schedule targets")
    schedule.target_arns.append(arn)


LOG_GROUP = ResourceType(
    "aws:cloudwatch/logGroup:LogGroup", Handling.APPLIED, "CreateLogGroup", _log_group_outputs, _log_group
)
METRIC_ALARM = ResourceType(
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    Handling.APPLIED_AND_EMULATED,
    "PutMetricAlarm; evaluated by AlarmEvaluator (moto never evaluates alarms), which publishes to SNS "
    "actions and invokes Lambda actions in-process",
    _alarm_outputs,
    _metric_alarm,
    _emulate_alarm,
)
DASHBOARD = ResourceType(
    "aws:cloudwatch/dashboard:Dashboard", Handling.APPLIED, "PutDashboard", _dashboard_outputs, _dashboard
)
EVENT_RULE = ResourceType(
    "aws:cloudwatch/eventRule:EventRule",
    Handling.APPLIED_AND_EMULATED,
    "PutRule: moto routes S3 EventBridge events to the rule's targets; schedules are fired by "
    "ScheduleRunner (moto never fires them)",
    _event_rule_outputs,
    _event_rule,
    _emulate_rule,
)
EVENT_TARGET = ResourceType(
    "aws:cloudwatch/eventTarget:EventTarget",
    Handling.APPLIED_AND_EMULATED,
    "PutTargets; a schedule's Lambda targets are invoked in-process",
    _event_target_outputs,
    _event_target,
    _emulate_target,
)


RESOURCE_TYPES: Final[dict[str, ResourceType]] = {
    entry.token: entry
    for entry in (
        PIPELINE,
        PIPELINE_GROUP,
        PIPELINE_BUCKET,
        BUCKET,
        BUCKET_VERSIONING,
        BUCKET_ENCRYPTION,
        BUCKET_LIFECYCLE,
        BUCKET_PUBLIC_ACCESS_BLOCK,
        BUCKET_POLICY,
        BUCKET_NOTIFICATION,
        QUEUE,
        QUEUE_POLICY,
        KMS_KEY,
        KMS_ALIAS,
        ROLE,
        ROLE_POLICY,
        LOG_GROUP,
        LAYER_VERSION,
        FUNCTION,
        PERMISSION,
        EVENT_SOURCE_MAPPING,
        TABLE,
        TOPIC,
        TOPIC_POLICY,
        TOPIC_SUBSCRIPTION,
        METRIC_ALARM,
        DASHBOARD,
        EVENT_RULE,
        EVENT_TARGET,
    )
}


# -- using the table -------------------------------------------------------------------------------------


def mock_outputs(
    type_token: str, logical_name: str, inputs: Mapping[str, Any], address: EndpointAddress
) -> tuple[str, dict[str, Any]]:
    """``(id, outputs)`` a registration gets under the mocks: its identifiers at ``address`` (the
    outputs include the inputs). A type the table does not know is identified by its name; applying
    the stack refuses it."""
    entry = RESOURCE_TYPES.get(type_token)
    outputs = entry.outputs if entry is not None else _named
    resource_id, extra = outputs(Registration(logical_name, inputs, address))
    return resource_id, {**inputs, **extra}


def check_types(stack: CapturedStack) -> None:
    """Fail before anything is created if the stack has a type the table does not decide."""
    unknown = sorted({resource.type for resource in stack.resources if resource.type not in RESOURCE_TYPES})
    if unknown:
        raise ApplyError(
            "the stack has resource types the local runtime neither applies nor emulates: "
            + ", ".join(unknown)
            + " (add them to filepipe.local.apply.RESOURCE_TYPES)"
        )


@contextmanager
def _naming(resource: CapturedResource) -> Iterator[None]:
    """Any failure of an entry's step for ``resource`` as an :class:`ApplyError` that names it."""
    try:
        yield
    except ApplyError:
        raise
    except Exception as error:
        raise ApplyError(f"{resource.type} {resource.name}: {error}") from error


def emulate(stack: CapturedStack) -> Emulation:
    """What the local runtime runs in-process for ``stack`` (nothing is created)."""
    check_types(stack)
    emulation = Emulation()
    for resource in stack.resources:
        contribute = RESOURCE_TYPES[resource.type].emulate
        if contribute is not None:
            with _naming(resource):
                contribute(resource, stack, emulation)
    return emulation


def existing_buckets(stack: CapturedStack) -> list[str]:
    """Buckets the stack configures but does not create (``bucket: <existing name>`` in the stack config)."""
    created = {bucket.get("bucket") for bucket in stack.of_type(BUCKET.token)}
    used = [
        str(resource.inputs["bucket"])
        for resource in stack.resources
        if _configures_a_bucket(resource) and resource.inputs.get("bucket")
    ]
    return [name for name in dict.fromkeys(used) if name not in created]


def _configures_a_bucket(resource: CapturedResource) -> bool:
    """A bucket's configuration resources are the entries identified by their bucket."""
    entry = RESOURCE_TYPES.get(resource.type)
    return entry is not None and entry.outputs is _of_bucket


def apply_stack(stack: CapturedStack, address: EndpointAddress) -> list[str]:
    """Create every applied resource on the endpoint, in registration order; return the stand-ins.

    Buckets the stack only refers to exist in the cloud before the stack does; locally they are
    created first as stand-ins (versioned, like the buckets the component creates), so the pipelines
    have them. Returns the stand-ins' names.
    """
    check_types(stack)
    ctx = ApplyContext(address)
    stand_ins = existing_buckets(stack)
    for name in stand_ins:
        create_bucket(ctx, name, {})
        put_bucket_versioning(ctx, name, "Enabled")
    for resource in stack.resources:
        apply = RESOURCE_TYPES[resource.type].apply
        if apply is not None:
            with _naming(resource):
                apply(resource, ctx)
    return stand_ins
