"""``filepipe status [PIPELINE…]``: what each pipeline is doing now, from the services themselves.

Per pipeline: the queue (visible, in flight, age of the oldest message), the dead-letter queue, the event
source mapping (enabled or paused), the circuit breaker's state and latest transitions, the alarms'
states, file counts by state from the state table, and the latest failures with their reasons.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rich.markup import escape
from rich.table import Table

from filepipe.cli.ops.breaker import breaker_status
from filepipe.cli.ops.command import Output, add_json_argument, ops_command
from filepipe.cli.ops.stack import Pipeline, Stack, add_stack_arguments
from filepipe.handler.settings import ATTENTION_INDEX, FileStatus, StateAttribute

RECENT_FAILURES: Final = 5
OLDEST_AGE_WINDOW: Final = timedelta(minutes=10)
"""How far back to look for the queue's ``ApproximateAgeOfOldestMessage`` (SQS publishes it each minute)."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("status", help="queues, DLQ, mapping, alarms and file states per pipeline")
    parser.add_argument("pipelines", nargs="*", metavar="PIPELINE", help="default: every pipeline")
    add_json_argument(parser)
    add_stack_arguments(parser)
    parser.set_defaults(command=ops_command(_status))


@dataclass(frozen=True, slots=True)
class QueueDepth:
    visible: int
    in_flight: int
    delayed: int


def queue_depth(stack: Stack, url: str) -> QueueDepth:
    attributes = stack.sqs().get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return QueueDepth(
        int(attributes.get("ApproximateNumberOfMessages", 0)),
        int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    )


def oldest_message_age(stack: Stack, queue_url: str) -> float | None:
    """Seconds, from CloudWatch's ``AWS/SQS`` ``ApproximateAgeOfOldestMessage`` (``None``: no datapoint).

    SQS has no API for the age itself; receiving to look would count as a delivery towards the DLQ.
    """
    queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    now = datetime.now(UTC)
    datapoints = (
        stack.cloudwatch()
        .get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_name}],
            StartTime=now - OLDEST_AGE_WINDOW,
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
        .get("Datapoints", [])
    )
    if not datapoints:
        return None
    latest = max(datapoints, key=lambda point: point["Timestamp"])
    return float(latest.get("Maximum", 0.0))


def mapping_summary(stack: Stack, pipeline: Pipeline) -> dict[str, Any]:
    """``{"enabled": bool, "state": "Enabled" | "Disabling" | ...}`` of the pipeline's mapping."""
    mapping = stack.lambda_().get_event_source_mapping(UUID=pipeline.event_source_mapping_id)
    state = str(mapping.get("State", "Unknown"))
    concurrency = (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return {
        "enabled": state in {"Enabled", "Enabling", "Updating"},
        "state": state,
        "maximumConcurrency": concurrency,
    }


def alarm_states(stack: Stack, pipeline: Pipeline) -> dict[str, str]:
    if not pipeline.alarm_names:
        return {}
    states: dict[str, str] = {}
    paginator = stack.cloudwatch().get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmNames=list(pipeline.alarm_names)):
        for alarm in page.get("MetricAlarms", []):
            states[alarm["AlarmName"]] = alarm["StateValue"]
    return {name: states.get(name, "MISSING") for name in pipeline.alarm_names}


