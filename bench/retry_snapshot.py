"""``filepipe failed retry`` on a large DLQ of good and still-bad files, while the pipeline runs.

    python -m bench.retry_snapshot [--good 700] [--bad 300]

The dev stack runs locally. The bad files (truncated JSON) are uploaded and parked by the handler as
in production; the good files' notifications are moved to the DLQ without being processed, as SQS's
own redrive would move them (no filepipe attributes). Then, with the pipeline consuming, one
``filepipe failed retry transactions --yes --wait --json`` runs in its own process, as an operator runs
it from another shell, and the run checks what the retry must guarantee: each parked message sent back
once, every good file processed once, every bad file parked exactly once more, and the command ended.
``tests/ops/test_retry_snapshot.py`` runs the same scenario with a smaller DLQ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filepipe.cli.ops.parked import SQS_BATCH
from filepipe.handler.settings import DlqAttribute
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack

PROJECT_DIR = Path(__file__).resolve().parents[1]
PIPELINE = "transactions"
FOLDER = "snapshot/"
"""Under the pipeline's input prefix: the scenario's files, apart from anything else in the DLQ."""
GOOD_BODY = b'[{"id": "t-1", "amount": 10.5, "currency": "EUR"}]'
BAD_BODY = b'{"id": "t-9", "amount": '
"""Truncated JSON: permanently invalid, parked at once, and again on every retry."""
HANG_GUARD_SECONDS = 900


RunCommand = Callable[[str], tuple[int, str]]
"""Runs ``filepipe <command>`` against the running stack: (exit code, stdout)."""


class ParkCounter:
    """Counts, per source key, the handler's sends to a DLQ (each one is a park)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.parks: Counter[str] = Counter()

    def hook(self, service: str, client: Any) -> None:
        if service == "sqs":
            client.meta.events.register("before-parameter-build.sqs.SendMessage", self._count)

    def _count(self, params: dict[str, Any], **_: Any) -> None:
        key = params.get("MessageAttributes", {}).get(DlqAttribute.SOURCE_KEY, {}).get("StringValue")
        if key:
            with self._lock:
                self.parks[key] += 1

    def reset(self) -> None:
        with self._lock:
            self.parks.clear()


@dataclass(frozen=True, slots=True)
class RetryRun:
    """What one retry of the scenario did, and what the stack shows afterwards."""

    exit_code: int
    seconds: float
    """The retry command's wall time, from start to exit (``--wait`` included)."""
    document: dict[str, Any]
    """The command's ``--json`` output."""
    parked_before: set[str]
    """The ids of the scenario's DLQ messages when the retry started."""
    good: list[str]
    bad: list[str]
    parks: Counter[str]
    """Parks per key during the retry (and until the pipeline was idle after it)."""
    outputs: Counter[str]
    """Output versions per input key of the scenario."""
    dlq_after: list[dict[str, Any]]
    """The scenario's DLQ messages afterwards (``failed list --json`` entries)."""

    @property
    def retried_ids(self) -> list[str]:
        return [message["messageId"] for message in self.document.get("messages", []) if message["sent"]]


def _scenario_messages(run: RunCommand) -> list[dict[str, Any]]:
    exit_code, stdout = run(f"failed list {PIPELINE} --json")
    assert exit_code == 0, stdout
    messages: list[dict[str, Any]] = json.loads(stdout)["messages"]
    return [message for message in messages if any(f"/{FOLDER}" in key for key in message["keys"])]


def _move_to_dlq(running: RunningStack, count: int) -> None:
    """Move ``count`` notifications from the (paused) pipeline's queue to its DLQ, bodies unchanged."""
    outputs = running.pipeline_outputs(PIPELINE)
    sqs = running.address.client("sqs")
    moved = 0
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while moved < count and time.monotonic() < deadline:
        received = sqs.receive_message(
            QueueUrl=outputs["queueUrl"], MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=1
        ).get("Messages", [])
        if not received:
            continue
        sqs.send_message_batch(
            QueueUrl=outputs["dlqUrl"],
            Entries=[{"Id": str(i), "MessageBody": message["Body"]} for i, message in enumerate(received)],
        )
        sqs.delete_message_batch(
            QueueUrl=outputs["queueUrl"],
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
        )
        moved += len(received)
    if moved != count:
        raise RuntimeError(f"moved {moved} of {count} notifications to the DLQ")


def _output_versions(running: RunningStack) -> Counter[str]:
    outputs = running.pipeline_outputs(PIPELINE)
    s3 = running.address.client("s3")
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=outputs["bucket"], Prefix=outputs["outputPrefix"] + FOLDER
    ):
        for version in page.get("Versions", []):
            versions[outputs["inputPrefix"] + version["Key"].removeprefix(outputs["outputPrefix"])] += 1
    return versions


