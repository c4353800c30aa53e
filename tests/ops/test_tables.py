"""The people's tables fit the terminal and never break a word: an error type or a key too long for
its column is cut with an ellipsis (``--json`` and ``failed show`` have it whole). Rendered at 80 and
120 columns, as ``COLUMNS`` sets them for a command."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from filepipe.cli.ops import status
from filepipe.cli.ops.command import Output
from filepipe.cli.ops.failed import _messages_table
from filepipe.cli.ops.parked import ParkedMessage
from filepipe.cli.ops.reprocess import Done, Target, _print
from filepipe.cli.ops.stack import Pipeline
from filepipe.handler.events import ObjectRef
from filepipe.handler.settings import DlqAttribute

PIPELINE = Pipeline(
    name="transactions",
    bucket="data-bucket",
    input_prefix="incoming/transactions/",
    input_suffixes=(".json",),
    output_prefix="processed/transactions/",
    queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/q",
    queue_arn="arn:aws:sqs:eu-west-1:123456789012:q",
    dlq_url="https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
    dlq_arn="arn:aws:sqs:eu-west-1:123456789012:dlq",
    function_name="f",
    log_group_name="/aws/lambda/f",
    event_source_mapping_id="uuid",
    topic_arn="arn:aws:sns:eu-west-1:123456789012:t",
    table_name="state",
    alarm_names=(),
)
ERROR_TYPES = ["InvalidContentError", "SchemaValidationError", "RetriesExhaustedError"]
KEYS = [
    "incoming/transactions/2026-11-27.json",
    "incoming/transactions/exports/region-eu-central-1/customer-batch-000123-of-000999.json",
    "incoming/transactions/broken.json",
]
REASON = "invalid JSON: parse error: premature EOF at byte 4096 of the document, after 12 records"
WIDTHS = [80, 120]


def _message(index: int) -> ParkedMessage:
    return ParkedMessage(
        message_id=f"{index:08d}-4b1c-4d2e-9f00-0123456789ab",
        receipt_handle="handle",
        body="{}",
        attributes={
            DlqAttribute.ERROR_TYPE: ERROR_TYPES[index],
            DlqAttribute.REASON: REASON,
            DlqAttribute.SOURCE_KEY: KEYS[index],
        },
        message_attributes={},
        receive_count=3,
        parked_at="2026-11-27T12:11:56.000Z",
        sent_ms=None,
        files=(ObjectRef("data-bucket", KEYS[index], "v1"),),
    )


ROWS: dict[str, dict[str, Any]] = {
    f"data-bucket/{key}": {"pk": f"data-bucket/{key}", "status": "FAILED", "attempts": "1"} for key in KEYS
}


def _rendered(width: int, renderable: Any) -> str:
    printed = io.StringIO()
    Console(width=width, file=printed, highlight=False, color_system=None).print(renderable)
    return printed.getvalue()


def _assert_fits_and_keeps_words(text: str, width: int, words: list[str]) -> None:
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(line for line in lines if len(line) > width)
    for word in words:
        # Whole on one line, or its start cut with an ellipsis: never its end on the next line.
        cut = [word[:length] + "…" for length in range(3, len(word))]
        assert any(word in line or any(start in line for start in cut) for line in lines), (word, text)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_failed_list_table_fits_and_cuts_keys_and_error_types_with_an_ellipsis(width: int) -> None:
    messages = [_message(index) for index in range(len(KEYS))]

    text = _rendered(width, _messages_table("parked", PIPELINE, messages, ROWS))

    relative_keys = [key.removeprefix(PIPELINE.input_prefix) for key in KEYS]
    _assert_fits_and_keeps_words(text, width, ERROR_TYPES + relative_keys)
    for error_type in ERROR_TYPES:  # the error type keeps its room even at 80 columns
        assert error_type in text
    if width >= 120:
        assert "2026-11-27.json" in text and "broken.json" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_the_status_failures_fit_and_keep_keys_and_error_types_whole_or_cut(width: int) -> None:
    long_key = f"data-bucket/{KEYS[1]}"
    report = {
        "queue": {"visible": 0, "inFlight": 0, "delayed": 0, "oldestAgeSeconds": 1.0},
        "dlq": {"visible": 3, "inFlight": 0},
        "mapping": {"enabled": True, "state": "Enabled", "maximumConcurrency": None},
        "breaker": None,
        "alarms": {"data-transactions-dlq-depth": "ALARM"},
        "files": {"SUCCEEDED": 1, "FAILED": 3},
        "recentFailures": [
            {"file": f"data-bucket/{key}", "errorType": error_type, "reason": REASON, "at": ""}
            for key, error_type in zip(KEYS, ERROR_TYPES, strict=True)
        ],
    }

    text = _rendered(width, status._render("transactions", report))

    _assert_fits_and_keeps_words(text, width, [*ERROR_TYPES, long_key, f"data-bucket/{KEYS[0]}"])


@pytest.mark.parametrize("width", WIDTHS)
def test_the_reprocess_table_fits_and_cuts_keys_with_an_ellipsis(width: int) -> None:
    done = [
        Done(Target(key, "3HL4kqtJvjVBH40Nrjfkd.9fBe0yI3Qm", "etag", 1234), True, "sent (requeued)")
        for key in KEYS
    ]
    printed = io.StringIO()
    out = Output(
        as_json=False, console=Console(width=width, file=printed, highlight=False, color_system=None)
    )

    _print(out, PIPELINE, done, dry_run=False)

    text = printed.getvalue()
    _assert_fits_and_keeps_words(
        text,
        width,
        [key.removeprefix(PIPELINE.input_prefix) for key in KEYS] + ["3HL4kqtJvjVBH40Nrjfkd.9fBe0yI3Qm"],
    )
