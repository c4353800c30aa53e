"""Streaming record readers: JSON (document or top-level array), NDJSON and CSV in constant memory.

Each reader pulls bytes from a file-like object chunk by chunk; nothing holds the whole file. The
:class:`CheckedStream` in front of them strips a UTF-8 byte-order mark, rejects invalid UTF-8 as its own
error (rather than as a confusing parse error), counts bytes and enforces the size cap.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Protocol

import ijson

from .errors import EmptyFileError, FileTooLargeError, InvalidContentError, InvalidEncodingError
from .settings import FileFormat

CHUNK_BYTES = 256 * 1024
_BOM = codecs.BOM_UTF8


class ByteSource(Protocol):
    def read(self, amt: int | None = ..., /) -> bytes: ...


class CheckedStream(io.RawIOBase):
    """A raw binary stream over ``source`` that validates UTF-8 and counts what passes through."""

    def __init__(self, source: ByteSource, max_bytes: int) -> None:
        super().__init__()
        self._source = source
        self._max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = b""
        self._started = False
        self._finished = False
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        chunk = self._source.read(CHUNK_BYTES)
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max_bytes:
            raise FileTooLargeError(f"file exceeds the size cap of {self._max_bytes} bytes")
        if not self._started:
            # The BOM may be split across tiny reads; gather at least three bytes before deciding.
            while len(chunk) < len(_BOM) and chunk:
                more = self._source.read(CHUNK_BYTES)
                if not more:
                    break
                self.bytes_read += len(more)
                chunk += more
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        try:
            self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            offset = self.bytes_read - len(chunk) + exc.start
            raise InvalidEncodingError(f"invalid UTF-8 at byte {offset}: {exc.reason}") from None
        return chunk

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        while not self._pending:
            if self._finished:
                return 0
            chunk = self._next_chunk()
            if not chunk:
                self._finished = True
                return 0
            self._pending = chunk
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "parse error"


def _json_records(stream: io.BufferedReader[Any]) -> Iterator[Any]:
    head = stream.peek(1)
    while head[:1].isspace():
        stream.read(1)
        head = stream.peek(1)
    if not head:
        raise EmptyFileError("file has no content")
    # A top-level array is a stream of records; any other document is one record.
    prefix = "item" if head[:1] == b"[" else ""
    try:
        yield from ijson.items(stream, prefix, use_float=True)
    except ijson.JSONError as exc:
        raise InvalidContentError(f"invalid JSON: {_first_line(str(exc))}") from None


def _ndjson_records(text: io.TextIOWrapper) -> Iterator[Any]:
    seen_content = False
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        seen_content = True
        try:
            yield json.loads(line)
        except ValueError as exc:
            raise InvalidContentError(f"invalid JSON on line {number}: {exc}") from None
    if not seen_content:
        raise EmptyFileError("file has no content")


def _csv_records(text: io.TextIOWrapper) -> Iterator[dict[str, str]]:
    rows = csv.reader(text, strict=True)
    try:
        header = next(rows, None)
        while header is not None and not header:
            header = next(rows, None)
        if header is None:
            raise EmptyFileError("file has no content")
        if len(set(header)) != len(header) or any(not name for name in header):
            raise InvalidContentError("CSV header has empty or duplicate column names")
        for row in rows:
            if not row:
                continue
            if len(row) != len(header):
                raise InvalidContentError(
                    f"CSV line {rows.line_num}: {len(row)} fields, header has {len(header)}"
                )
            yield dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise InvalidContentError(f"invalid CSV: {exc}") from None


def iter_records(stream: CheckedStream, file_format: FileFormat) -> Iterator[Any]:
    """Yield the records of ``stream`` one at a time; raise permanent errors for bad content."""
    buffered = io.BufferedReader(stream, buffer_size=CHUNK_BYTES)
    if file_format is FileFormat.JSON:
        return _json_records(buffered)
    text = io.TextIOWrapper(buffered, encoding="utf-8", newline="" if file_format is FileFormat.CSV else None)
    if file_format is FileFormat.NDJSON:
        return _ndjson_records(text)
    return _csv_records(text)
