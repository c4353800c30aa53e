"""Capture the stack's resource graph by running the real stack program under Pulumi mocks.

The mocks answer every registration with the identifiers the resource will have on the local endpoint
(deterministic names derived from the logical name when the program sets none, ARNs in the endpoint's
account, queue URLs exactly as moto serves them), so inputs that reference other resources (a redrive
policy's DLQ ARN, the function's ``FILEPIPE_DLQ_URL``) already carry the local identifiers.
Registrations are recorded in order: a resource registers only after the resources its inputs and
``depends_on`` refer to, so that order is a valid creation order.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import runpy
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from filepipe.local.endpoint import EndpointAddress

LOCAL_CONFIG_OVERRIDES: Final = {"filepipe:bundleDependencies": "false"}
"""The handler runs in-process from the installed package: no dependency layer to build."""

_NAMESPACE: Final = uuid.UUID("5f1c8d0e-6d1b-4a53-9a57-6f0d2b3c4e11")
_capture_lock = threading.Lock()


class CaptureError(RuntimeError):
    """The stack program could not be run under mocks, or it asked for something unknown."""


@dataclass(frozen=True, slots=True)
class CapturedResource:
    """One registration: the type token, the logical name, the resolved inputs and the mock outputs."""

    type: str
    name: str
    resource_id: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    custom: bool

    def get(self, key: str, default: Any = None) -> Any:
        """An output (which includes the inputs) by its camelCase name."""
        return self.outputs.get(key, self.inputs.get(key, default))


@dataclass(frozen=True, slots=True)
class CapturedStack:
    project: str
    stack: str
    resources: list[CapturedResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs, resolved: the shape of ``pulumi stack output --json``."""

    def of_type(self, type_token: str) -> list[CapturedResource]:
        return [resource for resource in self.resources if resource.type == type_token]


# -- physical names ----------------------------------------------------------------------------------


def _clean(name: str, pattern: str, max_length: int, *, lower: bool = False) -> str:
    value = name.lower() if lower else name
    value = re.sub(pattern, "-", value).strip("-.")
    return value[:max_length].rstrip("-.") or "resource"


