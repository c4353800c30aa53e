"""``filepipe reprocess PIPELINE (KEY… | --prefix P | --state FAILED)``: process existing objects again.

For each object (its current version, from HeadObject): requeue its state-table item (any final status
of that version becomes REQUEUED; a live lease or another version's item is left alone), then send the
pipeline's queue an S3 notification for the object as it is now. The event carries the sequencer the
item records for the version, so ``begin`` sees the same event of a REQUEUED version and admits it once;
an object without an item gets no sequencer (none can be made up that orders right against S3's), and
``begin`` admits a key without an item anyway. ``eventTime`` is now: the end-to-end latency metric then
measures the reprocessing, not the object's age.

Reprocessing FAILED files leaves their DLQ messages in place: retried later, those are skipped as
duplicates once the file succeeded (``filepipe failed purge`` clears them).

The objects are listed before the first is sent, and only those that existed when the command began:
with ``--prefix`` the objects last modified by then, with ``--state FAILED`` the files that failed by
then (the attention index is ordered by ``updated_at``; a file that fails again while the command runs
re-enters it later, and would otherwise be met again, and again). Each key is sent at most once a run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote_plus

from botocore.exceptions import ClientError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from filepipe.cli.ops.command import EXIT_FAILED, Output, add_json_argument, ops_command
from filepipe.cli.ops.parked import SQS_BATCH
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments
from filepipe.handler.events import ObjectRef
from filepipe.handler.settings import ATTENTION_INDEX, FileStatus, StateAttribute
from filepipe.handler.state import requeue

CONFIGURATION_ID: Final = "filepipe-reprocess"
"""The notification's ``configurationId``: says in the event (and the logs) where it came from."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "reprocess",
        help="process existing objects again (their current versions), e.g. after fixing a schema",
    )
    parser.add_argument("pipeline", metavar="PIPELINE")
    parser.add_argument("keys", nargs="*", metavar="KEY", help="object keys in the pipeline's bucket")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--prefix", metavar="P", help="every object the pipeline takes under this key prefix")
    which.add_argument(
        "--state",
        choices=[FileStatus.FAILED.value],
        help="every file the state table records as FAILED (their DLQ messages stay)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be sent; change nothing")
    add_json_argument(parser)
    add_stack_arguments(parser)
    parser.set_defaults(command=ops_command(_reprocess))


@dataclass(frozen=True, slots=True)
class Target:
    """One object to reprocess, as HeadObject describes it now (``note`` set: it is skipped)."""

    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    note: str = ""

    def ref(self, bucket: str) -> ObjectRef:
        return ObjectRef(bucket, self.key, self.version_id, self.etag, self.size)


def takes(pipeline: Pipeline, key: str) -> bool:
    """Whether the pipeline's notification would announce ``key`` (input prefix and suffixes)."""
    if not key.startswith(pipeline.input_prefix) or key.startswith(pipeline.output_prefix):
        return False
    return not pipeline.input_suffixes or key.endswith(tuple(pipeline.input_suffixes))


def s3_event(bucket: str, target: Target, sequencer: str | None, region: str) -> str:
    """The S3 notification S3 would send for ``target`` (key encoded as S3 encodes it)."""
    obj: dict[str, Any] = {"key": quote_plus(target.key, safe="/"), "size": target.size, "eTag": target.etag}
    if target.version_id:
        obj["versionId"] = target.version_id
    if sequencer:
        obj["sequencer"] = sequencer
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": CONFIGURATION_ID,
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }
    return json.dumps({"Records": [record]})


def _keys(args: argparse.Namespace, stack: Stack, pipeline: Pipeline, started: datetime) -> list[str]:
    """The keys to reprocess, each once, as they were at ``started``."""
    chosen = [bool(args.keys), args.prefix is not None, args.state is not None]
    if sum(chosen) != 1:
        raise OpsError("name the objects: KEY…, --prefix P or --state FAILED (one of them)")
    if args.keys:
        return list(dict.fromkeys(args.keys))
    if args.prefix is not None:
        return list(
            dict.fromkeys(
                key for key in _listed(stack, pipeline, args.prefix, started) if takes(pipeline, key)
            )
        )
    if not pipeline.table_name:
        raise OpsError(f"pipeline {pipeline.name} keeps no state table: name keys or a --prefix")
    return list(dict.fromkeys(_failed_keys(stack, pipeline, started)))


def _listed(stack: Stack, pipeline: Pipeline, prefix: str, started: datetime) -> Iterator[str]:
    # A prefix above the input prefix lists only the input prefix: nothing else would be taken.
    start = prefix if prefix.startswith(pipeline.input_prefix) else pipeline.input_prefix
    if not start.startswith(prefix):
        raise OpsError(
            f"--prefix {prefix} is outside the input prefix {pipeline.input_prefix} of {pipeline.name}"
        )
    for page in stack.s3().get_paginator("list_objects_v2").paginate(Bucket=pipeline.bucket, Prefix=start):
        for item in page.get("Contents", []):
            # LastModified has whole seconds: an object written within the command's first second may be
            # taken too (once, like the rest).
            if item["LastModified"] <= started:
                yield item["Key"]


def _failed_keys(stack: Stack, pipeline: Pipeline, started: datetime) -> Iterator[str]:
    paginator = stack.dynamodb().get_paginator("query")
    head = f"{pipeline.bucket}/"
    for page in paginator.paginate(
        TableName=pipeline.table_name,
        IndexName=ATTENTION_INDEX,
        KeyConditionExpression="#attention = :failed AND #updated <= :started",
        ExpressionAttributeNames={
            "#attention": StateAttribute.ATTENTION,
            "#updated": StateAttribute.UPDATED_AT,
        },
        ExpressionAttributeValues={":failed": {"S": FileStatus.FAILED}, ":started": {"S": _iso(started)}},
    ):
        for item in page.get("Items", []):
            pk = item.get(StateAttribute.PK, {}).get("S", "")
            if pk.startswith(head):
                yield pk[len(head) :]


