"""Where an ops command finds the stack: its pipelines' outputs and clients for the account they live in.

In this order, for ``--stack NAME``:

1. ``--outputs FILE``: the JSON of ``pulumi stack output --json`` saved to a file; clients come from the
   usual AWS environment (``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``...);
2. the running ``filepipe local up`` of that stack (its ``endpoint.json`` and ``outputs.json``); clients
   point at its endpoint;
3. ``pulumi stack output --json --stack NAME`` when the Pulumi CLI is on ``PATH``; AWS environment.

Whatever cannot be found is one clear line (:class:`OpsError`), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import NoRegionError

from filepipe.local.endpoint import EndpointAddress
from filepipe.local.running import running_endpoint
from filepipe.local.runtime import OUTPUTS_FILE, default_state_dir
from filepipe.outputs import PipelineOutput

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

PULUMI_TIMEOUT_SECONDS = 120
"""``pulumi stack output`` reads the backend (a service call): generous, but not forever."""


class OpsError(RuntimeError):
    """What went wrong, as the one line the command prints before exiting with a non-zero code."""


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One pipeline's stack outputs, typed (see :class:`filepipe.outputs.PipelineOutput`)."""

    name: str
    bucket: str
    input_prefix: str
    input_suffixes: tuple[str, ...]
    output_prefix: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    function_name: str
    log_group_name: str
    event_source_mapping_id: str
    topic_arn: str
    table_name: str
    """Empty when the pipeline keeps no state table."""
    alarm_names: tuple[str, ...]
    breaker_table_name: str = ""
    """Empty when the pipeline has no circuit breaker."""
    breaker_function_name: str = ""

    @classmethod
    def from_outputs(cls, export_name: str, outputs: Mapping[str, Any]) -> Pipeline:
        def text(key: PipelineOutput, default: str | None = None) -> str:
            value = outputs.get(key)
            if value is None:
                if default is not None:
                    return default
                raise OpsError(f"pipeline {export_name}: its stack outputs have no {key!r}")
            return str(value)

        function_name = text(PipelineOutput.FUNCTION_NAME)
        return cls(
            name=text(PipelineOutput.PIPELINE, export_name),
            bucket=text(PipelineOutput.BUCKET),
            input_prefix=text(PipelineOutput.INPUT_PREFIX, ""),
            input_suffixes=tuple(str(s) for s in outputs.get(PipelineOutput.INPUT_SUFFIXES) or ()),
            output_prefix=text(PipelineOutput.OUTPUT_PREFIX),
            queue_url=text(PipelineOutput.QUEUE_URL),
            queue_arn=text(PipelineOutput.QUEUE_ARN),
            dlq_url=text(PipelineOutput.DLQ_URL),
            dlq_arn=text(PipelineOutput.DLQ_ARN),
            function_name=function_name,
            # Stacks deployed before the output existed: Lambda's default group for the function.
            log_group_name=text(PipelineOutput.LOG_GROUP_NAME, "") or f"/aws/lambda/{function_name}",
            event_source_mapping_id=text(PipelineOutput.EVENT_SOURCE_MAPPING_ID),
            topic_arn=text(PipelineOutput.TOPIC_ARN, ""),
            table_name=text(PipelineOutput.TABLE_NAME, ""),
            alarm_names=tuple(str(a) for a in outputs.get(PipelineOutput.ALARM_NAMES) or ()),
            breaker_table_name=text(PipelineOutput.BREAKER_TABLE_NAME, ""),
            breaker_function_name=text(PipelineOutput.BREAKER_FUNCTION_NAME, ""),
        )


def _pipelines(outputs: Mapping[str, Any]) -> dict[str, Pipeline]:
    """The exported values that are pipelines (a mapping with a function and a queue), by pipeline name."""
    found: dict[str, Pipeline] = {}
    for export_name, value in outputs.items():
        if isinstance(value, Mapping) and {PipelineOutput.FUNCTION_NAME, PipelineOutput.QUEUE_URL} <= set(
            value
        ):
            pipeline = Pipeline.from_outputs(export_name, value)
            found[pipeline.name] = pipeline
    return found