def physical_name(type_token: str, logical_name: str) -> str:
    """The name a resource without an explicit name gets locally: its logical name, made valid."""
    if type_token == "aws:s3/bucket:Bucket":
        return _clean(logical_name, r"[^a-z0-9.-]+", 63, lower=True)
    if type_token in {"aws:iam/role:Role", "aws:lambda/function:Function"}:
        return _clean(logical_name, r"[^A-Za-z0-9_-]+", 64)
    if type_token == "aws:sqs/queue:Queue":
        return _clean(logical_name, r"[^A-Za-z0-9_-]+", 80)
    return _clean(logical_name, r"[^A-Za-z0-9_.-]+", 255)


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def mock_outputs(
    type_token: str, logical_name: str, inputs: Mapping[str, Any], address: EndpointAddress
) -> tuple[str, dict[str, Any]]:
    """``(id, outputs)`` the resource will have on the local endpoint (outputs include the inputs)."""
    region, account = address.region, address.account_id
    named = inputs.get("name") or physical_name(type_token, logical_name)
    out: dict[str, Any] = {}
    if type_token == "aws:s3/bucket:Bucket":
        bucket = inputs.get("bucket") or physical_name(type_token, logical_name)
        out = {
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com",
            "region": region,
        }
        return bucket, {**inputs, **out}
    if type_token == "aws:sqs/queue:Queue":
        queue = named + (".fifo" if inputs.get("fifoQueue") and not named.endswith(".fifo") else "")
        url = f"{address.url}/{account}/{queue}"
        out = {"name": queue, "url": url, "arn": f"arn:aws:sqs:{region}:{account}:{queue}"}
        return url, {**inputs, **out}
    if type_token == "aws:dynamodb/table:Table":
        out = {"name": named, "arn": f"arn:aws:dynamodb:{region}:{account}:table/{named}", "streamArn": ""}
        return named, {**inputs, **out}
    if type_token == "aws:sns/topic:Topic":
        arn = f"arn:aws:sns:{region}:{account}:{named}"
        return arn, {**inputs, "name": named, "arn": arn}
    if type_token == "aws:sns/topicSubscription:TopicSubscription":
        arn = f"{inputs.get('topic', '')}:{_stable_id(logical_name)}"
        return arn, {**inputs, "arn": arn}
    if type_token == "aws:iam/role:Role":
        out = {
            "name": named,
            "arn": f"arn:aws:iam::{account}:role/{named}",
            "uniqueId": "AROA" + _stable_id(logical_name).replace("-", "")[:17].upper(),
        }
        return named, {**inputs, **out}
    if type_token == "aws:iam/rolePolicy:RolePolicy":
        return f"{inputs.get('role', '')}:{named}", {**inputs, "name": named}
    if type_token == "aws:cloudwatch/logGroup:LogGroup":
        arn = f"arn:aws:logs:{region}:{account}:log-group:{named}"
        return named, {**inputs, "name": named, "arn": arn}
    if type_token == "aws:lambda/function:Function":
        arn = f"arn:aws:lambda:{region}:{account}:function:{named}"
        out = {
            "name": named,
            "arn": arn,
            "qualifiedArn": f"{arn}:$LATEST",
            "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations",
            "version": "$LATEST",
        }
        return named, {**inputs, **out}
    if type_token == "aws:lambda/layerVersion:LayerVersion":
        layer = inputs.get("layerName") or named
        layer_arn = f"arn:aws:lambda:{region}:{account}:layer:{layer}"
        return f"{layer_arn}:1", {**inputs, "layerArn": layer_arn, "arn": f"{layer_arn}:1", "version": "1"}
    if type_token == "aws:lambda/eventSourceMapping:EventSourceMapping":
        mapping_id = _stable_id(logical_name)
        function = str(inputs.get("functionName", ""))
        out = {
            "uuid": mapping_id,
            "functionArn": function
            if function.startswith("arn:")
            else f"arn:aws:lambda:{region}:{account}:function:{function}",
            "state": "Enabled" if inputs.get("enabled", True) else "Disabled",
        }
        return mapping_id, {**inputs, **out}
    if type_token == "aws:cloudwatch/metricAlarm:MetricAlarm":
        arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{named}"
        return named, {**inputs, "name": named, "arn": arn}
    if type_token == "aws:cloudwatch/dashboard:Dashboard":
        dashboard = inputs.get("dashboardName") or named
        arn = f"arn:aws:cloudwatch::{account}:dashboard/{dashboard}"
        return dashboard, {**inputs, "dashboardName": dashboard, "dashboardArn": arn}
    if type_token == "aws:cloudwatch/eventRule:EventRule":
        bus = inputs.get("eventBusName") or "default"
        prefix = "" if bus == "default" else f"{bus}/"
        arn = f"arn:aws:events:{region}:{account}:rule/{prefix}{named}"
        return named, {**inputs, "name": named, "arn": arn}
    if type_token == "aws:cloudwatch/eventTarget:EventTarget":
        target_id = inputs.get("targetId") or physical_name(type_token, logical_name)
        bus = inputs.get("eventBusName") or "default"
        return f"{bus}-{inputs.get('rule', '')}-{target_id}", {**inputs, "targetId": target_id}
    if type_token == "aws:kms/key:Key":
        key_id = _stable_id(logical_name)
        arn = f"arn:aws:kms:{region}:{account}:key/{key_id}"
        return key_id, {**inputs, "keyId": key_id, "arn": arn}
    if type_token == "aws:kms/alias:Alias":
        alias = inputs.get("name") or f"alias/{named}"
        out = {"name": alias, "arn": f"arn:aws:kms:{region}:{account}:{alias}"}
        return alias, {**inputs, **out}
    if type_token == "aws:sqs/queuePolicy:QueuePolicy":
        return str(inputs.get("queueUrl", named)), dict(inputs)
    if type_token.startswith("aws:s3/"):
        return str(inputs.get("bucket", named)), dict(inputs)
    return named, dict(inputs)


# -- the mocks ------------------------------------------------------------------------------------------


def _mocks_class() -> type[Any]:
    import pulumi

    class LocalMocks(pulumi.runtime.Mocks):
        """Records every registration and answers it with local identifiers."""

        def __init__(self, address: EndpointAddress) -> None:
            self.address = address
            self.resources: list[CapturedResource] = []
            self._lock = threading.Lock()

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
            resource_id, outputs = mock_outputs(args.typ, args.name, args.inputs, self.address)
            with self._lock:
                self.resources.append(
                    CapturedResource(
                        type=args.typ,
                        name=args.name,
                        resource_id=resource_id,
                        inputs=dict(args.inputs),
                        outputs=outputs,
                        custom=bool(args.custom),
                    )
                )
            return resource_id, outputs

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
            region, account = self.address.region, self.address.account_id
            results: dict[str, dict[str, Any]] = {
                "aws:index/getRegion:getRegion": {
                    "region": region,
                    "name": region,
                    "id": region,
                    "description": region,
                    "endpoint": self.address.url,
                },
                "aws:index/getCallerIdentity:getCallerIdentity": {
                    "accountId": account,
                    "arn": f"arn:aws:iam::{account}:user/filepipe-local",
                    "userId": "filepipe-local",
                    "id": account,
                },
                "aws:index/getPartition:getPartition": {
                    "partition": "aws",
                    "dnsSuffix": "amazonaws.com",
                    "reverseDnsPrefix": "com.amazonaws",
                    "id": "aws",
                },
            }
            parameter = str(args.args.get("name", ""))
            if parameter.startswith("/aws/service/powertools/"):
                # The Powertools layer the stack looks up; locally the handler runs in-process with the
                # virtualenv's Powertools, so any well-formed layer ARN will do.
                layer = re.sub(r"[^A-Za-z0-9_-]+", "-", parameter.strip("/"))
                arn = f"arn:aws:lambda:{region}:{account}:layer:{layer}:1"
                results["aws:ssm/getParameter:getParameter"] = {
                    "name": parameter,
                    "value": arn,
                    "insecureValue": arn,
                    "type": "String",
                    "version": 1,
                    "arn": f"arn:aws:ssm:{region}:{account}:parameter{parameter}",
                    "id": parameter,
                }
            if args.token not in results:
                raise CaptureError(
                    f"the stack program calls {args.token}, which the local mocks do not answer"
                )
            return results[args.token], []

    return LocalMocks