def _target(stack: Stack, pipeline: Pipeline, key: str) -> Target:
    if not takes(pipeline, key):
        return Target(key, note="not taken by the pipeline (input prefix and suffixes)")
    try:
        head = stack.s3().head_object(Bucket=pipeline.bucket, Key=key)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}:
            return Target(key, note="no such object")
        raise
    return Target(
        key, head.get("VersionId") or None, head.get("ETag", "").strip('"') or None, head["ContentLength"]
    )


@dataclass(frozen=True, slots=True)
class Done:
    target: Target
    sent: bool
    note: str

    def document(self) -> dict[str, Any]:
        return {
            "key": self.target.key,
            "versionId": self.target.version_id,
            "size": self.target.size,
            "sent": self.sent,
            "note": self.note,
        }


def _iso(moment: datetime) -> str:
    """``updated_at``'s form (the state table's ISO-8601 UTC), so that string order is time order."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _reprocess(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    keys = _keys(args, stack, pipeline, datetime.now(UTC))
    region = stack.s3().meta.region_name
    done: list[Done] = []
    columns = (
        TextColumn("reprocessing" if not args.dry_run else "looking"),
        BarColumn(),
        MofNCompleteColumn(),
    )
    with Progress(
        *columns, console=out.progress, disable=out.as_json or not out.progress.is_terminal
    ) as progress:
        task = progress.add_task("reprocess", total=len(keys))
        for start in range(0, len(keys), SQS_BATCH):
            targets = [_target(stack, pipeline, key) for key in keys[start : start + SQS_BATCH]]
            done.extend(_send(stack, pipeline, targets, region, args.dry_run))
            progress.advance(task, len(targets))
    skipped = [item for item in done if not item.sent]
    sent = len(done) - len(skipped)
    if out.as_json:
        out.document(
            {
                "pipeline": pipeline.name,
                "dryRun": bool(args.dry_run),
                "sent": sent,
                "skipped": len(skipped),
                "objects": [item.document() for item in done],
            }
        )
    else:
        _print(out, pipeline, done, args.dry_run)
    if args.dry_run:
        return EXIT_FAILED if any(item.target.note for item in done) else 0
    return EXIT_FAILED if skipped else 0


def _send(
    stack: Stack, pipeline: Pipeline, targets: Sequence[Target], region: str, dry_run: bool
) -> list[Done]:
    done: list[Done] = []
    bodies: list[tuple[Target, str, str]] = []
    for target in targets:
        if target.note:
            done.append(Done(target, False, target.note))
            continue
        if dry_run:
            done.append(Done(target, False, "would be sent (dry run)"))
            continue
        sequencer, note = None, "sent"
        if pipeline.table_name:
            found = requeue(
                stack.dynamodb(), pipeline.table_name, target.ref(pipeline.bucket), parked_only=False
            )
            if not found.ready:
                done.append(Done(target, False, found.note))
                continue
            sequencer, note = found.sequencer, f"sent ({found.note})"
        bodies.append((target, s3_event(pipeline.bucket, target, sequencer, region), note))
    if bodies:
        response = stack.sqs().send_message_batch(
            QueueUrl=pipeline.queue_url,
            Entries=[{"Id": str(index), "MessageBody": body} for index, (_, body, _) in enumerate(bodies)],
        )
        for entry in response.get("Successful", []):
            target, _, note = bodies[int(entry["Id"])]
            done.append(Done(target, True, note))
        for failure in response.get("Failed", []):
            target, _, _ = bodies[int(failure["Id"])]
            # Its item stays REQUEUED: running the command again sends it.
            done.append(
                Done(target, False, f"not sent ({failure.get('Code')}: {failure.get('Message', '')})")
            )
    return done


def _print(out: Output, pipeline: Pipeline, done: list[Done], dry_run: bool) -> None:
    if not done:
        out.console.print(f"no objects to reprocess for {pipeline.name}")
        return
    table = Table(
        title=f"[bold]{pipeline.name}[/]" + (" (dry run)" if dry_run else ""),
        title_justify="left",
        caption=f"keys under {pipeline.input_prefix}" if pipeline.input_prefix else None,
        caption_justify="left",
    )
    # A key or a version id too long for the terminal is cut with an ellipsis rather than broken over
    # two lines (``--json`` has them whole); the note wraps between words.
    table.add_column("key", overflow="ellipsis", min_width=10)
    table.add_column("version", overflow="ellipsis", min_width=8)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("", overflow="ellipsis")
    for item in done:
        style = "green" if item.sent else ("dim" if dry_run and not item.target.note else "yellow")
        table.add_row(
            escape(item.target.key.removeprefix(pipeline.input_prefix)),
            item.target.version_id or "-",
            str(item.target.size) if item.target.size is not None else "-",
            f"[{style}]{escape(item.note)}[/]",
        )
    out.console.print(table)
    sent = sum(1 for item in done if item.sent)
    if dry_run:
        ready = sum(1 for item in done if not item.target.note)
        out.console.print(
            f"would send {ready} of {len(done)} objects to the queue of {pipeline.name}; sent nothing"
        )
    else:
        out.console.print(f"sent {sent} of {len(done)} objects to the queue of {pipeline.name}")
