"""The runtime's lifecycle without an endpoint: a fake endpoint and a stubbed capture/apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filepipe.local import runtime as runtime_module
from filepipe.local.apply import AppliedStack, ApplyError, LocalFunction
from filepipe.local.capture import CapturedStack
from filepipe.local.endpoint import EndpointAddress, EndpointError
from filepipe.local.esm import FunctionSpec, MappingSpec
from filepipe.local.runtime import ENDPOINT_FILE, LocalRuntime

ADDRESS = EndpointAddress("http://127.0.0.1:1")


class FakeEndpoint:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.running = False
        self.requests = 0

    def start(self) -> EndpointAddress:
        if self.error is not None:
            raise self.error
        self.running = True
        return ADDRESS

    def stop(self) -> None:
        self.running = False


def _runtime(tmp_path: Path, endpoint: FakeEndpoint) -> LocalRuntime:
    runtime = LocalRuntime(
        tmp_path, state_dir=tmp_path / "state", handler_factory=lambda *_: lambda e, c: None
    )
    runtime._endpoint = endpoint  # type: ignore[assignment]
    return runtime


def test_two_mappings_on_one_function_are_an_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = FunctionSpec(name="fn", arn="arn:aws:lambda:eu-west-1:123456789012:function:fn")
    applied = AppliedStack(
        functions={"fn": LocalFunction(function, None)},
        mappings=[
            MappingSpec(name=name, queue_url=f"u-{name}", queue_arn=f"a-{name}", function_name="fn")
            for name in ("first-esm", "second-esm")
        ],
    )
    monkeypatch.setattr(runtime_module, "capture_stack", lambda *_: CapturedStack("p", "s", []))
    monkeypatch.setattr(runtime_module, "apply_stack", lambda *_: applied)
    endpoint = FakeEndpoint()
    runtime = _runtime(tmp_path, endpoint)
    with pytest.raises(ApplyError, match="second-esm: function fn already has a mapping \\(first-esm\\)"):
        runtime.start()
    assert not endpoint.running  # cleaned up


def test_an_endpoint_that_fails_to_start_leaves_another_runtimes_state_alone(tmp_path: Path) -> None:
    # GIVEN a state dir that a running `up` owns
    state = tmp_path / "state"
    state.mkdir()
    (state / ENDPOINT_FILE).write_text(json.dumps({"endpoint": "http://127.0.0.1:4566", "pid": 1}))
    endpoint = FakeEndpoint(EndpointError("cannot listen on 127.0.0.1:4566"))
    runtime = _runtime(tmp_path, endpoint)
    # WHEN a second runtime cannot start its endpoint
    with pytest.raises(EndpointError):
        runtime.start()
    # THEN it cleaned up without touching the other runtime's state file
    assert (state / ENDPOINT_FILE).is_file()
    assert runtime._address is None
    with pytest.raises(RuntimeError, match="not started"):
        _ = runtime.address
