"""The runtime's lifecycle: what a failed start leaves behind, and what the handlers are built with."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from filepipe.handler.settings import EnvVar
from filepipe.local.capture import CaptureError
from filepipe.local.endpoint import EndpointAddress, EndpointError
from filepipe.local.esm import FunctionSpec, Handler
from filepipe.local.runtime import ENDPOINT_FILE, LocalRuntime, LocalTuning
from tests.local.conftest import PROJECT_DIR


def _endpoint_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "moto-server" and thread.is_alive()]


@pytest.mark.e2e
def test_a_runtime_whose_stack_cannot_be_captured_stops_its_endpoint(tmp_path: Path) -> None:
    # GIVEN a stack that does not exist
    runtime = LocalRuntime(PROJECT_DIR, "nope", state_dir=tmp_path)
    # WHEN the runtime starts (its endpoint first, then the capture fails)
    with pytest.raises(CaptureError, match="no stack 'nope'"):
        runtime.start()
    # THEN the endpoint is stopped and nothing announces it
    assert _endpoint_threads() == []
    assert not (tmp_path / ENDPOINT_FILE).exists()


@pytest.mark.e2e
def test_an_endpoint_that_fails_to_start_leaves_another_runtimes_state_alone(tmp_path: Path) -> None:
    # GIVEN a state dir that a running `up` owns, listening on a port
    state = tmp_path / "state"
    state.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (state / ENDPOINT_FILE).write_text(json.dumps({"endpoint": f"http://127.0.0.1:{port}", "pid": 1}))
        # WHEN a second runtime cannot listen on that port
        with pytest.raises(EndpointError, match="cannot listen"):
            LocalRuntime(PROJECT_DIR, port=port, state_dir=state).start()
    # THEN it cleaned up without touching the other runtime's state file
    assert (state / ENDPOINT_FILE).is_file()
    assert _endpoint_threads() == []


@pytest.mark.e2e
def test_with_fast_tuning_every_lease_outlives_its_function_timeout_which_fits_its_queue(
    tmp_path: Path,
) -> None:
    # GIVEN the dev stack run with fast tuning, its handlers recorded as the runtime builds them
    built: list[tuple[FunctionSpec, dict[str, str]]] = []

    def recording_factory(
        function: FunctionSpec, environment: Mapping[str, str], address: EndpointAddress
    ) -> Handler:
        built.append((function, dict(environment)))
        return lambda event, context: None

    with LocalRuntime(
        PROJECT_DIR, "dev", state_dir=tmp_path, tuning=LocalTuning.fast(), handler_factory=recording_factory
    ) as running:
        visibility: dict[str, Any] = {
            name: runner.mapping.visibility_timeout_seconds for name, runner in running.runners.items()
        }
    # THEN a live invocation never loses its lease, and a slow batch never reappears while it runs
    assert sorted(function.name for function, _ in built) == sorted(visibility) != []
    for function, environment in built:
        assert int(environment[EnvVar.LEASE_SECONDS]) > function.timeout_seconds
        assert function.timeout_seconds <= visibility[function.name]
