"""Whole-file processors: a function that sees the file, not its records.

Some files are not records at all (a zip of CSVs, an image, a PDF to forward or index). A pipeline with a
``file_processor`` (``module:function``) calls it once per file version with

- ``source``: a readable binary stream of the file (decompressed when the file is compressed, and held
  to the pipeline's size cap, as for every pipeline);
- ``outputs``: :class:`Outputs`, which opens output objects under the file's own output folder
  (``<output prefix><the input key's path>/<name>``), each streamed to S3 with its content type;
- ``context``: :class:`FileContext` (key, version, size, metadata, the remaining time).

Everything else is the pipeline's: the lease and the state item, a duplicate delivery skipped, a newer
version superseding an older one, the error classes (``RetryLaterError``, or an error a throttled or
unavailable service raised, is retried; anything else fails the file, which is parked once with its
reason), the metrics. The outputs appear only if the function returns: on a failure the ones it opened
are discarded. A whole-file processor is not continued in a fresh invocation (it holds state only it
knows): it must finish within the function's timeout, which ``context.remaining_ms()`` tells.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import FilepipeError, OutputKeyTooLongError, ProcessorError, RetryLaterError
from .keys import MAX_KEY_BYTES
from .retryable import is_transient


class OutputWriter(Protocol):
    """What an output object is written with: the handler's ``S3StreamWriter``, or a test's stand-in."""

    key: str

    def write(self, data: bytes) -> None: ...
    def flush_full(self) -> bool: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


WholeFileProcessor = Callable[[io.BufferedIOBase, "Outputs", "FileContext"], Any]


@dataclass(frozen=True, slots=True)
class FileContext:
    """What a whole-file processor knows of the file besides its bytes."""

    bucket: str
    key: str
    version_id: str | None
    size: int | None
    """The object's size in S3 (compressed, when it is)."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The event's and the object's: ``etag``, ``content-encoding`` when set."""
    remaining_ms: Callable[[], int | None] = lambda: None
    """Milliseconds left in this invocation (``None``: no Lambda context)."""


class OutputNameError(ValueError):
    """An output name that would leave the file's output folder (``..``, an absolute path, ...)."""


class OutputObject:
    """One output object being written: ``write(bytes)``; it appears when the processor returns."""

    def __init__(self, writer: OutputWriter) -> None:
        self._writer = writer
        self.key = writer.key

    def write(self, data: bytes) -> int:
        self._writer.write(bytes(data))
        self._writer.flush_full()  # a part as soon as there is one: no continuation to line up with
        return len(data)


class Outputs:
    """Opens the output objects of one file, each under ``folder`` (the file's output folder)."""

    def __init__(
        self, folder: str, open_writer: Callable[[str, str, Mapping[str, str]], OutputWriter]
    ) -> None:
        self.folder = folder
        self._open_writer = open_writer
        self._opened: dict[str, OutputWriter] = {}

    def open(
        self,
        name: str,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> OutputObject:
        """A new output object ``<folder><name>``; ``name`` may hold ``/`` but must stay in the folder."""
        key = self.folder + _checked(name)
        if len(key.encode()) > MAX_KEY_BYTES:
            raise OutputKeyTooLongError(f"output key would be {len(key.encode())} bytes: {key[:120]}...")
        if key in self._opened:
            raise OutputNameError(f"output {name!r} was opened twice for the same file")
        writer = self._open_writer(key, content_type, dict(metadata or {}))
        self._opened[key] = writer
        return OutputObject(writer)

    @property
    def keys(self) -> list[str]:
        return list(self._opened)

    def close_all(self) -> None:
        for writer in self._opened.values():
            writer.close()

    def abort_all(self) -> None:
        for writer in self._opened.values():
            writer.abort()


def _checked(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or any(part in ("", ".", "..") for part in parts):
        raise OutputNameError(
            f"output name {name!r} must be a relative path inside the file's output folder"
            " (no '..', '.', empty or absolute parts, no backslash)"
        )
    return name


def run_whole_file(
    processor: WholeFileProcessor, source: io.BufferedIOBase, outputs: Outputs, context: FileContext
) -> None:
    """Call ``processor``, with what it raises as the handler's error classes."""
    try:
        processor(source, outputs, context)
    except FilepipeError:
        raise  # the processor asked for a retry (RetryLaterError), or the source refused (size cap, ...)
    except Exception as exc:
        if is_transient(exc):
            raise RetryLaterError(f"file processor hit a transient error: {exc}") from exc
        raise ProcessorError(f"file processor failed: {type(exc).__name__}: {exc}") from exc
