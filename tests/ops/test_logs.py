"""``filepipe logs``: the handler's log lines, read back from the function's log group."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from filepipe.cli.ops.logs import filter_pattern, parse_since
from filepipe.cli.ops.stack import OpsError
from filepipe.local.runtime import RunningStack
from tests.local.conftest import wait_until
from tests.ops.conftest import HANG_GUARD_SECONDS, POISON_TRANSACTIONS, Ops, good_transactions, upload

pytestmark = pytest.mark.e2e


def test_logs_show_why_a_file_failed_filtered_to_that_file(running: RunningStack, ops: Ops) -> None:
    poison = upload(running, "transactions", "logs/broken.json", POISON_TRANSACTIONS)
    upload(running, "transactions", "logs/fine.json", good_transactions())
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    def lines() -> list[dict[str, object]]:
        result = ops("logs transactions --since 5m --filter broken.json --json")
        assert result.exit_code == 0, result.stderr
        return [json.loads(json.loads(line)["message"]) for line in result.stdout.splitlines()]

    # Log events reach CloudWatch Logs shortly after they are written (batched), as on AWS.
    assert wait_until(lambda: any(line.get("key") == poison for line in lines()), timeout=HANG_GUARD_SECONDS)
    failures = [line for line in lines() if line.get("key") == poison and line.get("level") == "ERROR"]
    assert failures
    assert failures[0]["error_type"] == "InvalidContentError"
    assert all("fine.json" not in json.dumps(line) for line in lines())

    human = ops("logs transactions --since 5m --filter broken.json")
    assert "ERROR" in human.stdout
    assert "InvalidContentError" in human.stdout


def test_logs_of_another_pipeline_do_not_show_this_pipelines_files(running: RunningStack, ops: Ops) -> None:
    upload(running, "transactions", "logs/only-here.json", POISON_TRANSACTIONS)
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    assert wait_until(
        lambda: "only-here.json" in ops("logs transactions --since 5m --filter only-here.json").stdout,
        timeout=HANG_GUARD_SECONDS,
    )

    assert ops("logs invoices --since 5m --filter only-here.json").stdout == ""


def test_since_reads_durations_and_times() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)

    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("2026-01-02T11:00:00", now) == datetime(2026, 1, 2, 11, 0, tzinfo=UTC)
    with pytest.raises(OpsError, match="expected e.g. 30s"):
        parse_since("yesterday", now)


def test_plain_filter_text_is_quoted_and_patterns_are_kept() -> None:
    assert filter_pattern("a-file.json") == '"a-file.json"'
    assert filter_pattern('{ $.level = "ERROR" }') == '{ $.level = "ERROR" }'
    assert filter_pattern(None) is None
