"""filepipe.local: the stack's pipelines on this machine, from the same component and handler.

from pathlib import Path
from filepipe.local import LocalRuntime, LocalTuning

with LocalRuntime(Path("."), "dev", tuning=LocalTuning.fast()) as running:
    running.address.client("s3").put_object(...)

Modules: ``endpoint`` (moto server), ``s3_fidelity`` (S3 behaviour moto lacks: event fields, limits,
conditional completion), ``sns_fidelity`` (SNS behaviour moto lacks: subscription redrive,
filter-policy complexity), ``dynamodb_fidelity`` (an atomic UpdateItem, DynamoDB's item size),
``lambda_fidelity`` (Lambda behaviour moto lacks: mappings it never runs,
states that follow the local runner, logging config), ``capture`` (the Pulumi mocks, and the stack
program run under them), ``apply`` (the per-type table: mock outputs, applied, emulated), ``esm`` (SQS
event source mapping runner), ``lambda_logs`` (function output to CloudWatch Logs), ``alarms`` +
``metrics`` + ``emf`` (alarm evaluation), ``alerts`` (SNS subscriber), ``runtime``
(all of it), ``demo``.
"""

from .alarms import AlarmEvaluator, LocalAlarm
from .alerts import Alert, AlertSubscriber
from .apply import RESOURCE_TYPES, ApplyError, Emulation, Handling, ResourceType, apply_stack, emulate
from .capture import CapturedResource, CapturedStack, CaptureError, StackMocks, capture_stack
from .endpoint import EndpointAddress, EndpointError, LocalEndpoint
from .esm import EventSourceMappingRunner, FunctionSpec, MappingSpec
from .runtime import LocalRuntime, LocalTuning, RunningStack

__all__ = [
    "RESOURCE_TYPES",
    "AlarmEvaluator",
    "Alert",
    "AlertSubscriber",
    "ApplyError",
    "CaptureError",
    "CapturedResource",
    "CapturedStack",
    "Emulation",
    "EndpointAddress",
    "EndpointError",
    "EventSourceMappingRunner",
    "FunctionSpec",
    "Handling",
    "LocalAlarm",
    "LocalEndpoint",
    "LocalRuntime",
    "LocalTuning",
    "MappingSpec",
    "ResourceType",
    "RunningStack",
    "StackMocks",
    "apply_stack",
    "capture_stack",
    "emulate",
]
