"""A stand-in for the Pulumi engine's side of a policy pack run, without the CLI.

It starts the pack the way the CLI does (``python policy/__main__.py``: the pack serves the analyzer gRPC
service and prints its port), then sends what the engine sends: one ``Analyze`` per resource with its
inputs, options (parent) and provider, and one ``AnalyzeStack`` with every resource's outputs, parent,
dependencies and property dependencies. Properties travel as protobuf ``Struct``s, so numbers arrive as
floats and unknowns as the engine's placeholder strings, exactly as in ``pulumi preview``.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.protobuf import empty_pb2, json_format, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from filepipe.cli.graph import GraphNode, ResourceGraph

REPO = Path(__file__).resolve().parents[2]
PACK_DIR = REPO / "policy"
AWS_PROVIDER_VERSION = "7.51.1"

LEVELS = {
    proto.ADVISORY: "advisory",
    proto.MANDATORY: "mandatory",
    proto.REMEDIATE: "remediate",
    proto.DISABLED: "disabled",
}


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    urn: str


class Pack:
    """The policy pack, running as its own process and reached over gRPC, like the CLI runs it."""

    def __init__(self) -> None:
        # stderr goes to a file: a pipe nobody reads could fill up and stall the pack.
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the pack process
        self.process = subprocess.Popen(
            [sys.executable, "__main__.py"],
            cwd=PACK_DIR,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.process.wait(timeout=30)
            self.errors.seek(0)
            errors = self.errors.read()
            self.close()
            raise RuntimeError(f"the pack did not report a port ({port!r}): {errors}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def info(self) -> Any:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)

    def evaluate(self, graph: ResourceGraph) -> list[Violation]:
        """Every diagnostic the pack reports for the graph: resource rules, then stack rules."""
        requests = EngineRequests(graph)
        violations: list[Violation] = []
        for request in requests.analyze():
            response = self.stub.Analyze(request, timeout=30)
            # The engine files a resource rule's diagnostic under the resource it analysed.
            violations.extend(
                Violation(d.policyName, LEVELS[d.enforcementLevel], d.message, d.urn or request.urn)
                for d in response.diagnostics
            )
        response = self.stub.AnalyzeStack(requests.analyze_stack(), timeout=60)
        violations.extend(
            Violation(d.policyName, LEVELS[d.enforcementLevel], d.message, d.urn)
            for d in response.diagnostics
        )
        return violations

    def close(self) -> None:
        if hasattr(self, "channel"):
            self.channel.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.errors.close()


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(dict(serialize_properties(props)), message)
    return message


class EngineRequests:
    def __init__(self, graph: ResourceGraph) -> None:
        self.graph = graph
        provider_name = f"default_{AWS_PROVIDER_VERSION.replace('.', '_')}"
        self.provider = proto.AnalyzerProviderResource(
            type="pulumi:providers:aws",
            name=provider_name,
            urn=f"urn:pulumi:{graph.stack}::{graph.project}::pulumi:providers:aws::{provider_name}",
            properties=struct({"region": graph.region, "version": AWS_PROVIDER_VERSION}),
        )

    def _options(self, node: GraphNode) -> Any:
        return proto.AnalyzerResourceOptions(parent=node.parent or "")

    def analyze(self) -> Iterable[Any]:
        for node in self.graph.nodes:
            yield proto.AnalyzeRequest(
                type=node.type,
                properties=struct(node.inputs),
                urn=node.urn,
                name=node.name,
                options=self._options(node),
                provider=self.provider if node.custom else None,
            )

    def analyze_stack(self) -> Any:
        resources = [
            proto.AnalyzerResource(
                type="pulumi:pulumi:Stack",
                properties=struct(self.graph.outputs),
                urn=self.graph.stack_urn,
                name=f"{self.graph.project}-{self.graph.stack}",
                options=proto.AnalyzerResourceOptions(),
            )
        ]
        for node in self.graph.nodes:
            # A bridged provider's state carries the resource id among the outputs.
            props = {**node.outputs, "id": node.resource_id} if node.resource_id else dict(node.outputs)
            resources.append(
                proto.AnalyzerResource(
                    type=node.type,
                    properties=struct(props),
                    urn=node.urn,
                    name=node.name,
                    options=self._options(node),
                    provider=self.provider if node.custom else None,
                    parent=node.parent or "",
                    dependencies=list(node.dependencies),
                    propertyDependencies={
                        key: proto.AnalyzerPropertyDependencies(urns=list(urns))
                        for key, urns in node.property_dependencies.items()
                    },
                )
            )
        return proto.AnalyzeStackRequest(resources=resources)


# --- changing a captured graph ---------------------------------------------------------------------------


def node(graph: ResourceGraph, name: str) -> GraphNode:
    found = [candidate for candidate in graph.nodes if candidate.name == name]
    assert len(found) == 1, f"expected one resource named {name!r}, found {len(found)}"
    return found[0]


def named(graph: ResourceGraph, suffix: str, type_token: str | None = None) -> GraphNode:
    """The one resource whose name ends with ``suffix`` (and has ``type_token``)."""
    found = [
        candidate
        for candidate in graph.nodes
        if candidate.name.endswith(suffix) and type_token in (None, candidate.type)
    ]
    assert found, f"no resource named *{suffix}"
    return sorted(found, key=lambda candidate: candidate.name)[0]


def with_props(graph: ResourceGraph, name: str, **changes: Any) -> ResourceGraph:
    """Change inputs (and the outputs, which include them); ``None`` removes a property."""
    target = node(graph, name)

    def changed(props: Mapping[str, Any]) -> dict[str, Any]:
        result = {**props, **changes}
        return {key: value for key, value in result.items() if value is not None}

    replaced = dataclasses.replace(target, inputs=changed(target.inputs), outputs=changed(target.outputs))
    return dataclasses.replace(graph, nodes=[replaced if n is target else n for n in graph.nodes])


def transform(graph: ResourceGraph, name: str, change: Callable[[dict[str, Any]], None]) -> ResourceGraph:
    """Apply ``change`` to a copy of both the inputs and the outputs of one resource."""
    target = node(graph, name)
    inputs, outputs = _deep_copy(target.inputs), _deep_copy(target.outputs)
    change(inputs)
    change(outputs)
    replaced = dataclasses.replace(target, inputs=inputs, outputs=outputs)
    return dataclasses.replace(graph, nodes=[replaced if n is target else n for n in graph.nodes])


def without(graph: ResourceGraph, name: str) -> ResourceGraph:
    target = node(graph, name)
    return dataclasses.replace(graph, nodes=[n for n in graph.nodes if n is not target])


def with_copy(graph: ResourceGraph, name: str, new_name: str) -> ResourceGraph:
    """A second resource like ``name`` (same parent, same inputs), as a duplicate declaration would be."""
    target = node(graph, name)
    copy = dataclasses.replace(target, name=new_name, urn=target.urn.rsplit("::", 1)[0] + f"::{new_name}")
    return dataclasses.replace(graph, nodes=[*graph.nodes, copy])


def as_first_preview(graph: ResourceGraph) -> ResourceGraph:
    """What a first ``pulumi preview`` knows: inputs computed from other resources, and every output a
    provider computes on create, are unknown; literal inputs (and names, which providers assign in their
    check step) are known."""
    nodes = []
    for original in graph.nodes:
        inputs = {
            key: UNKNOWN_STRING_VALUE if original.property_dependencies.get(key) else value
            for key, value in original.inputs.items()
        }
        outputs = {
            key: inputs.get(key, value if key == "name" else UNKNOWN_STRING_VALUE)
            for key, value in original.outputs.items()
        }
        nodes.append(dataclasses.replace(original, inputs=inputs, outputs=outputs, resource_id=None))
    return dataclasses.replace(graph, nodes=nodes)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _deep_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(item) for item in value]
    return value
