"""A local run lives in its stack's own ``aws:region``: the endpoint, every ARN, the queues and
``filepipe local env`` agree with the stack config, whatever the default region is."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from filepipe.cli.main import main
from filepipe.local.capture import stack_region
from filepipe.local.endpoint import DEFAULT_REGION
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR

STACK_REGION = "us-east-1"


def _project(root: Path, region_line: str) -> Path:
    """A copy of the project with one stack, ``east``, configured by ``region_line``."""
    project = root / "project"
    project.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((PROJECT_DIR / name).read_text())
    (project / "Pulumi.east.yaml").write_text(
        "config:\n"
        f"{region_line}"
        "  filepipe:forceDestroy: true\n"
        "  filepipe:pipelines:\n"
        "    - name: orders\n"
        "      inputPrefix: incoming/orders/\n"
        "      inputSuffixes: ['.json']\n"
    )
    return project


def test_the_region_is_the_stack_configs_and_the_default_without_one(tmp_path: Path) -> None:
    assert STACK_REGION != DEFAULT_REGION  # else the test below proves nothing
    east = _project(tmp_path / "east", f"  aws:region: {STACK_REGION}\n")
    unset = _project(tmp_path / "unset", "")

    assert stack_region(east, "east") == STACK_REGION
    assert stack_region(unset, "east") == DEFAULT_REGION
    assert stack_region(east, "no-such-stack") == DEFAULT_REGION  # the capture reports it, not this


@pytest.fixture(scope="module")
def east(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    project = _project(tmp_path_factory.mktemp("region"), f"  aws:region: {STACK_REGION}\n")
    with LocalRuntime(
        project, "east", state_dir=project / ".filepipe" / "east", tuning=LocalTuning.fast()
    ) as running:
        yield running


@pytest.mark.e2e
def test_a_us_east_1_stack_runs_in_us_east_1(east: RunningStack) -> None:
    outputs = east.pipeline_outputs("orders")
    sqs = east.address.client("sqs")

    # The endpoint and every ARN the stack reports are in the stack's region
    assert east.address.region == STACK_REGION
    arns = [value for value in outputs.values() if isinstance(value, str) and value.startswith("arn:aws:")]
    assert arns
    for arn in arns:
        region = arn.split(":")[3]
        assert region in {"", STACK_REGION}, arn  # S3 and IAM ARNs name no region
    # The queues answer there, with the ARNs the stack reports
    queue_arn = sqs.get_queue_attributes(QueueUrl=outputs["queueUrl"], AttributeNames=["QueueArn"])
    assert queue_arn["Attributes"]["QueueArn"] == outputs["queueArn"]
    assert outputs["queueArn"].startswith(f"arn:aws:sqs:{STACK_REGION}:")
    mapping = east.address.client("lambda").get_event_source_mapping(UUID=outputs["eventSourceMappingId"])
    assert mapping["EventSourceArn"] == outputs["queueArn"]

    # And `filepipe local env` points a shell there
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exit_code = main(["local", "env", "--stack", "east", "--state-dir", str(east.state_dir)])
    assert exit_code == 0
    assert f"export AWS_REGION={STACK_REGION}" in printed.getvalue().splitlines()
    assert f"export AWS_DEFAULT_REGION={STACK_REGION}" in printed.getvalue().splitlines()
