"""``filepipe failed retry`` is a snapshot: the files it sends back and the pipeline parks again are
left for the operator, not retried again by the same run.

The scenario (``bench/retry_snapshot.py``, which runs it with a DLQ of 1,000) parks still-bad files
through the handler and good files as SQS's redrive would, then retries them all while the pipeline
keeps consuming. Here with a DLQ of a few batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.retry_snapshot import ParkCounter, problems, run_scenario
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR
from tests.ops.conftest import Ops

pytestmark = pytest.mark.e2e

PARKS = ParkCounter()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    state_dir = tmp_path_factory.mktemp("state")
    with LocalRuntime(
        PROJECT_DIR, "dev", state_dir=state_dir, tuning=LocalTuning.fast(), client_hook=PARKS.hook
    ) as running:
        yield running


def test_a_retry_sends_each_parked_message_back_once_and_leaves_the_files_parked_again(
    running: RunningStack, ops: Ops
) -> None:
    def run(command: str) -> tuple[int, str]:
        result = ops(command)
        return result.exit_code, result.stdout

    # GIVEN a DLQ of 20 good files and 15 still-bad ones, the pipeline consuming
    # WHEN all are retried, waiting for the outcome
    result = run_scenario(running, PARKS, run, good=20, bad=15)

    # THEN each message went back once, good files were processed once, bad ones parked once more,
    # and the summary counts messages and files, with the outcome per file
    assert problems(result) == []
    assert (result.document["selected"], result.document["retried"], result.document["left"]) == (35, 35, 0)
    assert (result.document["files"], result.document["parkedAgain"]) == (35, 15)
    reasons = {entry["key"]: entry["errorType"] for entry in result.document["outcomes"]}
    assert {reasons[key] for key in result.bad} == {"InvalidContentError"}
    assert {reasons[key] for key in result.good} == {None}
