"""``filepipe local demo``: a valid and an invalid file through the local stack, checked end to end.

1. upload a valid ``test-data.json`` under a JSON pipeline's input prefix and show its ``processed/…``
   output;
2. upload ``invalid.json`` and show it in the DLQ with the handler's reason, and the DLQ alarm's alert
   arriving through SNS at the local subscriber;
3. check that the state table records the first as SUCCEEDED and the second as FAILED.

The demo passes (exit 0) only if every check held.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from filepipe.handler.keys import output_key
from filepipe.handler.settings import DlqAttribute, EnvVar, FileFormat, StateAttribute
from filepipe.local.alerts import Alert
from filepipe.local.runtime import RunningStack

VALID_RECORDS: Final = [
    {"id": "txn-1001", "amount": 125.5, "currency": "EUR", "description": "office supplies"},
    {"id": "txn-1002", "amount": 89.99, "currency": "USD", "description": "software licence"},
    {"id": "txn-1003", "amount": 2400, "currency": "GBP"},
]
"""Valid against the dev stack's transaction schema (``schemas/transaction.schema.json``)."""
INVALID_BODY: Final = b'{"id": "txn-2001", "amount": 12.0, "currency": '
"""A truncated JSON document: a permanent error, parked in the DLQ."""
STEP_TIMEOUT_SECONDS: Final = 20.0
VALID_STEP: Final = "A valid file is processed"
INVALID_STEP: Final = "An invalid file is parked in the DLQ and alerts"


@dataclass
class DemoResult:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append((name, passed, detail))
        return passed

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)


def _poll(condition: Callable[[], Any], timeout: float = STEP_TIMEOUT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def json_pipeline(running: RunningStack) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The first pipeline that reads JSON: ``(name, its outputs, its function environment)``."""
    for name, outputs in running.outputs.items():
        if not isinstance(outputs, dict) or "functionName" not in outputs:
            continue
        environment = running.emulation.functions[outputs["functionName"]].environment
        if environment.get(EnvVar.INPUT_FORMAT.value, "json") == FileFormat.JSON.value:
            return name, outputs, dict(environment)
    raise RuntimeError("the stack has no pipeline with inputFormat json; the demo needs one")


def run_demo(running: RunningStack, console: Console, alerts: list[Alert]) -> DemoResult:
    """The demo's checks on a running stack; ``alerts`` is filled by the runtime's alert callback."""
    result = DemoResult()
    pipeline, outputs, environment = json_pipeline(running)
    s3 = running.address.client("s3")
    sqs = running.address.client("sqs")
    dynamodb = running.address.client("dynamodb")
    bucket, prefix = outputs["bucket"], outputs["inputPrefix"]

    # --- A valid file is processed -------------------------------------------------------------------
    key = f"{prefix}test-data.json"
    expected = output_key(
        key,
        prefix,
        outputs["outputPrefix"],
        FileFormat(environment.get(EnvVar.INPUT_FORMAT.value, "json")),
        FileFormat(environment.get(EnvVar.OUTPUT_FORMAT.value, "json")),
    )
    console.rule(f"[bold]{VALID_STEP}[/] by pipeline [cyan]{pipeline}[/]")
    console.print(f"upload  s3://{bucket}/{key}  ({len(VALID_RECORDS)} records)")
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(VALID_RECORDS, indent=2).encode())

    def output_body() -> str | None:
        try:
            return s3.get_object(Bucket=bucket, Key=expected)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            return None

    body = _poll(output_body)
    if result.check("valid file -> processed output", body is not None, f"s3://{bucket}/{expected}"):
        assert body is not None
        console.print(f"output  s3://{bucket}/{expected}")
        try:
            shown = json.dumps(json.loads(body), indent=2)
        except ValueError:
            shown = body
        console.print(Syntax(shown[:1500], "json", word_wrap=True))

    # --- An invalid file lands in the DLQ with its reason, and the alarm fires -----------------------
    bad_key = f"{prefix}invalid.json"
    console.rule(f"[bold]{INVALID_STEP}[/] ([cyan]{pipeline}[/])")
    console.print(f"upload  s3://{bucket}/{bad_key}  (truncated JSON)")
    s3.put_object(Bucket=bucket, Key=bad_key, Body=INVALID_BODY)

    def parked() -> dict[str, Any] | None:
        # VisibilityTimeout=0 peeks: the message stays visible, so the DLQ-depth alarm still sees it.
        messages = sqs.receive_message(
            QueueUrl=outputs["dlqUrl"], MessageAttributeNames=["All"], VisibilityTimeout=0, WaitTimeSeconds=1
        ).get("Messages", [])
        for message in messages:
            attributes = {
                name: value.get("StringValue") for name, value in message.get("MessageAttributes", {}).items()
            }
            if attributes.get(DlqAttribute.SOURCE_KEY.value) == bad_key:
                return attributes
        return None

    dlq = _poll(parked)
    reason = (dlq or {}).get(DlqAttribute.REASON.value) or ""
    if result.check("invalid file -> DLQ with a reason", bool(reason), reason):
        table = Table(title=f"DLQ message ({outputs['dlqUrl'].rsplit('/', 1)[-1]})", show_header=False)
        for name, value in sorted((dlq or {}).items()):
            table.add_row(name, str(value))
        console.print(table)

    dlq_alarm = next((name for name in outputs.get("alarmNames", []) if name.endswith("dlq-depth")), None)

    def fired() -> Alert | None:
        return next((a for a in alerts if a.alarm_name == dlq_alarm and a.state == "ALARM"), None)

    alert = _poll(fired)
    result.check(
        "DLQ alarm fired and the alert was received",
        alert is not None,
        f"{dlq_alarm} -> {outputs.get('topicArn')}",
    )

    # --- The state table agrees ----------------------------------------------------------------------
    table_name = outputs.get("tableName")
    if table_name:
        statuses = _file_statuses(dynamodb, table_name, bucket, [key, bad_key])
        result.check(
            "state table: SUCCEEDED / FAILED",
            statuses == {key: "SUCCEEDED", bad_key: "FAILED"},
            ", ".join(f"{k.rsplit('/', 1)[-1]}={v}" for k, v in statuses.items()),
        )
    return result


def _file_statuses(dynamodb: Any, table: str, bucket: str, keys: list[str]) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for key in keys:
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": StateAttribute.PK.value},
            ExpressionAttributeValues={":pk": {"S": f"{bucket}/{key}"}},
        ).get("Items", [])
        if items:
            statuses[key] = items[-1].get(StateAttribute.STATUS.value, {}).get("S", "?")
    return statuses


def print_summary(console: Console, result: DemoResult, elapsed: float) -> None:
    table = Table(title=f"filepipe local demo ({elapsed:.1f} s)")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for name, passed, detail in result.checks:
        table.add_row(name, "[green]PASS[/]" if passed else "[red]FAIL[/]", detail)
    console.print(table)
    if result.passed:
        console.print(Panel.fit("[bold green]All checks passed[/]: the pipeline ran locally end to end."))
    else:
        console.print(Panel.fit("[bold red]The demo failed[/]: see the checks above."))
