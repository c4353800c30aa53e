"""The cost model on the local endpoint: a known workload gives known counts (bench/cost_model.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cost_model import (
    DYNAMODB_WRU,
    LAMBDA_ITEM,
    LOG_BYTES,
    SQS_REQUESTS,
    measure,
    report,
)

pytestmark = pytest.mark.e2e


def _wru(units: dict[tuple[str, str], float], item: str) -> float:
    return units.get((item, DYNAMODB_WRU), 0.0)


def test_good_files_and_a_poison_file_cost_exactly_the_calls_and_units_of_their_outcomes(
    tmp_path: Path,
) -> None:
    # GIVEN the dev stack's transactions pipeline with filepipe's handler
    # WHEN 4 good files and 1 truncated one arrive together (one batch) and drain
    run = measure("filepipe", files=4, poison=1, state_dir=tmp_path / "state")
    calls, units = run.meter.calls, dict(run.meter.units)
    # THEN one invocation did the batch, and AWS's calls on the pipeline's behalf follow from it
    assert (run.files, run.invocations, run.messages_deleted) == (5, 1, 5)
    assert calls[LAMBDA_ITEM] == 1
    assert calls["SQS SendMessage (S3 event notification)"] == 5
    assert calls["SQS ReceiveMessage (event source mapping)"] == 1
    assert calls["SQS DeleteMessageBatch (event source mapping)"] == 1
    # AND the handler read every file, wrote 4 outputs, parked the poison once, changed no visibility
    assert calls["S3 GetObject"] == 5
    assert calls["S3 PutObject"] == 4
    assert calls["SQS SendMessage (handler: DLQ)"] == 1
    assert not any(item.startswith("SQS ChangeMessageVisibility") for item in calls)
    assert sum(units[key] for key in units if key[1] == SQS_REQUESTS) == 5 + 1 + 1 + 1
    # AND the state table: a lease and an outcome per good file, lease + FAILED + park for the poison,
    # each item under 1 KB (1 WRU); only the FAILED one touches the sparse index: a put when it enters,
    # a delete and a put when the park changes its sort key (updated_at)
    assert calls["DynamoDB UpdateItem PROCESSING"] == 5
    assert calls["DynamoDB UpdateItem SUCCEEDED"] == 4
    assert calls["DynamoDB UpdateItem FAILED"] == 1
    assert calls["DynamoDB UpdateItem (status unchanged)"] == 1
    assert not any(item.startswith("DynamoDB GetItem") for item in calls)
    assert _wru(units, "DynamoDB UpdateItem PROCESSING") == 5
    assert _wru(units, "DynamoDB UpdateItem SUCCEEDED") == 4
    assert _wru(units, "DynamoDB UpdateItem FAILED") == 1
    assert _wru(units, "DynamoDB UpdateItem (status unchanged)") == 1
    assert calls["DynamoDB needs-attention index writes"] == 3
    assert _wru(units, "DynamoDB needs-attention index writes") == 3
    # AND its logs at the default level: no line per good file, the failure and the park, one EMF
    # document, platform lines
    logged = {item for item, dimension in units if dimension == LOG_BYTES}
    assert logged == {
        "log: ERROR 'file failed permanently'",
        "log: INFO 'message parked in the DLQ'",
        "log: EMF metrics (one per batch)",
        "log: Lambda platform.start/report",
    }
    assert run.meter.memory_mb == 512


def test_the_bare_pipeline_only_gets_and_puts_and_the_report_prices_both(tmp_path: Path) -> None:
    bare = measure("bare", files=3, state_dir=tmp_path / "bare")
    full = measure("filepipe", files=3, state_dir=tmp_path / "full")
    assert {item: bare.meter.calls[item] for item in bare.meter.calls if not item.startswith("SQS")} == {
        LAMBDA_ITEM: 1,
        "S3 GetObject": 3,
        "S3 PutObject": 3,
    }
    assert {item for item, dimension in bare.units if dimension == LOG_BYTES} == {
        "log: Lambda platform.start/report"
    }
    text = report(bare, full)
    assert "ratio (b)/(a):" in text
    assert "moto" in text