def run_scenario(running: RunningStack, parks: ParkCounter, run: RunCommand, good: int, bad: int) -> RetryRun:
    """Park ``bad`` bad files and ``good`` good ones, then retry them all while the pipeline runs."""
    outputs = running.pipeline_outputs(PIPELINE)
    s3 = running.address.client("s3")
    prefix = outputs["inputPrefix"] + FOLDER
    bad_keys = [f"{prefix}bad-{i:04d}.json" for i in range(bad)]
    good_keys = [f"{prefix}good-{i:04d}.json" for i in range(good)]
    for key in bad_keys:
        s3.put_object(Bucket=outputs["bucket"], Key=key, Body=BAD_BODY)
    if not running.wait_until_idle(timeout=HANG_GUARD_SECONDS):
        raise RuntimeError("the bad files were not parked in time")
    runner = running.runner(PIPELINE)
    runner.set_enabled(False)
    if not runner.wait_until_paused(timeout=HANG_GUARD_SECONDS):
        raise RuntimeError("the pipeline did not pause")
    try:
        for key in good_keys:
            s3.put_object(Bucket=outputs["bucket"], Key=key, Body=GOOD_BODY)
        _move_to_dlq(running, good)
    finally:
        runner.set_enabled(True)
    parked_before = {message["messageId"] for message in _scenario_messages(run)}
    parks.reset()

    started = time.monotonic()
    exit_code, stdout = run(f"failed retry {PIPELINE} --key */{FOLDER}* --yes --wait --json")
    seconds = time.monotonic() - started
    if not running.wait_until_idle(timeout=HANG_GUARD_SECONDS):
        raise RuntimeError("the pipeline did not settle after the retry")
    return RetryRun(
        exit_code=exit_code,
        seconds=seconds,
        document=json.loads(stdout) if stdout.strip() else {},
        parked_before=parked_before,
        good=good_keys,
        bad=bad_keys,
        parks=Counter(parks.parks),
        outputs=_output_versions(running),
        dlq_after=_scenario_messages(run),
    )


def problems(result: RetryRun) -> list[str]:
    """What the run got wrong (empty: every guarantee held)."""
    found: list[str] = []
    if result.exit_code != 0:
        found.append(f"exit code {result.exit_code}")
    retried = result.retried_ids
    if len(retried) != len(set(retried)):
        found.append(f"{len(retried) - len(set(retried))} messages retried more than once")
    if set(retried) != result.parked_before:
        found.append(
            f"retried {len(set(retried))} messages, {len(set(retried) - result.parked_before)} of them not "
            f"parked when it started; {len(result.parked_before - set(retried))} parked ones not retried"
        )
    unprocessed = [key for key in result.good if result.outputs[key] != 1]
    if unprocessed:
        found.append(f"{len(unprocessed)} good files not processed exactly once (e.g. {unprocessed[0]})")
    misparked = [key for key in result.bad if result.parks[key] != 1]
    if misparked:
        example = misparked[0]
        found.append(
            f"{len(misparked)} bad files not parked exactly once more "
            f"(e.g. {example}: {result.parks[example]} times)"
        )
    good_parked = [key for key in result.good if result.parks[key]]
    if good_parked:
        found.append(f"{len(good_parked)} good files parked")
    left = sorted(key for message in result.dlq_after for key in message["keys"])
    if left != sorted(result.bad) or {m["messageId"] for m in result.dlq_after} & result.parked_before:
        found.append(f"the DLQ holds {len(left)} messages afterwards, not the {len(result.bad)} new parks")
    outcomes = Counter(entry["outcome"] for entry in result.document.get("outcomes", []))
    if outcomes != Counter({"processed": len(result.good), "parked again": len(result.bad)}):
        found.append(f"--wait reported {dict(outcomes)}")
    return found


def _subprocess_runner(state_dir: Path) -> RunCommand:
    filepipe = str(Path(sys.executable).with_name("filepipe"))

    def run(command: str) -> tuple[int, str]:
        argv = [filepipe, *command.split(), "--state-dir", str(state_dir), "--project-dir", str(PROJECT_DIR)]
        done = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_SECONDS,
            env={**os.environ, "COLUMNS": "120"},
        )
        if done.returncode and not done.stdout.strip():
            print(done.stderr, file=sys.stderr)
        return done.returncode, done.stdout

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--good", type=int, default=700, help="good files in the DLQ")
    parser.add_argument("--bad", type=int, default=300, help="still-bad files in the DLQ")
    args = parser.parse_args(argv)
    parks = ParkCounter()
    with (
        tempfile.TemporaryDirectory() as state_dir,
        LocalRuntime(
            PROJECT_DIR, "dev", state_dir=Path(state_dir), tuning=LocalTuning.fast(), client_hook=parks.hook
        ) as running,
    ):
        result = run_scenario(running, parks, _subprocess_runner(Path(state_dir)), args.good, args.bad)
    found = problems(result)
    print(
        f"DLQ of {len(result.parked_before)} messages ({args.good} good files, {args.bad} still bad): "
        f"retry exit {result.exit_code} after {result.seconds:.1f} s; "
        f"{len(result.retried_ids)} messages sent back ({len(set(result.retried_ids))} distinct), "
        f"files {result.document.get('files')}; "
        f"good files processed once: {sum(1 for k in result.good if result.outputs[k] == 1)}/{args.good}; "
        f"bad files parked again: {sum(result.parks[k] for k in result.bad)} parks over "
        f"{sum(1 for k in result.bad if result.parks[k])} files; DLQ afterwards: {len(result.dlq_after)}"
    )
    for problem in found:
        print(f"PROBLEM: {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