@dataclass
class Stack:
    """A deployed (or locally running) stack as the ops commands see it."""

    name: str
    where: str
    """Where it runs, for people: ``local endpoint http://127.0.0.1:4566`` or ``AWS``."""
    pipelines: dict[str, Pipeline]
    endpoint: EndpointAddress | None = None
    """The local endpoint, when the stack runs locally; ``None``: the AWS environment's account."""
    _session: boto3.session.Session | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_outputs(
        cls, name: str, where: str, outputs: Mapping[str, Any], endpoint: EndpointAddress | None = None
    ) -> Stack:
        """The stack whose ``pulumi stack output --json`` is ``outputs`` (its pipelines among them)."""
        return cls(name, where, _pipelines(outputs), endpoint=endpoint)

    @property
    def is_local(self) -> bool:
        return self.endpoint is not None

    def select(self, names: Sequence[str]) -> list[Pipeline]:
        """The named pipelines (every one when ``names`` is empty); an unknown name is an error."""
        if not names:
            return list(self.pipelines.values())
        unknown = [name for name in names if name not in self.pipelines]
        if unknown:
            raise OpsError(
                f"unknown pipeline {', '.join(unknown)} in stack {self.name} "
                f"(it has: {', '.join(sorted(self.pipelines)) or 'none'})"
            )
        return [self.pipelines[name] for name in names]

    def pipeline(self, name: str) -> Pipeline:
        return self.select([name])[0]

    def client(self, service: str) -> Any:
        """One client per service (boto3 clients are thread-safe), for the stack's account."""
        if service not in self._clients:
            if self.endpoint is not None:
                self._clients[service] = self.endpoint.client(service)  # type: ignore[call-overload]
            else:
                self._clients[service] = self._aws_client(service)
        return self._clients[service]

    def _aws_client(self, service: str) -> Any:
        session = self._session or boto3.session.Session()
        self._session = session
        if session.get_credentials() is None:
            raise OpsError(
                "no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), "
                "or run against a local stack (`filepipe local up`)"
            )
        try:
            return session.client(service)  # type: ignore[call-overload]
        except NoRegionError:
            raise OpsError("no AWS region: set AWS_REGION (the stack's aws:region)") from None

    # Typed accessors for the services the commands use.
    def s3(self) -> S3Client:
        return self.client("s3")  # type: ignore[no-any-return]

    def sqs(self) -> SQSClient:
        return self.client("sqs")  # type: ignore[no-any-return]

    def dynamodb(self) -> DynamoDBClient:
        return self.client("dynamodb")  # type: ignore[no-any-return]

    def lambda_(self) -> LambdaClient:
        return self.client("lambda")  # type: ignore[no-any-return]

    def cloudwatch(self) -> CloudWatchClient:
        return self.client("cloudwatch")  # type: ignore[no-any-return]

    def logs(self) -> CloudWatchLogsClient:
        return self.client("logs")  # type: ignore[no-any-return]

    def iam(self) -> IAMClient:
        return self.client("iam")  # type: ignore[no-any-return]

    def sns(self) -> SNSClient:
        return self.client("sns")  # type: ignore[no-any-return]


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every ops command takes to find its stack."""
    where = parser.add_argument_group("where the stack is")
    where.add_argument("--stack", default="dev", help="the stack (default: dev)")
    where.add_argument(
        "--outputs",
        type=Path,
        metavar="FILE",
        help="the stack's `pulumi stack output --json`, saved to a file (AWS credentials from the environment)",
    )
    where.add_argument(
        "--project-dir", type=Path, default=Path.cwd(), help="folder holding Pulumi.yaml (default: .)"
    )
    where.add_argument(
        "--state-dir", type=Path, help="a local run's state (default: <project>/.filepipe/<stack>)"
    )


def find_stack(args: argparse.Namespace) -> Stack:
    """The stack ``args`` address (see the module docstring for the order)."""
    name: str = args.stack
    outputs_file: Path | None = args.outputs
    if outputs_file is not None:
        return Stack(name, "AWS", _pipelines(_read_outputs(outputs_file)))
    project_dir: Path = args.project_dir.resolve()
    state_dir: Path = args.state_dir or default_state_dir(project_dir, name)
    running = running_endpoint(state_dir)
    if running is not None:
        address = EndpointAddress(str(running["endpoint"]), str(running["region"]), str(running["accountId"]))
        outputs = _read_outputs(state_dir / OUTPUTS_FILE)
        return Stack(name, f"local endpoint {address.url}", _pipelines(outputs), endpoint=address)
    pulumi = shutil.which("pulumi")
    if pulumi is not None:
        return Stack(name, "AWS", _pipelines(_pulumi_stack_output(pulumi, name, project_dir)))
    if (state_dir / OUTPUTS_FILE).is_file():
        raise OpsError(
            f"the local endpoint of stack {name} is not running: start it with "
            f"`filepipe local up --stack {name}` (or pass --outputs FILE for a deployed stack)"
        )
    raise OpsError(
        f"no stack {name} found: no `filepipe local up --stack {name}` is running and the Pulumi CLI is "
        "not on PATH; pass --outputs FILE (the JSON of `pulumi stack output --json`)"
    )


def _read_outputs(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise OpsError(f"cannot read stack outputs {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise OpsError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise OpsError(f"{path}: expected the object `pulumi stack output --json` prints")
    return document


def _pulumi_stack_output(pulumi: str, stack: str, project_dir: Path) -> dict[str, Any]:
    try:
        completed = subprocess.run(
            [pulumi, "stack", "output", "--json", "--stack", stack],
            cwd=project_dir,
            capture_output=True,
            text=True,
            timeout=PULUMI_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OpsError(f"`pulumi stack output --stack {stack}` failed: {error}") from None
    if completed.returncode != 0:
        reason = next((line for line in completed.stderr.splitlines() if line.strip()), "no output")
        raise OpsError(f"no stack {stack}: `pulumi stack output` says: {reason.strip()}")
    try:
        document = json.loads(completed.stdout)
    except ValueError as error:
        raise OpsError(f"`pulumi stack output --json` printed no JSON: {error}") from None
    if not isinstance(document, dict):
        raise OpsError("`pulumi stack output --json` printed no object")
    return document
