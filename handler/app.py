"""Lambda entry point: ``handler.app.lambda_handler`` (and ``build_handler`` for explicit wiring)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .batch import BatchHandler
from .clients import Clients, ClientSet, LazyClients
from .processing import FileProcessor
from .settings import HandlerSettings
from .state import DynamoStateStore, NullStateStore, StateStore
from .transform import load_processor
from .validation import load_validator

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

__all__ = ["Clients", "Handler", "build_handler", "lambda_handler"]


def build_handler(settings: HandlerSettings, clients: ClientSet | None = None) -> BatchHandler:
    """A handler for explicit settings and clients (default: clients created lazily on first use).

    The schema and the processors are loaded here, so a misconfigured pipeline fails at build time.
    """
    client_set: ClientSet = clients if clients is not None else LazyClients()
    validator = load_validator(settings.schema_file) if settings.schema_file else None
    processor = load_processor(settings.processor) if settings.processor else None
    file_processor = load_processor(settings.file_processor) if settings.file_processor else None
    state: StateStore
    if settings.state_table:
        state = DynamoStateStore(
            client_set,
            settings.state_table,
            lease_seconds=settings.lease_seconds,
            ttl_days=settings.state_ttl_days,
        )
    else:
        state = NullStateStore()
    files = FileProcessor(settings, client_set, state, validator, processor, file_processor=file_processor)
    return BatchHandler(settings, client_set, files)


_handler: BatchHandler | None = None
_handler_lock = threading.Lock()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reads :meth:`HandlerSettings.from_env` once per container, then delegates."""
    global _handler  # noqa: PLW0603 - the per-container singleton Lambda expects
    if _handler is None:
        with _handler_lock:
            if _handler is None:
                _handler = build_handler(HandlerSettings.from_env())
    return _handler(event, context)
