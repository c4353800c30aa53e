"""``filepipe pause PIPELINE`` / ``filepipe resume PIPELINE``: stop and restart processing.

Pausing disables the pipeline's event source mapping: files keep arriving and wait in the queue (for
the queue's retention period), nothing is lost and nothing counts towards the DLQ. Lambda applies the
change asynchronously (``Disabling`` before ``Disabled``: batches already received still finish), so
the command waits until the mapping reports the new state. Resuming also closes the pipeline's circuit
breaker, if it has one that is open: otherwise the breaker would switch the mapping off again.
"""

from __future__ import annotations

import argparse
import time
from typing import Final

from filepipe.cli.ops.breaker import close_breaker
from filepipe.cli.ops.command import EXIT_FAILED, OpsRun, Output, add_json_argument, ops_command
from filepipe.cli.ops.stack import Pipeline, Stack, add_stack_arguments

DEFAULT_WAIT_SECONDS: Final = 300
"""Lambda usually settles within a minute; a mapping still changing after five is worth a look."""
POLL_SECONDS: Final = 1.0


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, enabled, help_text in (
        ("pause", False, "stop processing: files wait in the queue (disables the event source mapping)"),
        ("resume", True, "start processing again (enables the event source mapping)"),
    ):
        parser = groups.add_parser(name, help=help_text)
        parser.add_argument("pipelines", nargs="+", metavar="PIPELINE")
        parser.add_argument(
            "--wait-seconds",
            type=float,
            default=DEFAULT_WAIT_SECONDS,
            help=f"how long to wait for the mapping's new state (default {DEFAULT_WAIT_SECONDS}; 0: do not wait)",
        )
        add_json_argument(parser)
        add_stack_arguments(parser)
        parser.set_defaults(command=ops_command(_switch(enabled)))


def mapping_state(stack: Stack, pipeline: Pipeline) -> str:
    mapping = stack.lambda_().get_event_source_mapping(UUID=pipeline.event_source_mapping_id)
    return str(mapping.get("State", "Unknown"))


def set_enabled(stack: Stack, pipeline: Pipeline, enabled: bool) -> str:
    """Ask Lambda to enable or disable the mapping; returns the state it reports right after."""
    response = stack.lambda_().update_event_source_mapping(
        UUID=pipeline.event_source_mapping_id, Enabled=enabled
    )
    return str(response.get("State", "Unknown"))


def wait_for_state(stack: Stack, pipeline: Pipeline, wanted: str, timeout: float) -> str:
    """Poll until the mapping reports ``wanted`` or ``timeout`` passes; returns the last state seen."""
    deadline = time.monotonic() + timeout
    state = mapping_state(stack, pipeline)
    while state != wanted and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        state = mapping_state(stack, pipeline)
    return state


def _switch(enabled: bool) -> OpsRun:
    wanted = "Enabled" if enabled else "Disabled"
    verb = "resumed" if enabled else "paused"

    def run(args: argparse.Namespace, stack: Stack, out: Output) -> int:
        pipelines = stack.select(args.pipelines)
        results: dict[str, dict[str, str]] = {}
        for pipeline in pipelines:
            before = mapping_state(stack, pipeline)
            if enabled:
                close_breaker(stack, pipeline, "closed by filepipe resume")
            set_enabled(stack, pipeline, enabled)
            if args.wait_seconds > 0:
                with out.progress.status(f"{pipeline.name}: waiting for the mapping to be {wanted}…"):
                    state = wait_for_state(stack, pipeline, wanted, args.wait_seconds)
            else:
                state = mapping_state(stack, pipeline)
            results[pipeline.name] = {"previous": before, "state": state}
            if not out.as_json:
                if state == wanted:
                    out.console.print(f"{pipeline.name}: [bold]{verb}[/] (mapping {before} → {state})")
                else:
                    out.console.print(
                        f"[bold red]{pipeline.name}:[/] the mapping is still {state} after "
                        f"{args.wait_seconds:g} s (asked for {wanted}); check again with `filepipe status`"
                    )
        if out.as_json:
            out.document({"pipelines": results})
        settled = all(result["state"] == wanted or args.wait_seconds <= 0 for result in results.values())
        return 0 if settled else EXIT_FAILED

    return run
