"""Pulumi mocks for the component tests: fresh per test, recording every resource registered."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest

from filepipe import dependencies
from tests.conftest import ACCOUNT_ID, REGION

PARTITION = "aws"
POWERTOOLS_ACCOUNT = "017000801446"
"""The account that publishes the Powertools layers in commercial regions (what the SSM parameters hold)."""


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str


def _name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """Records what the plain mocks do not show: parents, explicit dependencies, component outputs."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # every resource reaches Mocks.new_resource here
        if request.type != "pulumi:pulumi:Stack":
            self.recording.relations[(request.type, request.name)] = (
                _name_of(request.parent),
                tuple(_name_of(urn) for urn in request.dependencies),
            )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        from pulumi.runtime import rpc

        outputs = rpc.deserialize_properties(request.outputs)
        self.recording.component_outputs[_name_of(request.urn)] = outputs
        return super().RegisterResourceOutputs(request)


def _outputs_for(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Realistic outputs per resource type: names, ARNs and URLs the component wires together."""
    arn = f"arn:aws:{{service}}:{REGION}:{ACCOUNT_ID}:{{rest}}"
    physical = f"{name}-1a2b3c"
    match typ:
        case "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or physical
            return bucket, {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}
        case "aws:sqs/queue:Queue":
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{physical}"
            return url, {"name": physical, "url": url, "arn": arn.format(service="sqs", rest=physical)}
        case "aws:lambda/function:Function":
            return physical, {
                "name": physical,
                "arn": arn.format(service="lambda", rest=f"function:{physical}"),
            }
        case "aws:lambda/layerVersion:LayerVersion":
            return physical, {"arn": arn.format(service="lambda", rest=f"layer:{inputs['layerName']}:1")}
        case "aws:lambda/eventSourceMapping:EventSourceMapping":
            return "esm-uuid", {"uuid": f"uuid-{name}"}
        case "aws:dynamodb/table:Table":
            return physical, {
                "name": physical,
                "arn": arn.format(service="dynamodb", rest=f"table/{physical}"),
            }
        case "aws:cloudwatch/logGroup:LogGroup":
            log_group = inputs.get("name") or physical
            return log_group, {"arn": arn.format(service="logs", rest=f"log-group:{log_group}")}
        case "aws:iam/role:Role":
            return physical, {"name": physical, "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}"}
        case "aws:sns/topic:Topic":
            return physical, {"name": physical, "arn": arn.format(service="sns", rest=physical)}
        case "aws:cloudwatch/metricAlarm:MetricAlarm":
            return physical, {
                "name": physical,
                "arn": arn.format(service="cloudwatch", rest=f"alarm:{physical}"),
            }
        case "aws:cloudwatch/eventRule:EventRule":
            return physical, {"name": physical, "arn": arn.format(service="events", rest=f"rule/{physical}")}
        case "aws:kms/key:Key":
            return "key-id", {"keyId": "key-id", "arn": arn.format(service="kms", rest="key/key-id")}
        case _:
            return physical, {}


def _powertools_parameter(name: str) -> dict[str, Any]:
    """What the public Powertools SSM parameter holds (``ParameterNotFound`` for any other name)."""
    match = re.fullmatch(r"/aws/service/powertools/python/(arm64|x86_64)/python3\.(\d+)/([\w.]+)", name)
    if match is None:
        raise ValueError(f"ParameterNotFound: {name}")
    architecture, minor, _ = match.groups()
    layer = f"AWSLambdaPowertoolsPythonV3-python3{minor}-{architecture}"
    value = f"arn:aws:lambda:{REGION}:{POWERTOOLS_ACCOUNT}:layer:{layer}:27"
    return {"name": name, "value": value, "insecureValue": value, "type": "String", "id": name}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registered] = []
        self.component_outputs: dict[str, dict[str, Any]] = {}
        self.relations: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        """(type, name) -> (parent's name, names of the resources it depends on)."""
        self.partition = PARTITION
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        resource_id, outputs = _outputs_for(args.typ, args.name, args.inputs)
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), outputs, resource_id))
        return resource_id, {**args.inputs, **outputs}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append((args.token, dict(args.args)))
        match args.token:
            case "aws:index/getRegion:getRegion":
                return {"name": REGION, "region": REGION, "id": REGION}, []
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "accountId": ACCOUNT_ID,
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/test",
                    "userId": "x",
                }, []
            case "aws:index/getPartition:getPartition":
                return {"partition": self.partition, "dnsSuffix": "amazonaws.com", "id": self.partition}, []
            case "aws:ssm/getParameter:getParameter":
                return _powertools_parameter(str(args.args["name"])), []
        raise NotImplementedError(f"unexpected invoke {args.token}")

    # --- queries used by the tests ------------------------------------------------------------------
    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def parent_of(self, resource: Registered) -> str:
        return self.relations[(resource.typ, resource.name)][0]

    def dependencies_of(self, resource: Registered) -> tuple[str, ...]:
        return self.relations[(resource.typ, resource.name)][1]

    def by_name(self, name: str) -> Registered:
        return next(r for r in self.resources if r.name == name)


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    """Replace pip by a recorder that lays out a plausible layer: tests never touch the network."""
    calls: list[list[str]] = []

    def install(arguments: Any) -> None:
        calls.append(list(arguments))
        target = Path(arguments[arguments.index("--target") + 1])
        (target / "ijson").mkdir(parents=True)
        (target / "ijson" / "__init__.py").write_text("")

    monkeypatch.setattr(dependencies, "run_pip", install)
    monkeypatch.setenv(dependencies.CACHE_ENV, str(tmp_path / "layer-cache"))
    return calls


@pytest.fixture
def mocks(fake_pip: list[list[str]]) -> RecordingMocks:
    """Fresh mocks per test (module-level set_mocks leaks state between tests)."""
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(
        recording, project="filepipe", stack="test", preview=False, monitor=RecordingMonitor(recording)
    )
    return recording


def build(program: Callable[[], Any]) -> None:
    """Run ``program`` under the mocks and wait until every resource is registered."""
    pulumi.runtime.test(program)()


def policy(resource: Registered, key: str = "policy") -> dict[str, Any]:
    value = resource.inputs[key]
    document: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return document


def use_stack(recording: RecordingMocks, project: str, stack: str) -> None:
    """Run the next program as ``project``/``stack`` (names derived from them are account-wide)."""
    pulumi.runtime.set_mocks(
        recording, project=project, stack=stack, preview=False, monitor=RecordingMonitor(recording)
    )
