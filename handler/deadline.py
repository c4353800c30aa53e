"""The near-timeout cut-off, from the Lambda context's remaining time."""

from __future__ import annotations

from typing import Any


class Deadline:
    """``near()`` once less than ``margin_ms`` remain; never near without a Lambda context."""

    def __init__(self, context: Any, margin_ms: int) -> None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        self._remaining = remaining if callable(remaining) else None
        self._margin_ms = margin_ms
        self.budget_ms = self.remaining_ms()
        """What remained when the invocation started (about the function's timeout)."""

    def remaining_ms(self) -> int | None:
        return int(self._remaining()) if self._remaining is not None else None

    def near(self, fraction: float = 1.0) -> bool:
        """True when less than ``fraction * margin`` remain (mid-file checks use half the margin)."""
        remaining = self.remaining_ms()
        return remaining is not None and remaining < self._margin_ms * fraction

    def had_whole_invocation(self, remaining_at_start_ms: int | None) -> bool:
        """Whether a file that started with ``remaining_at_start_ms`` left had (nearly) all of it: if it
        still did not finish, another invocation of the same size will not either."""
        if remaining_at_start_ms is None or self.budget_ms is None:
            return False
        return remaining_at_start_ms >= 0.9 * self.budget_ms
