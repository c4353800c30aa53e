"""``filepipe breaker status|open|close PIPELINE``: the circuit breaker by hand.

The command runs the breaker function's own code (``filepipe.handler.breaker``) with the operator's
credentials and the function's settings (read from its configuration), so a transition by hand is the
same as one by the breaker: recorded in its history, alerted on the pipeline's topic, and the mapping
switched and waited for. Opened by hand the breaker stays open (no automatic probing) until closed by
hand or by ``filepipe resume``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from filepipe.cli.ops.command import EXIT_FAILED, Output, add_json_argument, ops_command
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments
from filepipe.handler.breaker import Breaker, BreakerSettings, read_status
from filepipe.handler.settings import BreakerState


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("breaker", help="the circuit breaker: status, open or close it by hand")
    parser.add_argument("action", choices=("status", "open", "close"))
    parser.add_argument("pipelines", nargs="+", metavar="PIPELINE")
    parser.add_argument("--reason", default=None, help="recorded in the breaker's history and alert")
    add_json_argument(parser)
    add_stack_arguments(parser)
    parser.set_defaults(command=ops_command(_run))


def has_breaker(pipeline: Pipeline) -> bool:
    return bool(pipeline.breaker_table_name)


def breaker_status(stack: Stack, pipeline: Pipeline) -> dict[str, Any] | None:
    """The breaker's state and latest transitions (``None``: the pipeline has no breaker)."""
    if not has_breaker(pipeline):
        return None
    return read_status(stack.dynamodb(), pipeline.breaker_table_name).as_dict()


def breaker_for(stack: Stack, pipeline: Pipeline) -> Breaker:
    """The breaker with the settings its function runs with."""
    if not has_breaker(pipeline):
        raise OpsError(f"pipeline {pipeline.name} has no circuit breaker (circuit_breaker is not set)")
    configuration = stack.lambda_().get_function_configuration(FunctionName=pipeline.breaker_function_name)
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    return Breaker(
        BreakerSettings.from_env(variables),
        lambda_client=stack.lambda_(),
        dynamodb=stack.dynamodb(),
        sns=stack.sns(),
        cloudwatch=stack.cloudwatch(),
    )


def close_breaker(stack: Stack, pipeline: Pipeline, reason: str) -> None:
    """Close the breaker if there is one and it is not closed (``filepipe resume`` does this too)."""
    status = breaker_status(stack, pipeline)
    if status is not None and status["state"] != BreakerState.CLOSED:
        breaker_for(stack, pipeline).close(reason)


def _run(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipelines = stack.select(args.pipelines)
    missing = [pipeline.name for pipeline in pipelines if not has_breaker(pipeline)]
    if missing:
        raise OpsError(f"no circuit breaker on {', '.join(missing)} (circuit_breaker is not set)")
    report: dict[str, Any] = {}
    for pipeline in pipelines:
        if args.action == "open":
            breaker_for(stack, pipeline).open(args.reason or "opened by hand", held=True)
        elif args.action == "close":
            breaker_for(stack, pipeline).close(args.reason or "closed by hand")
        report[pipeline.name] = breaker_status(stack, pipeline)
    if out.as_json:
        out.document({"pipelines": report})
    else:
        for name, status in report.items():
            out.console.print(render(name, status))
    wanted = {"open": BreakerState.OPEN, "close": BreakerState.CLOSED}.get(args.action)
    settled = wanted is None or all(status["state"] == wanted for status in report.values())
    return 0 if settled else EXIT_FAILED


def render(name: str, status: dict[str, Any], transitions: int = 5) -> Table:
    table = Table(title=f"[bold]{name}[/] circuit breaker", title_justify="left", show_header=False, box=None)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="ellipsis")  # wraps between words; a word too long is cut, not broken
    style = {"CLOSED": "green", "OPEN": "bold red"}.get(status["state"], "bold yellow")
    held = " (held open by hand)" if status["held"] else ""
    table.add_row("state", f"[{style}]{status['state']}[/]{held} since {status['since'] or 'deployment'}")
    for entry in status["history"][-transitions:][::-1]:
        table.add_row(entry["at"], f"{entry['from']} → {entry['to']}: {entry['reason'][:120]}")
    return table
