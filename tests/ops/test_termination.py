"""Every command that loops over a queue or a table ends, and counts what it saw, while the pipeline
keeps parking and processing: each test runs its command while files are being uploaded and parked.

A read of the DLQ (``failed list|show|export``) takes the messages parked by its start and counts the
later ones apart; ``reprocess --prefix`` and ``--state FAILED`` take the objects and failures that
existed at their start, each key once; ``status``, ``doctor`` and ``purge`` read bounded pages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from filepipe.local.runtime import RunningStack
from tests.ops.conftest import HANG_GUARD_SECONDS, POISON_TRANSACTIONS, Ops, good_transactions, upload

pytestmark = pytest.mark.e2e

PARK_EVERY_SECONDS = 0.05
PRE_PARKED = 25
"""Parked before a command starts: more than two receives' worth."""


class Parker:
    """Uploads a poison file (parked at once by the pipeline) and a good one every
    :data:`PARK_EVERY_SECONDS` until stopped, recording when each was uploaded."""

    def __init__(self, running: RunningStack, folder: str) -> None:
        self._running = running
        self._folder = folder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parker", daemon=True)
        self.uploaded: dict[str, float] = {}

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            for name, body in (("poison", POISON_TRANSACTIONS), ("good", good_transactions())):
                # When the upload began: the object cannot exist (nor be listed) before, and on a busy
                # machine the call can return seconds after S3 stored it.
                began = time.time()
                key = upload(self._running, "transactions", f"{self._folder}/{name}-{index:05d}.json", body)
                self.uploaded[key] = began
            index += 1
            self._stop.wait(PARK_EVERY_SECONDS)

    def __enter__(self) -> Parker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=HANG_GUARD_SECONDS)

    def uploaded_by(self, moment: float) -> set[str]:
        """The keys whose upload began by ``moment``."""
        return {key for key, at in dict(self.uploaded).items() if at <= moment}


@pytest.fixture
def pre_parked(running: RunningStack, request: pytest.FixtureRequest) -> set[str]:
    """Poison files parked (and the pipeline idle again) before the test's command starts."""
    folder = request.node.name.split("[")[0][-40:]
    keys = {
        upload(running, "transactions", f"{folder}/before-{i:02d}.json", POISON_TRANSACTIONS)
        for i in range(PRE_PARKED)
    }
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    return keys


@pytest.fixture
def parking(running: RunningStack, pre_parked: set[str], request: pytest.FixtureRequest) -> Iterator[Parker]:
    """The pipeline parking (and processing) files for the whole test, starting a moment before it."""
    with Parker(running, f"during-{request.node.name[-30:]}") as parker:
        time.sleep(0.5)  # some parks under way already
        yield parker
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_failed_list_takes_what_was_parked_by_its_start_and_counts_the_rest_apart(
    ops: Ops, pre_parked: set[str], parking: Parker
) -> None:
    started = time.time()
    result = ops("failed list transactions --json")
    ended = time.time()

    assert result.exit_code == 0, result.stderr
    document = result.json()
    ids = [message["messageId"] for message in document["messages"]]
    assert document["count"] == len(ids) == len(set(ids))
    assert pre_parked <= {key for message in document["messages"] for key in message["keys"]}
    # The snapshot's bound is the command's start; what was parked after it is counted, not listed.
    parked_by = _epoch(document["parkedBy"])
    assert started - 0.001 <= parked_by <= ended
    assert all(_epoch(message["parkedAt"]) <= parked_by for message in document["messages"])
    assert document["parkedSince"] >= 0


def test_failed_show_finds_a_message_while_others_are_parked(
    ops: Ops, pre_parked: set[str], parking: Parker
) -> None:
    listed = ops("failed list transactions --json").json()["messages"]
    [wanted] = [message["messageId"] for message in listed if sorted(pre_parked)[0] in message["keys"]]

    shown = ops(f"failed show transactions {wanted} --json")

    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["messageId"] == wanted


def test_failed_export_writes_each_message_of_its_snapshot_once(
    ops: Ops, pre_parked: set[str], parking: Parker, tmp_path: Path
) -> None:
    result = ops(f"failed export transactions {tmp_path / 'parked.jsonl'} --json")

    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in (tmp_path / "parked.jsonl").read_text().splitlines()]
    assert result.json()["count"] == len(lines) == len({line["messageId"] for line in lines})
    assert pre_parked <= {key for line in lines for key in line["keys"]}
    parked_by = _epoch(result.json()["parkedBy"])
    assert all(_epoch(line["parkedAt"]) <= parked_by for line in lines)


def test_failed_purge_ends_while_files_are_parked(ops: Ops, pre_parked: set[str], parking: Parker) -> None:
    result = ops("failed purge transactions --yes")

    assert result.exit_code == 0, result.stderr
    assert "purging the DLQ of transactions" in result.stdout


def test_reprocess_state_failed_takes_the_failures_recorded_by_its_start_each_once(
    ops: Ops, pre_parked: set[str], parking: Parker
) -> None:
    started = time.time()
    result = ops("reprocess transactions --state FAILED --json")

    assert result.exit_code == 0, result.stderr
    keys = [item["key"] for item in result.json()["objects"]]
    assert len(keys) == len(set(keys))
    assert pre_parked <= set(keys)
    # Poison files the parker uploaded after the start failed after it too: not taken.
    later = set(parking.uploaded) - parking.uploaded_by(started)
    assert not later & set(keys)


def test_reprocess_prefix_takes_the_objects_there_at_its_start_each_once(
    ops: Ops, pre_parked: set[str], parking: Parker
) -> None:
    started = time.time()
    result = ops("reprocess transactions --prefix incoming/transactions/ --dry-run --json")

    assert result.exit_code == 0, result.stderr
    keys = [item["key"] for item in result.json()["objects"]]
    assert len(keys) == len(set(keys))
    assert pre_parked <= set(keys)
    # S3's LastModified has whole seconds: an upload in the start's second may be taken.
    assert not set(keys) & (set(parking.uploaded) - parking.uploaded_by(started + 1))


def test_status_ends_and_counts_while_files_are_parked(
    ops: Ops, pre_parked: set[str], parking: Parker
) -> None:
    result = ops("status transactions --json")

    assert result.exit_code == 0, result.stderr
    status = result.json()["pipelines"]["transactions"]
    assert status["dlq"]["visible"] + status["dlq"]["inFlight"] >= 0
    assert status["files"]["FAILED"] >= len(pre_parked)


def test_doctor_ends_while_files_are_parked(ops: Ops, pre_parked: set[str], parking: Parker) -> None:
    result = ops("doctor transactions --json")

    assert result.exit_code in {0, 1}, result.stderr
    checks = result.json()["pipelines"]["transactions"]["checks"]
    assert checks
