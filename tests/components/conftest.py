"""Pulumi mocks for the component tests: the project's one mocks mechanism, fresh per test.

:class:`filepipe.local.capture.StackMocks` answers every registration and invoke (``filepipe local`` and
``filepipe graph`` capture the stack program with it) and records what registers; the fixture installs it
with identifiers in their AWS shape, and adds the queries the tests read the record with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pytest

from filepipe import PipelineArgs, dependencies
from filepipe.local.capture import CapturedResource, StackMocks, aws_address
from tests.conftest import ACCOUNT_ID, REGION


@dataclass(frozen=True)
class Registered:
    """One recorded registration, as the tests read it (``typ``: the type token, as Pulumi names it)."""

    typ: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: str
    parent: str
    """The parent's logical name."""
    dependencies: tuple[str, ...]
    """Logical names of the resources it depends on."""


def _name_of(urn: str | None) -> str:
    return urn.rsplit("::", 1)[-1] if urn else ""


def _registered(resource: CapturedResource) -> Registered:
    return Registered(
        typ=resource.type,
        name=resource.name,
        inputs=dict(resource.inputs),
        outputs=dict(resource.outputs),
        id=resource.resource_id,
        parent=_name_of(resource.parent),
        dependencies=tuple(_name_of(urn) for urn in resource.dependencies),
    )


class RecordingMocks(StackMocks):
    def __init__(self) -> None:
        address = aws_address(REGION)
        assert address.account_id == ACCOUNT_ID
        super().__init__(address)
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.invokes.append((args.token, dict(args.args)))
        return super().call(args)

    # --- queries used by the tests ------------------------------------------------------------------
    @property
    def resources(self) -> list[Registered]:
        return [_registered(resource) for resource in self.registrations]

    @property
    def component_outputs(self) -> dict[str, dict[str, Any]]:
        """The outputs each component registered, by its logical name."""
        return {_name_of(urn): outputs for urn, outputs in self.registered_outputs.items()}

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str | None = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def parent_of(self, resource: Registered) -> str:
        return resource.parent

    def dependencies_of(self, resource: Registered) -> tuple[str, ...]:
        return resource.dependencies

    def by_name(self, name: str) -> Registered:
        return next(r for r in self.resources if r.name == name)


@pytest.fixture
def fake_pip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    """Replace pip by a recorder that lays out a plausible layer: tests never touch the network."""
    calls: list[list[str]] = []

    def install(arguments: Any) -> None:
        calls.append(list(arguments))
        target = Path(arguments[arguments.index("--target") + 1])
        (target / "msgspec").mkdir(parents=True)
        (target / "msgspec" / "__init__.py").write_text("")

    monkeypatch.setattr(dependencies, "run_pip", install)
    monkeypatch.setenv(dependencies.CACHE_ENV, str(tmp_path / "layer-cache"))
    return calls


@pytest.fixture
def mocks(fake_pip: list[list[str]]) -> RecordingMocks:
    """Fresh mocks per test (module-level set_mocks leaks state between tests)."""
    recording = RecordingMocks()
    recording.install(project="filepipe", stack="test")
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
    recording.install(project=project, stack=stack)


def pipeline_args(fields: Mapping[str, Any]) -> PipelineArgs:
    """A table's row of input fields as a pipeline's inputs (a TypedDict is a dict of its fields)."""
    return cast(PipelineArgs, dict(fields))
