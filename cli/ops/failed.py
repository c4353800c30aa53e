"""``filepipe failed list|show|export|retry|purge PIPELINE``: the files a pipeline parked in its DLQ.

Reading the DLQ leaves it as it was (see :mod:`.parked`), except that SQS counts each read as a receive:
the "DLQ reads" column grows by one per listing. How often the file itself was tried is the state
table's ``attempts``.

``retry`` puts parked messages back on the source queue, a batch of ten at a time, by the replay rule
(docs/architecture.md: requeue each file, send, then delete the DLQ copy); why not SQS's own redrive
task is said there too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.prompt import Confirm
from rich.table import Table

from filepipe.cli.ops.command import EXIT_FAILED, EXIT_UNUSABLE, Output, add_json_argument, ops_command
from filepipe.cli.ops.parked import (
    DlqReader,
    ParkedMessage,
    Retried,
    file_states,
    read_parked,
    retry_batch,
    states_of,
)
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments
from filepipe.cli.ops.status import queue_depth
from filepipe.handler.settings import StateAttribute

PURGE_DELAY_SECONDS: Final = 60
"""SQS deletes a purged queue's messages within this time."""
REASON_CHARS: Final = 100


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    failed = groups.add_parser(
        "failed", help="files parked in a pipeline's DLQ: list, show, export, retry, purge"
    )
    commands = failed.add_subparsers(dest="failed_command", metavar="<command>", required=True)

    def command(name: str, help_text: str, run: Any, *, json_output: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("pipeline", metavar="PIPELINE")
        if json_output:
            add_json_argument(parser)
        add_stack_arguments(parser)
        parser.set_defaults(command=ops_command(run))
        return parser

    command(
        "list",
        "every parked message: source key, error type, reason, attempts, the file's state "
        "(reading counts as a DLQ receive: the receive counts grow by one per listing)",
        _list,
    )
    show = command("show", "one parked message in full: attributes, body, the file's state-table row", _show)
    show.add_argument("message_id", metavar="ID", help="the message id (or a unique start of it)")
    export = command("export", "write every parked message as JSON lines (keep them before a purge)", _export)
    export.add_argument("file", type=Path, metavar="FILE", help="where to write (- for stdout)")
    retry = command(
        "retry",
        "put parked messages back on the source queue (all, or those matching the filters): each file's "
        "state is reset first so it is processed once; an interrupted retry is resumed by running it again",
        _retry,
    )
    retry.add_argument("--error-type", metavar="T", help="only messages parked with this error type")
    retry.add_argument(
        "--key", metavar="GLOB", help="only messages whose source key matches (fnmatch: * ? [])"
    )
    retry.add_argument("--dry-run", action="store_true", help="list what would be retried; change nothing")
    retry.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")
    purge = command(
        "purge", "delete every parked message (asks first; export them before)", _purge, json_output=False
    )
    purge.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")


ID_CHARS: Final = 8
"""Message ids are shown this short to people; ``show`` takes any unique start of one."""


def _key(message: ParkedMessage, pipeline: Pipeline | None = None) -> str:
    """The message's source keys, relative to the pipeline's input prefix when given."""
    keys = message.keys
    if pipeline is not None and pipeline.input_prefix:
        keys = [key.removeprefix(pipeline.input_prefix) for key in keys]
    return ", ".join(keys) or "(not an S3 event)"


def _states(states: list[dict[str, Any]], attribute: str) -> str:
    return ", ".join(str(state.get(attribute, "")) for state in states) or "-"


def _messages_table(
    title: str, pipeline: Pipeline, messages: list[ParkedMessage], rows: dict[str, dict[str, Any]]
) -> Table:
    table = Table(title=title, title_justify="left", caption_justify="left")
    table.caption = f"keys under {pipeline.input_prefix}" if pipeline.input_prefix else None
    table.add_column("id", no_wrap=True)
    table.add_column("source key", overflow="fold", ratio=2)
    table.add_column("error", overflow="fold", ratio=3)
    table.add_column("attempts", justify="right")
    table.add_column("DLQ reads", justify="right")
    table.add_column("state")
    for message in messages:
        states = states_of(message, rows)
        reason = (
            message.reason if len(message.reason) <= REASON_CHARS else message.reason[:REASON_CHARS] + "…"
        )
        table.add_row(
            message.message_id[:ID_CHARS],
            escape(_key(message, pipeline)),
            f"[red]{message.error_type or '-'}[/]\n[dim]{escape(reason)}[/]",
            _states(states, StateAttribute.ATTEMPTS),
            str(message.receive_count),
            _states(states, StateAttribute.STATUS),
        )
    return table


def _list(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    messages = read_parked(stack, pipeline)
    rows = file_states(stack, pipeline, messages)
    if out.as_json:
        out.document(
            {
                "pipeline": pipeline.name,
                "dlqUrl": pipeline.dlq_url,
                "count": len(messages),
                "messages": [message.document(states_of(message, rows)) for message in messages],
            }
        )
        return 0
    if not messages:
        out.console.print(f"[green]nothing parked[/] in the DLQ of {pipeline.name}")
        return 0
    files = len({key for message in messages for key in message.keys})
    out.console.print(
        _messages_table(
            f"[bold]{pipeline.name}[/]: {len(messages)} parked message(s), {files} file(s)",
            pipeline,
            messages,
            rows,
        )
    )
    out.console.print(
        f"[dim]retry: filepipe failed retry {pipeline.name} [--error-type T] [--key GLOB]; "
        f"details: filepipe failed show {pipeline.name} ID[/]"
    )
    return 0


def _show(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    wanted: str = args.message_id
    messages = read_parked(stack, pipeline)
    found = [message for message in messages if message.message_id == wanted] or [
        message for message in messages if message.message_id.startswith(wanted)
    ]
    if len(found) != 1:
        why = "no" if not found else f"{len(found)} messages match"
        raise OpsError(f"{why} message {wanted} in the DLQ of {pipeline.name}")
    [message] = found
    document = message.document(states_of(message, file_states(stack, pipeline, found)))
    if out.as_json:
        out.document(document)
        return 0
    table = Table(title=f"[bold]{message.message_id}[/]", title_justify="left", show_header=False, box=None)
    table.add_column(style="dim")
    table.add_column(overflow="fold")
    table.add_row("pipeline", pipeline.name)
    table.add_row("parked at", message.parked_at)
    table.add_row("source", escape(f"s3://{message.bucket}/{_key(message)}"))
    table.add_row("error type", f"[red]{message.error_type or '-'}[/]")
    table.add_row("reason", escape(message.reason or "-"))
    table.add_row("DLQ receives", str(message.receive_count))
    for name, value in sorted(message.attributes.items()):
        table.add_row(name, escape(value))
    for state in document["state"]:
        table.add_row("state", escape(json.dumps(state, sort_keys=True)))
    out.console.print(table)
    out.console.print("[dim]body[/]")
    try:
        out.console.print_json(message.body)
    except ValueError:
        out.console.print(escape(message.body))
    return 0


def _export(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    messages = read_parked(stack, pipeline)
    rows = file_states(stack, pipeline, messages)
    lines = "".join(
        json.dumps(message.document(states_of(message, rows)), default=str) + "\n" for message in messages
    )
    target: Path = args.file
    if str(target) == "-":
        sys.stdout.write(lines)
        return 0
    try:
        target.write_text(lines, encoding="utf-8")
    except OSError as error:
        raise OpsError(f"cannot write {target}: {error.strerror or error}") from None
    if out.as_json:
        out.document({"pipeline": pipeline.name, "file": str(target), "count": len(messages)})
    else:
        out.console.print(f"exported {len(messages)} parked messages of {pipeline.name} to {target}")
    return 0


def _confirmed(out: Output, question: str, yes: bool, what: str) -> bool:
    """``--yes``, or a person said yes; without a terminal nothing is asked (and nothing done)."""
    if yes:
        return True
    if not (sys.stdin.isatty() and out.console.is_terminal):
        out.progress.print(f"[bold yellow]nothing {what}:[/] no terminal to ask; pass --yes to confirm")
        return False
    return Confirm.ask(question, console=out.console, default=False)


def _retry(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    error_type: str | None = args.error_type
    key_glob: str | None = args.key
    confirmed_ids: set[str] | None = None
    if args.dry_run or not args.yes:
        matching = [
            message for message in read_parked(stack, pipeline) if message.matches(error_type, key_glob)
        ]
        if args.dry_run:
            return _print_planned(out, pipeline, matching, stack)
        if not matching:
            out.console.print(f"nothing to retry in the DLQ of {pipeline.name}")
            return 0
        out.console.print(
            _messages_table("to retry", pipeline, matching, file_states(stack, pipeline, matching))
        )
        if not _confirmed(
            out, f"put {len(matching)} messages back on the queue of {pipeline.name}?", args.yes, "retried"
        ):
            return EXIT_UNUSABLE
        confirmed_ids = {message.message_id for message in matching}
    results = _retry_matching(stack, pipeline, out, error_type, key_glob, confirmed_ids)
    left = [result for result in results if not result.sent]
    if out.as_json:
        out.document(
            {
                "pipeline": pipeline.name,
                "retried": len(results) - len(left),
                "left": len(left),
                "messages": [
                    {
                        "messageId": r.message.message_id,
                        "keys": r.message.keys,
                        "sent": r.sent,
                        "notes": r.notes,
                    }
                    for r in results
                ],
            }
        )
    else:
        for result in left:
            out.console.print(
                f"[yellow]left in the DLQ[/] {escape(_key(result.message, pipeline))}: {escape('; '.join(result.notes))}"
            )
        out.console.print(
            f"retried {len(results) - len(left)} of {len(results)} messages of {pipeline.name}"
            + (f"; {len(left)} left in the DLQ (run the retry again)" if left else "")
        )
    return EXIT_FAILED if left else 0


def _print_planned(out: Output, pipeline: Pipeline, matching: list[ParkedMessage], stack: Stack) -> int:
    rows = file_states(stack, pipeline, matching)
    if out.as_json:
        out.document(
            {
                "pipeline": pipeline.name,
                "dryRun": True,
                "count": len(matching),
                "messages": [message.document(states_of(message, rows)) for message in matching],
            }
        )
    elif matching:
        out.console.print(
            _messages_table(f"would retry {len(matching)} messages (dry run)", pipeline, matching, rows)
        )
    else:
        out.console.print(f"nothing to retry in the DLQ of {pipeline.name} (dry run)")
    return 0


def _retry_matching(
    stack: Stack,
    pipeline: Pipeline,
    out: Output,
    error_type: str | None,
    key_glob: str | None,
    only: set[str] | None,
) -> list[Retried]:
    reader = DlqReader(stack.sqs(), pipeline.dlq_url)
    results: list[Retried] = []
    total = len(only) if only is not None else queue_depth(stack, pipeline.dlq_url).visible
    columns = (TextColumn("retrying"), BarColumn(), MofNCompleteColumn())
    with Progress(
        *columns, console=out.progress, disable=out.as_json or not out.progress.is_terminal
    ) as progress:
        task = progress.add_task("retry", total=total or None)
        try:
            for page in reader.pages():
                chosen = [
                    message
                    for message in page
                    if message.matches(error_type, key_glob) and (only is None or message.message_id in only)
                ]
                if chosen:
                    results.extend(retry_batch(stack, pipeline, reader, chosen))
                progress.advance(task, len(chosen))
        finally:
            # Messages not chosen (and any not deleted) go back to the DLQ as they were.
            reader.release()
    return results


def _purge(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    parked = queue_depth(stack, pipeline.dlq_url)
    count = parked.visible + parked.in_flight
    question = (
        f"delete all {count} parked messages of {pipeline.name} for good? "
        f"(keep them first: filepipe failed export {pipeline.name} FILE)"
    )
    if not _confirmed(out, question, args.yes, "purged"):
        return EXIT_UNUSABLE
    stack.sqs().purge_queue(QueueUrl=pipeline.dlq_url)
    out.console.print(
        f"purging the DLQ of {pipeline.name} ({count} messages): SQS deletes them within {PURGE_DELAY_SECONDS} s"
    )
    return 0
