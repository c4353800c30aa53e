"""Per-record transformation: the optional user processor and the output envelope.

A processor is ``"package.module:function"``, called with one record; it returns the record to write,
or ``None`` to drop it. Without one, records pass through unchanged.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .errors import ProcessorError, RetryLaterError, TransientError
from .retryable import is_transient

Processor = Callable[[Any], Any]


class ProcessorConfigError(RuntimeError):
    """The configured processor cannot be imported (a deployment error, not a file error)."""


@functools.cache
def load_processor(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` once per process (a per-record or a whole-file processor)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ProcessorConfigError(f"processor {spec!r} must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ProcessorConfigError(f"processor {spec!r} cannot be loaded: {exc}") from exc
    if not callable(target):
        raise ProcessorConfigError(f"processor {spec!r} is not callable")
    loaded: Callable[..., Any] = target
    return loaded


def transform(processor: Processor | None, index: int, record: Any) -> Any:
    """``processor``'s result for record ``index`` (``None``: dropped), with what it raises as the
    handler's error classes: a transient error (its own :class:`RetryLaterError`, or a throttle or
    timeout of a service it called) is retried, anything else fails the file (:class:`ProcessorError`)."""
    if processor is None:
        return record
    try:
        return processor(record)
    except TransientError:
        raise  # the processor asked for a retry (RetryLaterError)
    except Exception as exc:
        if is_transient(exc):
            raise RetryLaterError(f"processor hit a transient error on record {index}: {exc}") from exc
        raise ProcessorError(f"processor failed on record {index}: {type(exc).__name__}: {exc}") from exc


def envelope_head(source_file: str, processed_at: datetime) -> bytes:
    """The opening of the JSON output envelope (``source_file``, ``processed_at``), up to ``data``.

    ``record_count`` comes after ``data`` so that the envelope can be streamed: the count is known
    only once every record has been written.
    """
    head = {"source_file": source_file, "processed_at": processed_at.isoformat()}
    return json.dumps(head, ensure_ascii=False)[:-1].encode() + b', "data": ['


def envelope_tail(record_count: int) -> bytes:
    return f'], "record_count": {record_count}}}'.encode()