# -- stack configuration -------------------------------------------------------------------------------


def _config_value(value: Any) -> str:
    """Pulumi hands config to programs as strings; objects and lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def load_stack_config(
    project_dir: Path, stack: str, *, local_overrides: bool = True
) -> tuple[str, Path, dict[str, str]]:
    """``(project name, program path, config)`` from ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml``, encoded
    as the Pulumi engine hands config to a program; ``local_overrides`` adds the local-run settings."""
    project_file = project_dir / "Pulumi.yaml"
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not project_file.is_file():
        raise CaptureError(f"{project_file} not found: run from the project root or pass --project-dir")
    if not stack_file.is_file():
        available = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise CaptureError(f"no stack {stack!r}: {stack_file.name} not found (stacks here: {available})")
    project = yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}
    name = str(project.get("name", "project"))
    main = project_dir / str(project.get("main", "."))
    program = main / "__main__.py" if main.is_dir() else main

    def qualified(key: str) -> str:
        return key if ":" in key else f"{name}:{key}"

    config: dict[str, str] = {}
    for key, spec in (project.get("config") or {}).items():
        default = spec.get("default", spec.get("value")) if isinstance(spec, dict) else spec
        if default is not None:
            config[qualified(key)] = _config_value(default)
    stack_values = (yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}).get("config") or {}
    for key, value in stack_values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise CaptureError(f"{stack_file.name}: {key} is a secret; local runs cannot decrypt it")
        config[qualified(key)] = _config_value(value)
    if local_overrides:
        config.update(LOCAL_CONFIG_OVERRIDES)
    return name, program, config


# -- running the program ---------------------------------------------------------------------------------


def capture_stack(project_dir: Path, stack: str, address: EndpointAddress) -> CapturedStack:
    """Run the stack program under mocks and return its resources (in registration order) and outputs."""
    project, program, config = load_stack_config(project_dir, stack)
    if not program.is_file():
        raise CaptureError(f"stack program {program} not found")
    result: dict[str, Any] = {}

    def run() -> None:
        # A fresh thread: Pulumi's runtime state lives in context variables, which this keeps apart
        # from any other Pulumi program in the process (component tests, a second capture).
        try:
            result["stack"] = _run_under_mocks(project, stack, program, config, address)
        except BaseException as error:
            result["error"] = error

    with _capture_lock:
        # Pulumi runs a program from its project directory; relative paths in the stack config
        # (schema files, processor code) depend on it. The working directory is process-wide, so it
        # is changed only for the duration of the capture.
        previous = Path.cwd()
        os.chdir(project_dir)
        try:
            thread = threading.Thread(target=run, name="pulumi-capture")
            thread.start()
            thread.join()
        finally:
            os.chdir(previous)
    if "error" in result:
        error = result["error"]
        if isinstance(error, CaptureError):
            raise error
        raise CaptureError(f"the stack program failed under mocks: {error}") from error
    captured: CapturedStack = result["stack"]
    return captured


def _run_under_mocks(
    project: str, stack: str, program: Path, config: dict[str, str], address: EndpointAddress
) -> CapturedStack:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _run_program(project, stack, program, config, address)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _run_program(
    project: str, stack: str, program: Path, config: dict[str, str], address: EndpointAddress
) -> CapturedStack:
    import pulumi
    from pulumi.runtime.settings import get_root_resource
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    mocks = _mocks_class()(address)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(config)

    def program_body() -> None:
        runpy.run_path(str(program), run_name="__main__")

    _sync_await(run_pulumi_func(program_body))
    root = get_root_resource()
    exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
    resolved: dict[str, Any] | None = _sync_await(pulumi.Output.from_input(exported).future())
    outputs = resolved or {}
    return CapturedStack(project=project, stack=stack, resources=list(mocks.resources), outputs=outputs)
