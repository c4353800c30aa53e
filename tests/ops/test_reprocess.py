"""``filepipe reprocess``: existing objects are processed again, exactly once each; a dry run sends nothing."""

from __future__ import annotations

import shlex

import pytest

from filepipe.handler.settings import FileStatus, StateAttribute
from filepipe.local.runtime import RunningStack
from tests.ops.conftest import (
    HANG_GUARD_SECONDS,
    POISON_TRANSACTIONS,
    Ops,
    file_state,
    good_transactions,
    output_versions,
    paused,
    upload,
)

pytestmark = pytest.mark.e2e


def test_reprocess_processes_a_processed_file_again_exactly_once(running: RunningStack, ops: Ops) -> None:
    # GIVEN processed files, one with a key S3 has to encode in its events
    keys = [
        upload(running, "transactions", name, good_transactions())
        for name in ("reprocess/plain.json", "reprocess/a b+c@ü.json")
    ]
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    before = {key: file_state(running, key)[StateAttribute.FINISHED_AT] for key in keys}

    # WHEN they are reprocessed
    with paused(running):
        result = ops(f"reprocess transactions {' '.join(shlex.quote(key) for key in keys)} --json")
        queued = {key: file_state(running, key)[StateAttribute.STATUS] for key in keys}
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    # THEN each was sent once, requeued, and processed once more: a second output, a new finish
    assert result.exit_code == 0, result.stderr
    assert [(entry["key"], entry["sent"]) for entry in result.json()["objects"]] == [
        (key, True) for key in keys
    ]
    assert set(queued.values()) == {FileStatus.REQUEUED}
    for key in keys:
        state = file_state(running, key)
        assert state[StateAttribute.STATUS] == FileStatus.SUCCEEDED
        assert state[StateAttribute.FINISHED_AT] > before[key]
        assert output_versions(running, key) == 2


def test_reprocess_dry_run_sends_nothing(running: RunningStack, ops: Ops) -> None:
    key = upload(running, "transactions", "reprocess-dry/one.json", good_transactions())
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    with paused(running):
        result = ops(f"reprocess transactions {key} --dry-run --json")
        queue_depth = running.queue_depth(running.pipeline_outputs("transactions")["queueUrl"])

    assert result.exit_code == 0, result.stderr
    assert result.json()["sent"] == 0
    assert [entry["key"] for entry in result.json()["objects"]] == [key]
    assert queue_depth == 0
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    assert file_state(running, key)[StateAttribute.STATUS] == FileStatus.SUCCEEDED
    assert output_versions(running, key) == 1


def test_reprocess_prefix_takes_only_what_the_pipeline_takes_and_state_failed_the_failed_files(
    running: RunningStack, ops: Ops
) -> None:
    good = upload(running, "transactions", "reprocess-prefix/a.json", good_transactions())
    upload(running, "transactions", "reprocess-prefix/notes.txt", b"not for the pipeline")
    poison = upload(running, "transactions", "reprocess-prefix/poison.json", POISON_TRANSACTIONS)
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    prefix = good.rsplit("/", 1)[0] + "/"

    by_prefix = ops(f"reprocess transactions --prefix {prefix} --dry-run --json")
    failed = ops("reprocess transactions --state FAILED --dry-run --json")

    assert by_prefix.exit_code == 0, by_prefix.stderr
    assert sorted(entry["key"] for entry in by_prefix.json()["objects"]) == [good, poison]
    assert failed.exit_code == 0, failed.stderr
    assert poison in {entry["key"] for entry in failed.json()["objects"]}
    assert good not in {entry["key"] for entry in failed.json()["objects"]}


def test_reprocess_of_a_missing_object_says_so_and_fails(running: RunningStack, ops: Ops) -> None:
    key = running.pipeline_outputs("transactions")["inputPrefix"] + "reprocess/never-uploaded.json"

    result = ops(f"reprocess transactions {key} --json")

    assert result.exit_code == 1
    assert [(entry["sent"], entry["note"]) for entry in result.json()["objects"]] == [
        (False, "no such object")
    ]
