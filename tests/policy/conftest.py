"""Fixtures: the policy pack running as a process, and the example stacks' captured graphs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from filepipe.cli.graph import ResourceGraph, capture_graph
from tests.policy.engine import REPO, Pack

VARIANTS = {
    "kms": 'encryption="kms"',
    "eventbridge": 'notification_mode="eventbridge"',
    "kms-eventbridge": 'encryption="kms", notification_mode="eventbridge"',
    "sns": 'notification_mode="sns"',
    "kms-sns": 'encryption="kms", notification_mode="sns"',
}
"""The component built directly (not through the stack program), one pipeline per program."""


@pytest.fixture(scope="session")
def pack(e2e_tier: None) -> Iterator[Pack]:
    running = Pack()
    yield running
    running.close()


@pytest.fixture(scope="session")
def dev_graph() -> ResourceGraph:
    return capture_graph(REPO, "dev")


@pytest.fixture(scope="session")
def routing_graph() -> ResourceGraph:
    """The routing stack: five pipelines behind one SNS topic."""
    return capture_graph(REPO, "routing")


@pytest.fixture(scope="session")
def formats_graph() -> ResourceGraph:
    """The formats stack: compressed inputs and outputs, and a whole-file processor."""
    return capture_graph(REPO, "formats")


def write_component_program(directory: Path, arguments: str) -> Path:
    """A project whose program builds one FileProcessingPipeline with ``arguments``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text("name: variant\nruntime: python\n")
    (directory / "Pulumi.test.yaml").write_text("config:\n  aws:region: eu-west-1\n")
    (directory / "__main__.py").write_text(
        textwrap.dedent(
            f"""\
            import pulumi
            from filepipe import FileProcessingPipeline, PipelineArgs

            orders = FileProcessingPipeline(
                "orders",
                PipelineArgs(
                    input_prefix="incoming/orders/",
                    alert_emails=["ops@example.com"],
                    # No pip in tests: the layer is built (and tested) in tests/components.
                    bundle_dependencies=False,
                    {arguments},
                ),
            )
            pulumi.export("orders", orders.outputs)
            """
        )
    )
    return directory


@pytest.fixture(scope="session")
def variant_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ResourceGraph]:
    root = tmp_path_factory.mktemp("variants")
    return {
        variant: capture_graph(write_component_program(root / variant, arguments), "test")
        for variant, arguments in VARIANTS.items()
    }
