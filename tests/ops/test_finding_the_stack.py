"""Where an ops command finds its stack: an outputs file, the running local endpoint, the Pulumi CLI.

Each way is exercised as a user would: with a real outputs file, a stand-in ``pulumi`` executable on
``PATH`` (it records its arguments), and moto standing in for the AWS account.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from filepipe.cli.main import main
from filepipe.outputs import PipelineOutput
from tests.conftest import REGION


def _outputs(sqs: Any) -> dict[str, Any]:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="orders-role", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    awslambda = boto3.client("lambda", region_name=REGION)
    awslambda.create_function(
        FunctionName="orders-function",
        Role=role,
        Runtime="python3.13",
        Handler="index.handler",
        Code={"ZipFile": _empty_zip()},
    )
    mapping = awslambda.create_event_source_mapping(
        EventSourceArn=f"arn:aws:sqs:{REGION}:123456789012:orders", FunctionName="orders-function"
    )["UUID"]
    return {
        "orders": {
            PipelineOutput.PIPELINE: "orders",
            PipelineOutput.BUCKET: "data",
            PipelineOutput.INPUT_PREFIX: "incoming/orders/",
            PipelineOutput.OUTPUT_PREFIX: "processed/orders/",
            PipelineOutput.QUEUE_URL: url,
            PipelineOutput.QUEUE_ARN: f"arn:aws:sqs:{REGION}:123456789012:orders",
            PipelineOutput.DLQ_URL: dlq_url,
            PipelineOutput.DLQ_ARN: f"arn:aws:sqs:{REGION}:123456789012:orders-dlq",
            PipelineOutput.FUNCTION_NAME: "orders-function",
            PipelineOutput.EVENT_SOURCE_MAPPING_ID: mapping,
        },
        "someOtherExport": "not a pipeline",
    }


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context): return None\n")
    return buffer.getvalue()


@pytest.fixture
def account() -> Iterator[dict[str, Any]]:
    """A mocked AWS account with one pipeline's queues; yields its stack outputs."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        outputs = _outputs(sqs)
        sqs.send_message(QueueUrl=outputs["orders"][PipelineOutput.DLQ_URL], MessageBody="{}")
        yield outputs


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _dlq_depth(out: str) -> int:
    return int(json.loads(out)["pipelines"]["orders"]["dlq"]["visible"])


def test_an_outputs_file_and_the_aws_environment_find_a_deployed_stack(
    account: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(account))

    code, out, err = _run(
        capsys, "status", "--json", "--outputs", str(outputs_file), "--project-dir", str(tmp_path)
    )

    assert code == 0, err
    assert _dlq_depth(out) == 1


@pytest.mark.e2e
def test_the_pulumi_cli_is_asked_for_the_stack_outputs_when_nothing_runs_locally(
    account: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    stand_in = bin_dir / "pulumi"
    stand_in.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\ncat <<'JSON'\n{json.dumps(account)}\nJSON\n")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    code, out, err = _run(capsys, "status", "--json", "--stack", "prod", "--project-dir", str(tmp_path))

    assert calls.read_text().split() == ["stack", "output", "--json", "--stack", "prod"]
    assert code == 0, err
    assert _dlq_depth(out) == 1


@pytest.mark.e2e
def test_a_failing_pulumi_cli_is_reported_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "pulumi"
    stand_in.write_text("#!/bin/sh\necho 'error: no stack named prod found' >&2\nexit 255\n")
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    code, out, err = _run(capsys, "status", "--stack", "prod", "--project-dir", str(tmp_path))

    assert code == 2
    assert out == ""
    assert (
        err.strip() == "filepipe: no stack prod: `pulumi stack output` says: error: no stack named prod found"
    )


def test_without_a_local_run_or_the_pulumi_cli_the_command_says_how_to_point_it_at_a_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pulumi here

    code, out, err = _run(capsys, "status", "--project-dir", str(tmp_path))

    assert code == 2
    assert out == ""
    assert "no stack dev found" in err
    assert "--outputs FILE" in err


def test_a_stopped_local_stack_is_named_as_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    state_dir = tmp_path / ".filepipe" / "dev"
    state_dir.mkdir(parents=True)
    (state_dir / "outputs.json").write_text("{}")

    code, _, err = _run(capsys, "status", "--project-dir", str(tmp_path))

    assert code == 2
    assert "the local endpoint of stack dev is not running" in err
    assert "filepipe local up --stack dev" in err


def test_missing_credentials_are_one_line_not_a_traceback(
    account: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(account))
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    code, _, err = _run(capsys, "status", "--outputs", str(outputs_file), "--project-dir", str(tmp_path))

    assert code == 2
    assert err.strip().startswith("filepipe: no AWS credentials")


def test_an_outputs_file_that_is_not_json_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "outputs.json"
    broken.write_text("not json")

    code, _, err = _run(capsys, "status", "--outputs", str(broken))

    assert code == 2
    assert f"{broken} is not JSON" in err
