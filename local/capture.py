"""Run a Pulumi program under mocks and record every resource it registers.

:class:`StackMocks` is the project's one Pulumi mocks mechanism, on Pulumi's public test API
(``pulumi.runtime.Mocks``, ``set_mocks``, ``pulumi.runtime.test``): ``filepipe local`` and
``filepipe graph`` capture the stack program with it (:func:`capture_stack`), and the component tests
install it per test. It answers every registration with the identifiers the resource would have at
``address`` (the outputs of its type's entry in :data:`filepipe.local.apply.RESOURCE_TYPES`: names
derived from the logical name when the program sets none, ARNs in the address's account, queue URLs as
the endpoint serves them), so inputs that reference other resources (a redrive policy's DLQ ARN, the
function's ``FILEPIPE_DLQ_URL``) already carry those identifiers; and it answers the invokes the
component makes (region, caller identity, partition, the Powertools layer's SSM parameter).

Its monitor records each registration as the engine would see it: type, name, inputs, outputs, URN,
parent, dependencies. They are recorded in order: a resource registers only after the resources its
inputs and ``depends_on`` refer to, so that order is a valid creation order.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import runpy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from filepipe.local.apply import mock_outputs
from filepipe.local.endpoint import DEFAULT_REGION, EndpointAddress

LOCAL_CONFIG_OVERRIDES: Final = {"filepipe:bundleDependencies": "false"}
"""The handler runs in-process from the installed package: no dependency layer to build."""

STACK_TYPE: Final = "pulumi:pulumi:Stack"
POWERTOOLS_PUBLISHER_ACCOUNT: Final = "017000801446"
"""The account that publishes the Powertools layers in the commercial regions."""
_POWERTOOLS_PARAMETER: Final = re.compile(
    r"/aws/service/powertools/python/(arm64|x86_64)/python3\.(\d+)/([\w.]+)"
)

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
    urn: str = ""
    parent: str | None = None
    """The parent's URN (the stack's for top-level resources)."""
    dependencies: tuple[str, ...] = ()
    """URNs of the resources it depends on (``depends_on`` and those its inputs were computed from)."""
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per input: the URNs of the resources that input was computed from."""

    def get(self, key: str, default: Any = None) -> Any:
        """An output (which includes the inputs) by its camelCase name."""
        return self.outputs.get(key, self.inputs.get(key, default))

    def number(self, key: str, default: float) -> float:
        """A numeric input (the engine passes every number as a float); ``default`` when unset."""
        value = self.inputs.get(key)
        return default if value is None else float(value)


