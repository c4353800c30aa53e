"""filepipe.local: the stack's pipelines on this machine, from the same component and handler.

from pathlib import Path
from filepipe.local import LocalRuntime, LocalTuning

with LocalRuntime(Path("."), "dev", tuning=LocalTuning.fast()) as runtime:
    runtime.address.client("s3").put_object(...)

Modules: ``endpoint`` (moto server), ``s3_fidelity`` (S3 behaviour moto lacks: event fields, limits,
conditional completion), ``capture`` (stack program under Pulumi mocks), ``apply`` (the per-type table:
applied / emulated), ``esm`` (SQS event source mapping runner), ``alarms`` + ``metrics`` + ``emf`` (alarm
evaluation), ``alerts`` (SNS subscriber), ``runtime`` (all of it), ``demo``.
"""

from .alarms import AlarmEvaluator, AlarmSpec
from .alerts import Alert, AlertSubscriber
from .apply import RESOURCE_TYPES, ApplyError, Handling, apply_stack
from .capture import CapturedResource, CapturedStack, CaptureError, capture_stack
from .endpoint import EndpointAddress, EndpointError, LocalEndpoint
from .esm import EventSourceMappingRunner, FunctionSpec, MappingSpec
from .runtime import LocalRuntime, LocalTuning

__all__ = [
    "RESOURCE_TYPES",
    "AlarmEvaluator",
    "AlarmSpec",
    "Alert",
    "AlertSubscriber",
    "ApplyError",
    "CaptureError",
    "CapturedResource",
    "CapturedStack",
    "EndpointAddress",
    "EndpointError",
    "EventSourceMappingRunner",
    "FunctionSpec",
    "Handling",
    "LocalEndpoint",
    "LocalRuntime",
    "LocalTuning",
    "MappingSpec",
    "apply_stack",
    "capture_stack",
]
