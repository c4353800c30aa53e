"""The pytest plugin (entry point ``pytest11``): the ``local_stack`` fixture and the ``filepipe_stack`` marker.

Loaded in every pytest session of an environment where filepipe is installed, so it imports nothing
beyond pytest here: the local runtime (and moto) load only when a test requests ``local_stack``.

Which stack the fixture runs, in increasing precedence:

- defaults: stack ``dev``, the nearest folder above the test file that holds ``Pulumi.yaml``, fast tuning;
- ``@pytest.mark.filepipe_stack(stack="routing", project_dir="infra", fast=True, tuning={...})`` on the
  test, its class or its module (``pytestmark``);
- ``@pytest.mark.parametrize("local_stack", [{"stack": "routing"}], indirect=True)``.

``tuning`` holds :class:`~filepipe.local.runtime.LocalTuning` fields (``alarm_period_seconds``,
``concurrency``, ``environment``...), applied over the fast or the stack's own timings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from filepipe.testing.stack import LocalStack

MARKER: Final = "filepipe_stack"
OPTIONS: Final = frozenset({"stack", "project_dir", "fast", "tuning"})
PROJECT_FILE: Final = "Pulumi.yaml"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(stack='dev', project_dir=None, fast=True, tuning=None): "
        "which stack the filepipe `local_stack` fixture runs, and how",
    )


def stack_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The marker's options (closest first: test, class, module), then the fixture parameter's."""
    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only: {sorted(OPTIONS)}")
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, Mapping):
            raise pytest.UsageError(f"local_stack parameters are a dict of {sorted(OPTIONS)}, got {param!r}")
        options.update(param)
    unknown = set(options) - OPTIONS
    if unknown:
        raise pytest.UsageError(f"unknown local_stack option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
    return options


def project_dir_for(test_file: Path, given: str | Path | None, rootpath: Path) -> Path:
    """``given`` (relative to the test file's folder), else the nearest folder holding ``Pulumi.yaml``."""
    if given is not None:
        path = Path(given)
        return (path if path.is_absolute() else test_file.parent / path).resolve()
    for folder in test_file.resolve().parents:
        if (folder / PROJECT_FILE).is_file():
            return folder
    return rootpath


@pytest.fixture
def local_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The test's own stack program, applied to an embedded AWS endpoint on a free port, with its event
    source mappings, alarms and alert subscriptions running; stopped after the test, pass or fail."""
    from filepipe.extras import missing_local_modules, needs_local_extra

    if missing_local_modules():
        pytest.fail(needs_local_extra("filepipe.testing"), pytrace=False)

    from filepipe.local.alerts import Alert
    from filepipe.local.runtime import LocalRuntime, LocalTuning
    from filepipe.testing.stack import LocalStack

    options = stack_options(request)
    project_dir = project_dir_for(request.path, options.get("project_dir"), request.config.rootpath)
    overrides = dict(options.get("tuning") or {})
    tuning = LocalTuning.fast(**overrides) if options.get("fast", True) else LocalTuning(**overrides)
    alerts: list[Alert] = []
    runtime = LocalRuntime(
        project_dir,
        str(options.get("stack", "dev")),
        port=0,
        # Not the project's .filepipe/: a test's state (outputs.json, alerts.log) is the test's own.
        state_dir=tmp_path_factory.mktemp("filepipe-stack"),
        tuning=tuning,
        on_alert=alerts.append,
    )
    running = runtime.start()  # stops whatever it started if it fails
    try:
        yield LocalStack(running, alerts)
    finally:
        runtime.stop()
