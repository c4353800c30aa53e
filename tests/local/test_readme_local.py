"""The README's "Running locally" section states what the local runtime does, with today's numbers."""

from __future__ import annotations

from pathlib import Path

from filepipe.handler.queues import backoff_seconds
from filepipe.handler.settings import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_BACKOFF_MAX_SECONDS,
    DEFAULT_MAX_RECEIVE_COUNT,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _running_locally() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Running locally")
    return text[start : text.index("\n## ", start + 1)]


def test_the_retry_schedule_without_fast_is_the_handlers() -> None:
    # The delays after each failed delivery but the last, which the handler parks instead.
    delays = [
        backoff_seconds(receive, DEFAULT_BACKOFF_BASE_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS)
        for receive in range(1, DEFAULT_MAX_RECEIVE_COUNT)
    ]
    section = _running_locally()
    assert f"{delays[0]} s → " + " → ".join(str(delay) for delay in delays[1:]) + " s" in section
    assert f"({sum(delays)} s)" in section


def test_the_s3_behaviour_of_the_endpoint_is_stated() -> None:
    section = _running_locally()
    for fact in (
        "`versionId`",
        "`sequencer`",
        "`KeyTooLongError`",
        "`MetadataTooLarge`",
        "1,024 bytes",
        "2 KB",
    ):
        assert fact in section
