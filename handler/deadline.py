"""The near-timeout cut-off, from the Lambda context's remaining time."""

from __future__ import annotations

from typing import Any


class Deadline:
    """``near()`` once less than ``margin_ms`` remain; never near without a Lambda context."""

    def __init__(self, context: Any, margin_ms: int) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self._remaining = remaining if callable(remaining) else None
        self._margin_ms = margin_ms

    def remaining_ms(self) -> int | None:
        return int(self._remaining()) if self._remaining is not None else None

    def near(self, fraction: float = 1.0) -> bool:
        """True when less than ``fraction * margin`` remain (mid-file checks use half the margin)."""
        remaining = self.remaining_ms()
        return remaining is not None and remaining < self._margin_ms * fraction
