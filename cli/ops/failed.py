"""``filepipe failed list|show|export|retry|purge PIPELINE``: the files a pipeline parked in its DLQ.

Reading the DLQ leaves it as it was (see :mod:`.parked`), except that SQS counts each read as a receive:
the "DLQ reads" column grows by one per listing. How often the file itself was tried is the state
table's ``attempts``.

``retry`` puts parked messages back on the source queue, a batch of ten at a time, by the replay rule
(docs/architecture.md: requeue each file, send, then delete the DLQ copy); why not SQS's own redrive
task is said there too. It acts on a snapshot: the messages parked when it began, read to a list before
the first is sent back. A file that fails again is parked again by the pipeline as a new message, which
this run never reads; so each message is sent back at most once per run and the run ends.
``--wait`` then follows each retried file in the state table until it is processed or parked again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Final

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.prompt import Confirm
from rich.table import Table

from filepipe.cli.ops.command import EXIT_FAILED, EXIT_UNUSABLE, Output, add_json_argument, ops_command
from filepipe.cli.ops.parked import (
    SQS_BATCH,
    DlqReader,
    ParkedMessage,
    ParkedSnapshot,
    Retried,
    file_states,
    iso_ms,
    read_parked,
    retry_batch,
    states_of,
)
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments
from filepipe.cli.ops.status import queue_depth
from filepipe.handler.events import ObjectRef
from filepipe.handler.settings import FileStatus, StateAttribute

PURGE_DELAY_SECONDS: Final = 60
"""SQS deletes a purged queue's messages within this time."""
REASON_CHARS: Final = 100
ERROR_TYPE_CHARS: Final = 24
"""The most the error column keeps for an error type when the terminal is narrow (longer: an ellipsis)."""
WAIT_TIMEOUT_SECONDS: Final = 900
"""``retry --wait`` gives up after this long by default: a file's retries (with backoff) end well before."""
WAIT_POLL_SECONDS: Final = 1.0


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
    retry.add_argument(
        "--wait",
        action="store_true",
        help="then wait until each retried file is processed or parked again, and report it per file",
    )
    retry.add_argument(
        "--timeout",
        type=_seconds,
        default=WAIT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"how long --wait waits (default {WAIT_TIMEOUT_SECONDS})",
    )
    purge = command(
        "purge", "delete every parked message (asks first; export them before)", _purge, json_output=False
    )
    purge.add_argument("--yes", action="store_true", help="do not ask (needed without a terminal)")


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return seconds


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
    """Fits the terminal without breaking a word: an error type or a key split over two lines reads as
    two words, so one too long for its column is cut with an ellipsis (the reason wraps between words).
    The full text is in ``--json`` and ``failed show``."""
    table = Table(title=title, title_justify="left", caption_justify="left")
    table.caption = f"keys under {pipeline.input_prefix}" if pipeline.input_prefix else None
    table.add_column("id", no_wrap=True, min_width=ID_CHARS)
    table.add_column("source key", overflow="ellipsis", min_width=10)
    # The error type is what people scan for: its column keeps room for the longest one shown.
    longest_type = max((len(message.error_type) for message in messages), default=0)
    table.add_column("error", overflow="ellipsis", min_width=min(max(longest_type, 12), ERROR_TYPE_CHARS))
    # Short headers leave the width to the key and the error: "tries" is the file's attempts (the state
    # table's), "reads" the DLQ message's receives.
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("reads", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True, overflow="ellipsis")
    for message in messages:
        states = states_of(message, rows)
        reason = (
            message.reason if len(message.reason) <= REASON_CHARS else message.reason[:REASON_CHARS] + "…"
        )
        table.add_row(
            message.message_id[:ID_CHARS],
            escape(_key(message, pipeline)),
            f"[red]{escape(message.error_type) or '-'}[/]\n[dim]{escape(reason)}[/]",
            _states(states, StateAttribute.ATTEMPTS),
            str(message.receive_count),
            _states(states, StateAttribute.STATUS),
        )
    return table


def _parked_since_note(pipeline: Pipeline, snapshot: ParkedSnapshot) -> str:
    if not snapshot.parked_since:
        return ""
    return (
        f"[dim]{snapshot.parked_since} more message(s) parked in the DLQ of {pipeline.name} while it was "
        "read: not included (run the command again to see them)[/]"
    )


def _files(messages: list[ParkedMessage]) -> int:
    """How many files ``messages`` name (a file parked twice is one file)."""
    return len({(message.bucket, key) for message in messages for key in message.keys})


