"""The orders pipeline's processor: called by the handler once per valid record."""

from decimal import Decimal, InvalidOperation
from typing import Any

from filepipe.handler.errors import RetryLaterError

RATES_AVAILABLE = True
"""Stands in for a downstream service; a test switches it off to see the file retried."""


def normalise(order: dict[str, Any]) -> dict[str, Any] | None:
    """Amounts become numbers, currencies upper case; test orders are dropped."""
    if order.get("status") == "test":
        return None
    if not RATES_AVAILABLE:
        raise RetryLaterError("exchange rates are unavailable")
    try:
        amount = Decimal(str(order["amount"]))
    except InvalidOperation:
        raise ValueError(f"amount {order['amount']!r} is not a number") from None
    return {"id": order["id"], "amount": float(amount), "currency": order["currency"].upper()}
