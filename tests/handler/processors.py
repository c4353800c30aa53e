"""User processors referenced as ``module:function`` by the handler tests."""

from __future__ import annotations

from typing import Any


def add_total(record: dict[str, Any]) -> dict[str, Any] | None:
    if record.get("skip"):
        return None
    return {**record, "total": record["qty"] * record["price"]}


def explode(record: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("no such field")


def downstream_down(record: dict[str, Any]) -> dict[str, Any]:
    from filepipe.handler.errors import RetryLaterError

    raise RetryLaterError("the reference-data service is unavailable")