@dataclass(frozen=True, slots=True)
class CapturedStack:
    project: str
    stack: str
    resources: list[CapturedResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    """Stack outputs, resolved: the shape of ``pulumi stack output --json``."""
    urn: str = ""
    """The stack's own URN (the root every top-level resource is parented to)."""

    def of_type(self, type_token: str) -> list[CapturedResource]:
        return [resource for resource in self.resources if resource.type == type_token]


def aws_address(region: str) -> EndpointAddress:
    """Identifiers in their AWS shape in ``region`` (``https://sqs.<region>.amazonaws.com/...`` queue
    URLs), for captures of what a deployment would declare; nothing listens there."""
    return EndpointAddress(url=f"https://sqs.{region}.amazonaws.com", region=region)


# -- the mocks ------------------------------------------------------------------------------------------


class StackMocks(pulumi.runtime.Mocks):
    """Answers registrations and invokes with identifiers at ``address``; records what registers."""

    def __init__(self, address: EndpointAddress, *, partition: str = "aws") -> None:
        self.address = address
        self.partition = partition
        """What ``aws.get_partition()`` answers."""
        self.registrations: list[CapturedResource] = []
        """Every registration but the stack's, in registration order."""
        self.registered_outputs: dict[str, dict[str, Any]] = {}
        """The outputs each component registered (``register_outputs``), by URN."""
        self.stack_urn = ""
        self._lock = threading.Lock()

    def install(self, project: str, stack: str) -> None:
        """Make these mocks (and their recording monitor) the Pulumi runtime's, as ``project``/``stack``."""
        _ensure_event_loop()
        pulumi.runtime.set_mocks(self, project=project, stack=stack, preview=False, monitor=self.monitor())

    def monitor(self) -> MockMonitor:
        """A resource monitor that answers with these mocks and records into them (also for serving over
        gRPC to a process that registers resources, such as the provider plugin)."""
        return _RecordingMonitor(self)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return mock_outputs(args.typ, args.name, args.inputs, self.address)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        region, account = self.address.region, self.address.account_id
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": region, "name": region, "id": region}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = f"arn:aws:iam::{account}:user/filepipe-local"
            return {"accountId": account, "arn": arn, "userId": "filepipe-local", "id": account}, []
        if args.token == "aws:index/getPartition:getPartition":
            partition = {"partition": self.partition, "dnsSuffix": "amazonaws.com", "id": self.partition}
            return {**partition, "reverseDnsPrefix": "com.amazonaws"}, []
        if args.token == "aws:ssm/getParameter:getParameter":
            return self._powertools_parameter(str(args.args.get("name", ""))), []
        raise CaptureError(f"the stack program calls {args.token}, which the mocks do not answer")

    def _powertools_parameter(self, name: str) -> dict[str, Any]:
        """What the public Powertools SSM parameter holds: a layer of the account that publishes them
        (locally the handler runs in-process with the virtualenv's Powertools, so only its shape matters)."""
        match = _POWERTOOLS_PARAMETER.fullmatch(name)
        if match is None:
            raise CaptureError(f"ParameterNotFound: {name} (the mocks answer only Powertools' parameters)")
        architecture, minor, _ = match.groups()
        layer = f"AWSLambdaPowertoolsPythonV3-python3{minor}-{architecture}"
        value = f"arn:aws:lambda:{self.address.region}:{POWERTOOLS_PUBLISHER_ACCOUNT}:layer:{layer}:27"
        return {"name": name, "value": value, "insecureValue": value, "type": "String", "id": name}

    def record(self, resource: CapturedResource) -> None:
        with self._lock:
            self.registrations.append(resource)

    def captured(self, project: str, stack: str, outputs: dict[str, Any]) -> CapturedStack:
        with self._lock:
            resources = list(self.registrations)
        return CapturedStack(project, stack, resources, outputs, urn=self.stack_urn)


class _RecordingMonitor(MockMonitor):
    """The engine's view of each registration (URN, parent, dependencies), recorded into the mocks.

    The engine calls the monitor from several threads at once; the mocks' lock keeps the record whole.
    """

    def __init__(self, mocks: StackMocks) -> None:
        super().__init__(mocks)
        self._recording = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]  # untyped in pulumi
        if request.type == STACK_TYPE:
            self._recording.stack_urn = response.urn
            return response
        registered = self.resources[response.urn]  # what Mocks.new_resource answered
        self._recording.record(
            CapturedResource(
                type=request.type,
                name=request.name,
                resource_id=registered.id,
                inputs=rpc.deserialize_properties(request.object),
                outputs=registered.state,
                custom=bool(request.custom),
                urn=response.urn,
                parent=request.parent or None,
                dependencies=tuple(request.dependencies),
                property_dependencies={
                    key: tuple(value.urns) for key, value in request.propertyDependencies.items()
                },
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - the gRPC method name
        self._recording.registered_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]  # untyped in pulumi


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


def stack_region(project_dir: Path, stack: str) -> str:
    """The stack's ``aws:region``, where a local run of it lives (its ARNs, the endpoint's region and
    ``filepipe local env``'s ``AWS_REGION``); :data:`DEFAULT_REGION` when the stack sets none. A stack
    that cannot be read gets the default too: the capture that follows says what is wrong with it."""
    try:
        _, _, config = load_stack_config(project_dir, stack, local_overrides=False)
    except (CaptureError, yaml.YAMLError):
        return DEFAULT_REGION
    return config.get("aws:region") or DEFAULT_REGION


def _ensure_event_loop() -> None:
    """Give this thread a current event loop if it has none (Pulumi's runtime creates futures on it):
    after ``asyncio.run`` in the same thread, for one, there is none, and asking for it raises."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


# -- running the program ---------------------------------------------------------------------------------


def capture_stack(project_dir: Path, stack: str, address: EndpointAddress) -> CapturedStack:
    """Run the stack program under mocks and return its resources (in registration order) and outputs."""
    project, program, config = load_stack_config(project_dir, stack)
    if not program.is_file():
        raise CaptureError(f"stack program {program} not found")
    result: dict[str, Any] = {}

    def run() -> None:
        # A fresh thread with its own event loop: Pulumi's runtime state lives in context variables,
        # which this keeps apart from any other Pulumi program in the process (component tests, a
        # second capture).
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            result["stack"] = _run_program(project, stack, program, config, address)
        except BaseException as error:
            result["error"] = error
        finally:
            asyncio.set_event_loop(None)
            loop.close()

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


def _run_program(
    project: str, stack: str, program: Path, config: dict[str, str], address: EndpointAddress
) -> CapturedStack:
    mocks = StackMocks(address)
    mocks.install(project, stack)
    pulumi.runtime.set_all_config(config)
    exported: dict[str, Any] = {}

    def body() -> pulumi.Output[None]:
        runpy.run_path(str(program), run_name="__main__")
        outputs: Mapping[str, Any] = getattr(pulumi.runtime.get_root_resource(), "outputs", None) or {}
        return pulumi.Output.from_input(dict(outputs)).apply(exported.update)

    pulumi.runtime.test(body)()  # type: ignore[no-untyped-call]  # untyped in pulumi
    return mocks.captured(project, stack, exported)
