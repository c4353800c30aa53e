"""filepipe: event-driven file-processing pipelines on AWS, as Pulumi components.

from filepipe import FileProcessingPipeline, PipelineArgs

FileProcessingPipeline("orders", PipelineArgs(input_prefix="incoming/orders/"))

The names below load on first use (``bench/import_time.py`` measures it): ``import filepipe`` is paid by
everything under the package — every ops command, the pytest plugin in every test session — and only
a program that declares a pipeline needs the Pulumi AWS provider the components import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .args import (
        Architecture,
        CircuitBreakerArgs,
        Encryption,
        NotificationMode,
        PipelineArgs,
        PipelineBucketArgs,
        PipelineGroupArgs,
        PrefixLifecycleRule,
    )
    from .bucket import PipelineBucket
    from .errors import PipelineConfigError
    from .group import PipelineGroup
    from .handler.settings import (
        FileFormat,
        InputCompression,
        InvalidRecordPolicy,
        OutputCompression,
        OutputFormat,
        ParquetCompression,
    )
    from .pipeline import FileProcessingPipeline

_MODULES = {
    ".args": (
        "Architecture",
        "CircuitBreakerArgs",
        "Encryption",
        "NotificationMode",
        "PipelineArgs",
        "PipelineBucketArgs",
        "PipelineGroupArgs",
        "PrefixLifecycleRule",
    ),
    ".bucket": ("PipelineBucket",),
    ".errors": ("PipelineConfigError",),
    ".group": ("PipelineGroup",),
    ".handler.settings": (
        "FileFormat",
        "InputCompression",
        "InvalidRecordPolicy",
        "OutputCompression",
        "OutputFormat",
        "ParquetCompression",
    ),
    ".pipeline": ("FileProcessingPipeline",),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "Architecture",
    "CircuitBreakerArgs",
    "Encryption",
    "FileFormat",
    "FileProcessingPipeline",
    "InputCompression",
    "InvalidRecordPolicy",
    "NotificationMode",
    "OutputCompression",
    "OutputFormat",
    "ParquetCompression",
    "PipelineArgs",
    "PipelineBucket",
    "PipelineBucketArgs",
    "PipelineConfigError",
    "PipelineGroup",
    "PipelineGroupArgs",
    "PrefixLifecycleRule",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