def _list(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    snapshot = read_parked(stack, pipeline)
    messages = snapshot.messages
    rows = file_states(stack, pipeline, messages)
    if out.as_json:
        out.document(
            {
                "pipeline": pipeline.name,
                "dlqUrl": pipeline.dlq_url,
                "count": len(messages),
                "files": _files(messages),
                "parkedBy": iso_ms(snapshot.parked_by),
                "parkedSince": snapshot.parked_since,
                "messages": [message.document(states_of(message, rows)) for message in messages],
            }
        )
        return 0
    if not messages:
        out.console.print(f"[green]nothing parked[/] in the DLQ of {pipeline.name}")
    else:
        out.console.print(
            _messages_table(
                f"[bold]{pipeline.name}[/]: {len(messages)} parked message(s), {_files(messages)} file(s)",
                pipeline,
                messages,
                rows,
            )
        )
        out.console.print(
            f"[dim]retry: filepipe failed retry {pipeline.name} [--error-type T] [--key GLOB]; "
            f"details: filepipe failed show {pipeline.name} ID[/]"
        )
    if note := _parked_since_note(pipeline, snapshot):
        out.console.print(note)
    return 0


def _show(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    wanted: str = args.message_id
    messages = read_parked(stack, pipeline).messages
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
    table.add_column(style="dim", no_wrap=True)
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
    snapshot = read_parked(stack, pipeline)
    messages = snapshot.messages
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
        out.document(
            {
                "pipeline": pipeline.name,
                "file": str(target),
                "count": len(messages),
                "parkedBy": iso_ms(snapshot.parked_by),
                "parkedSince": snapshot.parked_since,
            }
        )
    else:
        out.console.print(f"exported {len(messages)} parked messages of {pipeline.name} to {target}")
        if note := _parked_since_note(pipeline, snapshot):
            out.console.print(note)
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
    if args.wait and not pipeline.table_name:
        raise OpsError(f"--wait follows files in the state table; pipeline {pipeline.name} keeps none")
    confirmed_ids: set[str] | None = None
    if args.dry_run or not args.yes:
        matching = [
            message
            for message in read_parked(stack, pipeline).messages
            if message.matches(error_type, key_glob)
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
    results, parked_since = _retry_snapshot(stack, pipeline, out, error_type, key_glob, confirmed_ids)
    sent = [result.message for result in results if result.sent]
    left = [result for result in results if not result.sent]
    outcomes, rows = _wait_for_files(stack, pipeline, out, sent, args.timeout) if args.wait else (None, {})
    pending = [ref for ref, outcome in (outcomes or {}).items() if outcome is None]
    if out.as_json:
        document: dict[str, Any] = {
            "pipeline": pipeline.name,
            "selected": len(results),
            "retried": len(sent),
            "left": len(left),
            "files": _files([result.message for result in results]),
            "parkedSince": parked_since,
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
        if outcomes is not None:
            document["outcomes"] = [
                {
                    "bucket": ref.bucket,
                    "key": ref.key,
                    "outcome": outcome or "pending",
                    "errorType": _error_type(outcome, rows.get(ref.state_pk)),
                }
                for ref, outcome in outcomes.items()
            ]
            document["parkedAgain"] = sum(1 for outcome in outcomes.values() if outcome == PARKED_AGAIN)
        out.document(document)
    else:
        _print_retried(out, pipeline, results, parked_since, outcomes, rows)
    return EXIT_FAILED if left or pending else 0


def _print_retried(
    out: Output,
    pipeline: Pipeline,
    results: list[Retried],
    parked_since: int,
    outcomes: dict[ObjectRef, str | None] | None,
    rows: dict[str, dict[str, Any]],
) -> None:
    left = [result for result in results if not result.sent]
    for result in left:
        out.console.print(
            f"[yellow]left in the DLQ[/] {escape(_key(result.message, pipeline))}: "
            f"{escape('; '.join(result.notes))}"
        )
    files = _files([result.message for result in results])
    out.console.print(
        f"retried {len(results) - len(left)} of {len(results)} messages ({files} files) of {pipeline.name}"
        + (f"; {len(left)} left in the DLQ (run the retry again)" if left else "")
    )
    if parked_since:
        out.console.print(
            f"[dim]{parked_since} message(s) parked after the retry began were left in the DLQ[/]"
        )
    if outcomes is None:
        return
    styles = {PROCESSED: "green", PARKED_AGAIN: "red", SUPERSEDED: "dim"}
    for ref, outcome in outcomes.items():
        shown = outcome or "pending"
        key = escape(ref.key.removeprefix(pipeline.input_prefix))
        error_type = _error_type(outcome, rows.get(ref.state_pk))
        why = f" ({escape(error_type)})" if error_type else ""
        out.console.print(f"  [{styles.get(shown, 'yellow')}]{shown}[/] {key}{why}", soft_wrap=True)
    counts = {name: sum(1 for outcome in outcomes.values() if outcome == name) for name in styles}
    pending = sum(1 for outcome in outcomes.values() if outcome is None)
    out.console.print(
        f"{counts[PROCESSED]} processed, {counts[PARKED_AGAIN]} parked again, {counts[SUPERSEDED]} superseded"
        + (f", {pending} still pending (gave up waiting)" if pending else "")
    )


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


def _retry_snapshot(
    stack: Stack,
    pipeline: Pipeline,
    out: Output,
    error_type: str | None,
    key_glob: str | None,
    only: set[str] | None,
) -> tuple[list[Retried], int]:
    """Read the DLQ to a list first, then send back each listed message once (see the module)."""
    reader = DlqReader(stack.sqs(), pipeline.dlq_url)
    results: list[Retried] = []
    columns = (TextColumn("retrying"), BarColumn(), MofNCompleteColumn())
    try:
        chosen = [
            message
            for message in reader.snapshot()
            if message.matches(error_type, key_glob) and (only is None or message.message_id in only)
        ]
        with Progress(
            *columns, console=out.progress, disable=out.as_json or not out.progress.is_terminal
        ) as progress:
            task = progress.add_task("retry", total=len(chosen) or None)
            for start in range(0, len(chosen), SQS_BATCH):
                reader.keep_hidden()
                batch = chosen[start : start + SQS_BATCH]
                results.extend(retry_batch(stack, pipeline, reader, batch))
                progress.advance(task, len(batch))
    finally:
        # Messages not chosen (and any not deleted) go back to the DLQ as they were.
        reader.release()
    return results, reader.parked_since


PROCESSED: Final = "processed"
PARKED_AGAIN: Final = "parked again"
SUPERSEDED: Final = "superseded"


def _outcome(ref: ObjectRef, row: dict[str, Any] | None) -> str | None:
    """Where a retried file ended, from its state-table row (``None``: not final yet)."""
    if row is None:
        return None
    if row.get(StateAttribute.VERSION) != ref.version_token:
        return SUPERSEDED  # a newer version of the key was started: the retried one is history
    status = row.get(StateAttribute.STATUS)
    if status == FileStatus.SUCCEEDED:
        return PROCESSED
    if status == FileStatus.SUPERSEDED:
        return SUPERSEDED
    if status == FileStatus.FAILED and row.get(StateAttribute.DLQ_MESSAGE_ID):
        return PARKED_AGAIN  # FAILED without the DLQ message id is a park under way
    return None


def _error_type(outcome: str | None, row: dict[str, Any] | None) -> str | None:
    """Why a file was parked again (its state-table row's error type); ``None`` for any other outcome."""
    if outcome != PARKED_AGAIN or row is None:
        return None
    return str(row.get(StateAttribute.ERROR_TYPE) or "") or None


def _wait_for_files(
    stack: Stack, pipeline: Pipeline, out: Output, sent: list[ParkedMessage], timeout: float
) -> tuple[dict[ObjectRef, str | None], dict[str, dict[str, Any]]]:
    """Each file of the messages sent back -> its outcome, polled until every one is final or
    ``timeout`` seconds passed (``None``: still pending then); and the files' last state-table rows."""
    # One per file version (two DLQ messages of one version are one file; their refs differ in event time).
    refs = list(
        {(ref.state_pk, ref.version_token): ref for message in sent for ref in message.files}.values()
    )
    outcomes: dict[ObjectRef, str | None] = dict.fromkeys(refs)
    deadline = time.monotonic() + timeout
    showing = out.progress.is_terminal and not out.as_json
    with out.progress.status("waiting for the retried files") if showing else contextlib.nullcontext():
        while True:
            rows = file_states(stack, pipeline, sent)
            for ref in refs:
                outcomes[ref] = _outcome(ref, rows.get(ref.state_pk))
            if all(outcomes.values()) or time.monotonic() >= deadline:
                return outcomes, rows
            time.sleep(WAIT_POLL_SECONDS)


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