def file_census(stack: Stack, pipeline: Pipeline) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Items per status in the state table, and the files being continued across invocations with
    where each resumes (one Scan of those few attributes)."""
    if not pipeline.table_name:
        return {}, []
    counts: Counter[str] = Counter()
    in_progress: list[dict[str, Any]] = []
    names = {
        "#status": StateAttribute.STATUS,
        "#pk": StateAttribute.PK,
        "#offset": StateAttribute.RESUME_OFFSET,
        "#continuations": StateAttribute.CONTINUATIONS,
        "#updated": StateAttribute.UPDATED_AT,
    }
    paginator = stack.dynamodb().get_paginator("scan")
    for page in paginator.paginate(
        TableName=pipeline.table_name,
        ProjectionExpression=", ".join(names),
        ExpressionAttributeNames=names,
    ):
        for item in page.get("Items", []):
            status = item.get(StateAttribute.STATUS, {}).get("S", "UNKNOWN")
            counts[status] += 1
            offset = item.get(StateAttribute.RESUME_OFFSET, {}).get("N")
            if status == FileStatus.PROCESSING and offset is not None:
                in_progress.append(
                    {
                        "file": item.get(StateAttribute.PK, {}).get("S", ""),
                        "resumeOffset": int(offset),
                        "continuations": int(item.get(StateAttribute.CONTINUATIONS, {}).get("N", "0")),
                        "at": item.get(StateAttribute.UPDATED_AT, {}).get("S", ""),
                    }
                )
    ordered = {
        status: counts.get(status, 0) for status in [*FileStatus, *sorted(set(counts) - set(FileStatus))]
    }
    return ordered, sorted(in_progress, key=lambda entry: str(entry["file"]))


def recent_failures(stack: Stack, pipeline: Pipeline, limit: int = RECENT_FAILURES) -> list[dict[str, str]]:
    """The latest FAILED files, newest first, from the sparse ``needs-attention`` index."""
    if not pipeline.table_name:
        return []
    response = stack.dynamodb().query(
        TableName=pipeline.table_name,
        IndexName=ATTENTION_INDEX,
        KeyConditionExpression="#attention = :failed",
        ExpressionAttributeNames={"#attention": StateAttribute.ATTENTION},
        ExpressionAttributeValues={":failed": {"S": FileStatus.FAILED}},
        ScanIndexForward=False,
        Limit=limit,
    )
    failures = []
    for item in response.get("Items", []):
        failures.append(
            {
                "file": item.get(StateAttribute.PK, {}).get("S", ""),
                "errorType": item.get(StateAttribute.ERROR_TYPE, {}).get("S", ""),
                "reason": item.get(StateAttribute.ERROR, {}).get("S", ""),
                "at": item.get(StateAttribute.UPDATED_AT, {}).get("S", ""),
            }
        )
    return failures


def pipeline_status(stack: Stack, pipeline: Pipeline) -> dict[str, Any]:
    queue = queue_depth(stack, pipeline.queue_url)
    counts, in_progress = file_census(stack, pipeline)
    dlq = queue_depth(stack, pipeline.dlq_url)
    return {
        "queue": {
            "visible": queue.visible,
            "inFlight": queue.in_flight,
            "delayed": queue.delayed,
            "oldestAgeSeconds": oldest_message_age(stack, pipeline.queue_url),
        },
        "dlq": {"visible": dlq.visible, "inFlight": dlq.in_flight},
        "mapping": mapping_summary(stack, pipeline),
        "breaker": breaker_status(stack, pipeline),
        "alarms": alarm_states(stack, pipeline),
        "files": counts,
        "inProgress": in_progress,
        "recentFailures": recent_failures(stack, pipeline),
    }


def _status(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipelines = stack.select(args.pipelines)
    report = {pipeline.name: pipeline_status(stack, pipeline) for pipeline in pipelines}
    if out.as_json:
        out.document({"stack": stack.name, "where": stack.where, "pipelines": report})
        return 0
    out.console.print(f"stack [bold]{stack.name}[/] on {stack.where}")
    for name, status in report.items():
        out.console.print(_render(name, status))
    return 0


def _render(name: str, status: dict[str, Any]) -> Table:
    queue, dlq, mapping = status["queue"], status["dlq"], status["mapping"]
    table = Table(title=f"[bold]{name}[/]", title_justify="left", show_header=False, box=None, padding=(0, 2))
    # Text wraps between words; a word too long for the terminal (a key) is cut with an ellipsis, not
    # broken in two (``--json`` has it whole).
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="ellipsis")
    age = queue["oldestAgeSeconds"]
    table.add_row(
        "queue",
        f"{queue['visible']} waiting, {queue['inFlight']} in flight"
        + (f", oldest {age:.0f} s" if age is not None else ""),
    )
    dlq_style = "bold red" if dlq["visible"] else "green"
    table.add_row("dead-letter queue", f"[{dlq_style}]{dlq['visible']} parked[/]")
    mapping_style = "green" if mapping["state"] == "Enabled" else "bold yellow"
    table.add_row("processing", f"[{mapping_style}]{mapping['state']}[/]")
    if (breaker := status["breaker"]) is not None:
        breaker_style = {"CLOSED": "green", "OPEN": "bold red"}.get(breaker["state"], "bold yellow")
        table.add_row(
            "circuit breaker", f"[{breaker_style}]{breaker['state']}[/] since {breaker['since'] or '-'}"
        )
        for entry in breaker["history"][-3:][::-1]:
            table.add_row("", f"{entry['at']} {entry['from']} → {entry['to']}: {entry['reason'][:100]}")
    for alarm, state in status["alarms"].items():
        style = {"OK": "green", "ALARM": "bold red"}.get(state, "yellow")
        table.add_row("alarm", f"[{style}]{state}[/] {alarm}")
    files = ", ".join(f"{count} {state.lower()}" for state, count in status["files"].items() if count)
    table.add_row("files", files or "none recorded")
    for entry in status.get("inProgress", [])[:RECENT_FAILURES]:
        table.add_row(
            "in progress",
            f"{escape(entry['file'])} resumes at byte {entry['resumeOffset']:,}"
            f" ({entry['continuations']} invocation(s) so far)",
        )
    for failure in status["recentFailures"]:
        table.add_row(
            "failed",
            f"{escape(failure['file'])} [red]{escape(failure['errorType'])}[/]: {escape(failure['reason'][:120])}",
        )
    return table
