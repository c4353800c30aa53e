"""filepipe.testing: test your own pipelines with pytest, against the same local twin filepipe tests with.

Needs ``pip install 'filepipe[local]'``. The plugin (:mod:`filepipe.testing.plugin`) is active once
filepipe is installed and does nothing until a test requests its fixture::

    def test_an_order_is_normalised(local_stack):
        key = local_stack.send("orders", "a.json", [{"id": "a", "amount": "10"}])
        final = local_stack.wait_until_final("orders", key)
        assert final.status == "SUCCEEDED" and final.output == [{"id": "a", "amount": 10.0}]

and :func:`processor_case` (:func:`whole_file_case` for a ``file_processor``) unit-tests a processor
without an endpoint::

    def test_amount_becomes_a_number():
        assert processor_case("transforms:normalise").record({"amount": "10"}) == {"amount": 10.0}

Modules: ``plugin`` (the ``local_stack`` fixture and the ``filepipe_stack`` marker), ``stack``
(:class:`LocalStack`, the helpers on the running stack), ``processor`` (:func:`processor_case`).
The names below load on first use: pytest imports this package with the plugin in every session, which
must cost nothing until a test uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filepipe.handler.errors import (
        FilepipeError,
        PermanentError,
        ProcessorError,
        RetryLaterError,
        SchemaValidationError,
        TransientError,
    )

    from .processor import FileCaseResult, ProcessorCase, WholeFileCaseResult, processor_case, whole_file_case
    from .stack import FinalState, LocalStack, Parked, PipelineTimeoutError

_MODULES = {
    "filepipe.handler.errors": (
        "FilepipeError",
        "PermanentError",
        "ProcessorError",
        "RetryLaterError",
        "SchemaValidationError",
        "TransientError",
    ),
    "filepipe.testing.processor": (
        "FileCaseResult",
        "ProcessorCase",
        "WholeFileCaseResult",
        "processor_case",
        "whole_file_case",
    ),
    "filepipe.testing.stack": ("FinalState", "LocalStack", "Parked", "PipelineTimeoutError"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "FileCaseResult",
    "FilepipeError",
    "FinalState",
    "LocalStack",
    "Parked",
    "PermanentError",
    "PipelineTimeoutError",
    "ProcessorCase",
    "ProcessorError",
    "RetryLaterError",
    "SchemaValidationError",
    "TransientError",
    "WholeFileCaseResult",
    "processor_case",
    "whole_file_case",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
