"""What the Pulumi engine does with a provider plugin, without the Pulumi CLI.

The plugin is started the way the Python language host starts it (``python <plugin folder> <engine
address>``, the port it listens on read from its first line of output), and its components are
constructed against a resource monitor served over gRPC that answers with the project's Pulumi mocks
(:class:`filepipe.local.capture.StackMocks`, which records every registration).
"""

import asyncio
import subprocess
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import grpc  # type: ignore[import-untyped]
from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]
from pulumi import Output
from pulumi.runtime import rpc, settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

from filepipe.local.capture import StackMocks, aws_address
from tests.conftest import REGION

PROJECT, STACK = "consumer", "dev"
STACK_URN = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::{PROJECT}-{STACK}"


class _Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    """The mocks' monitor behind gRPC: each call runs as the consumer's stack (the monitor names URNs from
    the runtime settings, which are per thread)."""

    def __init__(self, monitor: MockMonitor) -> None:
        self._monitor = monitor

    def _call(self, method: str, request: Any) -> Any:
        settings._set_project(PROJECT)
        settings._set_stack(STACK)
        return getattr(self._monitor, method)(request)

    def SupportsFeature(self, request: Any, context: Any) -> Any:
        answer = self._call("SupportsFeature", request)
        return resource_pb2.SupportsFeatureResponse(hasSupport=answer.hasSupport)

    def RegisterResource(self, request: Any, context: Any) -> Any:
        return self._call("RegisterResource", request)

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:
        return self._call("RegisterResourceOutputs", request)

    def Invoke(self, request: Any, context: Any) -> Any:
        return self._call("Invoke", request)

    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:
        return self._call("GetDeploymentInfo", request)

    def RegisterPackage(self, request: Any, context: Any) -> Any:
        return self._call("RegisterPackage", request)

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()


class _Engine(engine_pb2_grpc.EngineServicer):
    """The engine's log, kept for the assertions."""

    def __init__(self) -> None:
        self.logs: list[str] = []

    def Log(self, request: Any, context: Any) -> Any:
        self.logs.append(request.message)
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> Any:
        return engine_pb2.GetRootResourceResponse(urn=STACK_URN)

    def SetRootResource(self, request: Any, context: Any) -> Any:
        return engine_pb2.SetRootResourceResponse()


@contextmanager
def serve(servicer: Any, add: Any) -> Iterator[str]:
    """Serve ``servicer`` on a free local port; yields its address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@contextmanager
def engine() -> Iterator[tuple[str, _Engine]]:
    servicer = _Engine()
    with serve(servicer, engine_pb2_grpc.add_EngineServicer_to_server) as address:
        yield address, servicer


@contextmanager
def mock_monitor() -> Iterator[tuple[str, StackMocks]]:
    """A fresh resource monitor over gRPC; yields its address and the mocks that record into."""
    mocks = StackMocks(aws_address(REGION))
    with serve(_Monitor(mocks.monitor()), resource_pb2_grpc.add_ResourceMonitorServicer_to_server) as address:
        yield address, mocks


@dataclass
class Plugin:
    process: subprocess.Popen[bytes]
    stub: provider_pb2_grpc.ResourceProviderStub
    channel: grpc.Channel


@contextmanager
def run_plugin(
    python: str | Path,
    folder: Path,
    engine_address: str,
    stderr: IO[bytes],
    env: Mapping[str, str] | None = None,
) -> Iterator[Plugin]:
    """Start the plugin as the language host does (``python <folder> <engine>``) and connect to it."""
    process = subprocess.Popen(
        [str(python), str(folder), engine_address],
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=folder.parent,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        assert line.isdigit(), f"the plugin printed {line!r} instead of its port (see its stderr)"
        channel = grpc.insecure_channel(f"127.0.0.1:{line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield Plugin(process, provider_pb2_grpc.ResourceProviderStub(channel), channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def construct(
    plugin: Plugin, monitor_address: str, type_token: str, name: str, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """``Construct`` as the engine sends it for a program's component; returns the component's outputs.

    The inputs travel as a protobuf Struct, so every number arrives as a float, as from any language.
    """
    struct = struct_pb2.Struct()
    struct.update(dict(inputs))
    request = provider_pb2.ConstructRequest(
        project=PROJECT,
        stack=STACK,
        organization="organization",
        monitorEndpoint=monitor_address,
        type=type_token,
        name=name,
        parent=STACK_URN,
        inputs=struct,
        dryRun=False,
        accepts_output_values=True,
    )
    response = plugin.stub.Construct(request, timeout=120)
    # A private loop, not asyncio.run: that leaves the main thread without a current loop, which the
    # Pulumi mocks of any later test in this worker need.
    loop = asyncio.new_event_loop()
    try:
        state: dict[str, Any] = loop.run_until_complete(_plain(response.state))
    finally:
        loop.close()
    return {"urn": response.urn, **state}


async def _plain(state: struct_pb2.Struct) -> dict[str, Any]:
    """The outputs as plain values (output values and secrets unwrapped)."""
    values = rpc.deserialize_properties(state, keep_unknowns=True)
    return {key: await _resolved(value) for key, value in values.items()}


async def _resolved(value: Any) -> Any:
    if isinstance(value, Output):
        return await value.future()
    if isinstance(value, dict):
        return {key: await _resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [await _resolved(item) for item in value]
    return rpc.unwrap_rpc_secret(value)
