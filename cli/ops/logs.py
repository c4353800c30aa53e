"""``filepipe logs PIPELINE [--since 10m] [--follow] [--filter TEXT]``: the function's log events.

Read from the function's log group (a stack output) with ``FilterLogEvents``, the same against AWS and
the local endpoint (where the local runtime ships the handler's log lines to the same group). The
handler logs one JSON object per line (Powertools); people get ``time level message key=value…``,
scripts get each event as one JSON line (``--json``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rich.markup import escape

from filepipe.cli.ops.command import Output, add_json_argument, ops_command
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments

DEFAULT_SINCE: Final = "10m"
FOLLOW_POLL_SECONDS: Final = 2.0
"""CloudWatch Logs makes events searchable within seconds; polling faster only costs API calls."""
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_LEVEL_STYLE: Final = {"ERROR": "bold red", "CRITICAL": "bold red", "WARNING": "yellow", "DEBUG": "dim"}
_SHOWN_FIELDS: Final = ("key", "error_type", "reason", "records", "output_key")
"""Fields of the handler's JSON lines worth a glance next to the message."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("logs", help="the pipeline function's log events")
    parser.add_argument("pipeline", metavar="PIPELINE")
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help=f"how far back: 30s, 10m, 2h, 1d or an ISO-8601 time (default {DEFAULT_SINCE})",
    )
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events (Ctrl-C stops)")
    parser.add_argument(
        "--filter",
        metavar="TEXT",
        help='only events containing TEXT (or a CloudWatch Logs filter pattern: {…}, [...] or "...")',
    )
    add_json_argument(parser)
    add_stack_arguments(parser)
    parser.set_defaults(command=ops_command(_logs))


def parse_since(value: str, now: datetime) -> datetime:
    """``10m`` → ten minutes before ``now``; an ISO-8601 time as given (UTC when it has no zone)."""
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise OpsError(f"--since {value!r}: expected e.g. 30s, 10m, 2h, 1d or an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def filter_pattern(text: str | None) -> str | None:
    """Plain text becomes a quoted term (so spaces, dots and dashes match literally); a pattern is kept."""
    if not text:
        return None
    if text.startswith(("{", "[", '"')):
        return text
    return '"' + text.replace('"', '\\"') + '"'


def log_events(
    stack: Stack, pipeline: Pipeline, start_ms: int, pattern: str | None
) -> Iterator[dict[str, Any]]:
    """Every event since ``start_ms`` (all pages), oldest first."""
    kwargs: dict[str, Any] = {"logGroupName": pipeline.log_group_name, "startTime": start_ms}
    if pattern:
        kwargs["filterPattern"] = pattern
    paginator = stack.logs().get_paginator("filter_log_events")
    events: list[dict[str, Any]] = []
    for page in paginator.paginate(**kwargs):
        events.extend(dict(event) for event in page.get("events", []))
    events.sort(key=lambda event: (event.get("timestamp", 0), event.get("eventId", "")))
    yield from events


def _logs(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    start_ms = int(parse_since(args.since, datetime.now(UTC)).timestamp() * 1000)
    pattern = filter_pattern(args.filter)
    seen: dict[str, int] = {}
    """Event ids already printed with their timestamps: the next poll starts at the newest timestamp
    (events of the same millisecond may still arrive), so only those can come again."""
    try:
        while True:
            for event in log_events(stack, pipeline, start_ms, pattern):
                event_id = str(event.get("eventId", ""))
                if event_id in seen:
                    continue
                timestamp = int(event.get("timestamp", 0))
                seen[event_id] = timestamp
                start_ms = max(start_ms, timestamp)
                _print(out, event)
            if not args.follow:
                return 0
            seen = {event_id: at for event_id, at in seen.items() if at >= start_ms}
            time.sleep(FOLLOW_POLL_SECONDS)
    except KeyboardInterrupt:
        return 0  # how --follow ends


def _print(out: Output, event: dict[str, Any]) -> None:
    message = str(event.get("message", "")).rstrip("\n")
    if out.as_json:
        document = {
            "timestamp": event.get("timestamp"),
            "logStream": event.get("logStreamName"),
            "message": message,
        }
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()
        return
    moment = datetime.fromtimestamp(int(event.get("timestamp", 0)) / 1000, UTC)
    stamp = moment.strftime("%Y-%m-%d %H:%M:%S")
    try:
        line = json.loads(message)
    except ValueError:
        line = None
    if not isinstance(line, dict):
        out.console.print(f"[dim]{stamp}[/] {escape(message)}", soft_wrap=True)
        return
    level = str(line.get("level", "INFO"))
    fields = " ".join(f"{name}={line[name]}" for name in _SHOWN_FIELDS if line.get(name) is not None)
    style = _LEVEL_STYLE.get(level, "")
    level_text = f"[{style}]{level:<5}[/]" if style else f"{level:<5}"
    out.console.print(
        f"[dim]{stamp}[/] {level_text} {escape(str(line.get('message', '')))} [dim]{escape(fields)}[/]",
        soft_wrap=True,
    )
