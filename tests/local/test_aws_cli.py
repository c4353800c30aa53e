"""The AWS CLI v1 (the one on PyPI) works against ``filepipe local up`` as the README says: with
``--endpoint-url`` on every command, since v1 does not take ``AWS_ENDPOINT_URL`` for every service (for
SQS it builds ``https://<region>.queue.amazonaws.com`` itself). Upload a file, list and download what the
pipeline wrote, read the queue's ``NumberOfMessagesSent``, receive a parked message from the DLQ, list
the event source mappings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.local.conftest import PROJECT_DIR, wait_until

README = PROJECT_DIR / "README.md"
AWS = Path(sys.executable).with_name("aws")
"""The AWS CLI of the project's virtualenv (the ``dev`` extra installs it)."""
GOOD = b'[{"id": "t-1", "amount": 10.5, "currency": "EUR"}]'
BAD = b'{"id": "t-9", "amount": '
WAIT_SECONDS = 120


@dataclass
class LocalUp:
    url: str
    environment: dict[str, str]
    """What ``filepipe local env`` exports, over this process's environment."""
    outputs: dict[str, Any]

    def aws(self, *args: str) -> str:
        """``aws --endpoint-url URL ARGS…``: its stdout (a failure fails the test with its stderr)."""
        done = subprocess.run(
            [str(AWS), "--endpoint-url", self.url, *args],
            capture_output=True,
            text=True,
            env=self.environment,
            timeout=WAIT_SECONDS,
            check=False,
        )
        assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
        return done.stdout

    def aws_json(self, *args: str) -> Any:
        return json.loads(self.aws(*args, "--output", "json"))


@pytest.fixture(scope="module")
def local_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUp]:
    """``filepipe local up --fast`` in its own process, and the variables ``local env`` prints for it."""
    assert AWS.is_file(), f"no AWS CLI at {AWS}: install the project with its dev extra"
    state_dir = tmp_path_factory.mktemp("up")
    command = [sys.executable, "-m", "filepipe.cli.main", "local"]
    common = ["--project-dir", str(PROJECT_DIR), "--state-dir", str(state_dir)]
    up = subprocess.Popen(
        [*command, "up", *common, "--port", "0", "--fast", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reaper = threading.Thread(target=lambda: output.append(up.communicate()[0]), daemon=True)
    reaper.start()
    try:
        assert wait_until(
            lambda: (state_dir / "endpoint.json").is_file() or not reaper.is_alive(), WAIT_SECONDS
        )
        assert reaper.is_alive(), output
        printed = subprocess.run(
            [*command, "env", *common], capture_output=True, text=True, check=True, timeout=WAIT_SECONDS
        ).stdout
        exports = dict(re.findall(r"^export (\w+)=(.*)$", printed, re.MULTILINE))
        yield LocalUp(
            exports["AWS_ENDPOINT_URL"],
            {**os.environ, **exports},
            json.loads((state_dir / "outputs.json").read_text()),
        )
    finally:
        subprocess.run([*command, "down", *common], capture_output=True, check=False, timeout=WAIT_SECONDS)
        reaper.join(timeout=WAIT_SECONDS)
        up.kill()


@pytest.mark.e2e
def test_upload_list_and_download_what_the_pipeline_wrote(local_up: LocalUp, tmp_path: Path) -> None:
    pipeline = local_up.outputs["transactions"]
    bucket, output_prefix = pipeline["bucket"], pipeline["outputPrefix"]
    (tmp_path / "2026-11-27.json").write_bytes(GOOD)

    local_up.aws(
        "s3",
        "cp",
        str(tmp_path / "2026-11-27.json"),
        f"s3://{bucket}/{pipeline['inputPrefix']}2026-11-27.json",
    )

    output_key = f"{output_prefix}2026-11-27.json"
    assert wait_until(
        lambda: output_key in local_up.aws("s3", "ls", f"s3://{bucket}/processed/", "--recursive"), 60
    )
    local_up.aws("s3", "cp", f"s3://{bucket}/{output_key}", str(tmp_path / "out.json"))
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["data"] == json.loads(GOOD)


@pytest.mark.e2e
def test_the_queue_reports_number_of_messages_sent_to_cloudwatch(local_up: LocalUp, tmp_path: Path) -> None:
    pipeline = local_up.outputs["transactions"]
    queue_name = pipeline["queueUrl"].rsplit("/", 1)[-1]
    (tmp_path / "sent.json").write_bytes(GOOD)
    local_up.aws(
        "s3",
        "cp",
        str(tmp_path / "sent.json"),
        f"s3://{pipeline['bucket']}/{pipeline['inputPrefix']}sent.json",
    )

    def sent() -> float:
        now = datetime.now(UTC)
        statistics = local_up.aws_json(
            *("cloudwatch", "get-metric-statistics", "--namespace", "AWS/SQS"),
            *("--metric-name", "NumberOfMessagesSent", "--dimensions", f"Name=QueueName,Value={queue_name}"),
            *("--start-time", (now - timedelta(minutes=10)).isoformat(), "--end-time", now.isoformat()),
            *("--period", "600", "--statistics", "Sum"),
        )
        return float(sum(point["Sum"] for point in statistics["Datapoints"]))

    # The S3 notification of the upload is a message sent to the queue.
    assert wait_until(lambda: sent() >= 1, 60)


@pytest.mark.e2e
def test_receive_a_parked_message_from_the_dlq_and_list_the_mappings(
    local_up: LocalUp, tmp_path: Path
) -> None:
    pipeline = local_up.outputs["transactions"]
    (tmp_path / "broken.json").write_bytes(BAD)
    key = f"{pipeline['inputPrefix']}broken.json"
    local_up.aws("s3", "cp", str(tmp_path / "broken.json"), f"s3://{pipeline['bucket']}/{key}")

    def parked() -> list[dict[str, Any]]:
        received = local_up.aws(
            *("sqs", "receive-message", "--queue-url", pipeline["dlqUrl"]),
            *("--message-attribute-names", "All", "--visibility-timeout", "0", "--output", "json"),
        )
        return json.loads(received)["Messages"] if received.strip() else []

    messages: list[dict[str, Any]] = []

    def received() -> bool:
        messages.extend(parked())
        return bool(messages)

    assert wait_until(received, 60)
    attributes = messages[0]["MessageAttributes"]
    assert attributes["filepipe-source-key"]["StringValue"] == key
    assert attributes["filepipe-error-type"]["StringValue"] == "InvalidContentError"

    mappings = local_up.aws_json("lambda", "list-event-source-mappings")["EventSourceMappings"]
    by_queue = {mapping["EventSourceArn"]: mapping for mapping in mappings}
    assert by_queue[pipeline["queueArn"]]["UUID"] == pipeline["eventSourceMappingId"]
    assert by_queue[pipeline["queueArn"]]["State"] == "Enabled"


def test_the_readme_tells_v1_users_to_pass_the_endpoint_on_every_command() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Running locally")
    section = text[start : text.index("\n## ", start + 1)]
    assert "AWS CLI v1" in section and "AWS CLI v2" in section
    assert 'aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp' in section
    commands = [line for line in section.splitlines() if line.startswith("$ aws ")]
    # Every v1 command shown passes the endpoint, except the one that shows what happens without it.
    assert [line for line in commands if not line.startswith("$ aws --endpoint-url ")] == [
        "$ aws sqs list-queues          # v1 without --endpoint-url"
    ]
    for api in ("s3 ls", "get-metric-statistics", "receive-message", "list-event-source-mappings"):
        assert any(api in line for line in commands), api
