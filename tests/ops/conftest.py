"""Fixtures for the ops commands: the dev stack running on a local endpoint, and a way to run commands.

The commands run in-process through ``filepipe.cli.main.main`` exactly as the installed ``filepipe``
command runs them, and find the stack the way they do from another shell: through the state directory's
``endpoint.json`` and ``outputs.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

import pytest

from filepipe.cli.main import main
from filepipe.handler.settings import StateAttribute
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR

HANG_GUARD_SECONDS = 300
"""A deadline only against hangs: a drain on a loaded machine takes seconds, never this long."""


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Ops = Callable[..., Result]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, e2e_tier: None) -> Iterator[RunningStack]:
    """The dev stack on its own endpoint for the whole test module (start-up takes a few seconds)."""
    state_dir = tmp_path_factory.mktemp("state")
    with LocalRuntime(PROJECT_DIR, "dev", state_dir=state_dir, tuning=LocalTuning.fast()) as running:
        yield running


class _ThisThreadOnly(io.TextIOBase):
    """A stdout that keeps what the calling thread writes and passes other threads' writes on.

    The stack runs in this process: its handlers print log and EMF lines from their own threads while
    a command runs. From another shell (as users run the commands) those lines would never be in the
    command's output, so here they must not be either.
    """

    def __init__(self, others: TextIO) -> None:
        self._owner = threading.get_ident()
        self._mine = io.StringIO()
        self._others = others

    def write(self, text: str) -> int:
        if threading.get_ident() == self._owner:
            return self._mine.write(text)
        return self._others.write(text)

    def flush(self) -> None:
        self._others.flush()

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        return self._mine.getvalue()


@pytest.fixture
def ops(running: RunningStack, capsys: pytest.CaptureFixture[str]) -> Ops:
    """``ops("status --json")``: run a ``filepipe`` command against the running stack."""

    def run(command: str, *extra: str) -> Result:
        argv = [*shlex.split(command), *extra, "--state-dir", str(running.state_dir)]
        argv += ["--project-dir", str(PROJECT_DIR)]
        capsys.readouterr()
        stdout = _ThisThreadOnly(sys.stdout)
        with contextlib.redirect_stdout(stdout):
            exit_code = main(argv)
        return Result(exit_code, stdout.getvalue(), capsys.readouterr().err)

    return run


def upload(running: RunningStack, pipeline: str, name: str, body: bytes) -> str:
    """Put ``body`` under the pipeline's input prefix; returns the key."""
    outputs = running.pipeline_outputs(pipeline)
    key = f"{outputs['inputPrefix']}{name}"
    running.address.client("s3").put_object(Bucket=outputs["bucket"], Key=key, Body=body)
    return key


@contextmanager
def paused(running: RunningStack, pipeline: str = "transactions") -> Iterator[None]:
    """The pipeline's poller stopped for the block: what a command sends waits in the queue until the
    block ends, so the test can look at it before the handler does."""
    runner = running.runner(pipeline)
    runner.set_enabled(False)
    assert runner.wait_until_paused(timeout=HANG_GUARD_SECONDS)
    try:
        yield
    finally:
        runner.set_enabled(True)


def output_versions(running: RunningStack, key: str, pipeline: str = "transactions") -> int:
    """How many versions of the input ``key``'s output the handler wrote (once per processing)."""
    outputs = running.pipeline_outputs(pipeline)
    output_key = outputs["outputPrefix"] + key[len(outputs["inputPrefix"]) :]
    listed = running.address.client("s3").list_object_versions(Bucket=outputs["bucket"], Prefix=output_key)
    return sum(1 for version in listed.get("Versions", []) if version["Key"] == output_key)


def file_state(running: RunningStack, key: str, pipeline: str = "transactions") -> dict[str, Any]:
    """The state-table item of the input ``key``, attribute name -> plain value ({} when none)."""
    outputs = running.pipeline_outputs(pipeline)
    item = (
        running.address.client("dynamodb")
        .get_item(
            TableName=outputs["tableName"],
            Key={StateAttribute.PK.value: {"S": f"{outputs['bucket']}/{key}"}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return {name: next(iter(value.values())) for name, value in item.items()}


def good_transactions(count: int = 2) -> bytes:
    return json.dumps([{"id": f"t-{i}", "amount": 10.5, "currency": "EUR"} for i in range(count)]).encode()


POISON_TRANSACTIONS = b'{"id": "t-9", "amount": '
"""Truncated JSON: permanently invalid, parked at once."""
