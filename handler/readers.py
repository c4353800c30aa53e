"""Streaming record readers: JSON (a document or a top-level array), NDJSON and CSV in constant memory.

Each reader pulls bytes from the object's body chunk by chunk; nothing holds the whole file (except a
JSON document that is not an array: it is one record). Every reader knows the byte offset just past
the record it yielded last, and can start again at such an offset (a ranged GET of the rest of the
object) with the :class:`ReaderState` it had there: that is how a file that outgrows one invocation is
continued instead of restarted.

Why these parsers:

- NDJSON lines are decoded by msgspec: about 8x faster than ``json.loads`` per line, integers of any
  size are exact (orjson turns integers beyond 64 bits into floats), and it refuses ``NaN`` and invalid
  UTF-8 by itself, so no separate decoding pass is needed.
- A JSON array is split into items by the standard library's C scanner (``JSONDecoder.raw_decode``) over
  incrementally decoded text. No library streams the items of a top-level array at C speed: ijson's C
  backend builds each item through Python callbacks (about half the speed measured in
  ``bench/throughput.py``), and msgspec and orjson parse whole documents only.
- CSV is the standard library's C reader, fed line by line so that the byte offset of every row is known
  (a quoted field may span lines, so a row boundary is not a line boundary).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from .errors import EmptyFileError, FileTooLargeError, InvalidContentError, InvalidEncodingError
from .settings import FileFormat

CHUNK_BYTES = 1024 * 1024
"""Bytes per read from S3: large enough that per-call overhead vanishes, small against the memory."""
_BOM = codecs.BOM_UTF8
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_LOOKAHEAD = 8
"""Characters past a JSON value that decide whether it is complete (the longest cut tail, "e+", is 2)."""


class ByteSource(Protocol):
    def read(self, amt: int | None = ..., /) -> bytes: ...


@dataclass(slots=True)
class ReaderState:
    """Where a reader stands between two records: enough to start again at ``offset``."""

    offset: int = 0
    """Byte offset in the object of the first byte not yet consumed."""
    line: int = 0
    """Lines consumed so far (error messages name lines of the whole file)."""
    header: list[str] | None = None
    """CSV: the header row, read once at the start of the file."""
    seen_content: bool = False
    """A record (or a CSV header) was read: an empty remainder is then not an empty file."""

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"offset": self.offset, "line": self.line, "seen": self.seen_content}
        if self.header is not None:
            item["header"] = self.header
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ReaderState:
        header = item.get("header")
        return cls(
            offset=int(item["offset"]),
            line=int(item.get("line", 0)),
            header=[str(name) for name in header] if header is not None else None,
            seen_content=bool(item.get("seen", True)),
        )


class SourceStream(io.RawIOBase):
    """The object's body as a raw stream starting at byte ``start``, refusing bytes beyond the cap."""

    def __init__(self, source: ByteSource, max_bytes: int, start: int = 0) -> None:
        super().__init__()
        self._source = source
        self._max_bytes = max_bytes
        self._overflow = b""
        self.position = start
        """Absolute offset in the object of the next byte this stream returns."""
        self.bytes_read = 0
        """Bytes read from the source by this stream (not counting what a previous invocation read)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        # Fill the whole request unless the body ends: a short read would make BufferedReader.peek and
        # the BOM check below see less than they need.
        while filled < len(view):
            chunk = self._overflow or self._source.read(len(view) - filled)
            if not chunk:
                break
            size = min(len(chunk), len(view) - filled)
            view[filled : filled + size] = chunk[:size]
            self._overflow = chunk[size:]  # a source may return more than it was asked for
            filled += size
        self.position += filled
        self.bytes_read += filled
        if self.position > self._max_bytes:
            raise FileTooLargeError(f"file exceeds the size cap of {self._max_bytes} bytes")
        return filled


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "parse error"


def _invalid_utf8(data: bytes, offset: int) -> InvalidEncodingError | None:
    """The encoding error in ``data`` (which starts at byte ``offset`` of the file), if it has one."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidEncodingError(f"invalid UTF-8 at byte {offset + exc.start}: {exc.reason}")
    return None


class RecordReader:
    """Iterate to get the records; :attr:`state` is where the reader stands after the last one."""

    resumable = True
    """Whether the reader can start again at :attr:`state` (a JSON document that is not an array
    cannot: it is a single record)."""

    def __init__(self, stream: SourceStream, state: ReaderState) -> None:
        self._buffered = io.BufferedReader(stream, buffer_size=CHUNK_BYTES)
        self.state = state
        if state.offset == 0 and self._buffered.peek(len(_BOM))[: len(_BOM)] == _BOM:
            self._buffered.read(len(_BOM))
            state.offset = len(_BOM)

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError

    def checkpoint(self) -> ReaderState:
        """A copy of where the reader stands now (just past the record it yielded last)."""
        state = self.state
        header = list(state.header) if state.header is not None else None
        return ReaderState(self._offset(), state.line, header, state.seen_content)

    def _offset(self) -> int:
        return self.state.offset


class NdjsonReader(RecordReader):
    _decode = msgspec.json.Decoder().decode

    def __iter__(self) -> Iterator[Any]:
        state = self.state
        decode = self._decode
        for line in self._buffered:
            start = state.offset
            state.offset += len(line)
            state.line += 1
            if line.isspace():
                continue
            try:
                record = decode(line)
            except msgspec.DecodeError as exc:
                raise _invalid_utf8(line, start) or InvalidContentError(
                    f"invalid JSON on line {state.line}: {exc}"
                ) from None
            state.seen_content = True
            yield record
        if not state.seen_content:
            raise EmptyFileError("file has no content")


class CsvReader(RecordReader):
    def _lines(self) -> Iterator[str]:
        state = self.state
        for raw in self._buffered:
            start = state.offset
            state.offset += len(raw)
            state.line += 1
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                error = _invalid_utf8(raw, start)
                assert error is not None
                raise error from None

    def __iter__(self) -> Iterator[dict[str, str]]:
        state = self.state
        rows = csv.reader(self._lines(), strict=True)
        try:
            header = state.header
            if header is None:
                header = next(rows, None)
                while header is not None and not header:
                    header = next(rows, None)
                if header is None:
                    raise EmptyFileError("file has no content")
                if len(set(header)) != len(header) or any(not name for name in header):
                    raise InvalidContentError("CSV header has empty or duplicate column names")
                state.header = header
                state.seen_content = True
            width = len(header)
            for row in rows:
                if not row:
                    continue
                if len(row) != width:
                    raise InvalidContentError(f"CSV line {state.line}: {len(row)} fields, header has {width}")
                yield dict(zip(header, row, strict=True))
        except csv.Error as exc:
            raise InvalidContentError(f"invalid CSV: {exc}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidContentError(f"invalid JSON: number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise InvalidContentError(f"invalid JSON: {name} is not a JSON value")


class JsonReader(RecordReader):
    """A top-level array yields its items (resumable between items); any other document is one record."""

    _scan = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant).raw_decode

    def __init__(self, stream: SourceStream, state: ReaderState) -> None:
        super().__init__(stream, state)
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._text = ""
        self._pos = 0
        self._bytes_fed = state.offset
        self._eof = False
        # Resumed inside the array, just after an item: a ',' or the closing ']' comes next.
        self._resumed = state.seen_content
        if not self._resumed:
            self._skip_whitespace()
            if not self._text[self._pos : self._pos + 1]:
                raise EmptyFileError("file has no content")
            self.resumable = self._text[self._pos] == "["

    def _fill(self, at_least: int = CHUNK_BYTES) -> bool:
        """Append at least ``at_least`` more bytes of text (or the rest); False at the end of the file,
        with the text and the position left as they were."""
        if self._eof:
            return False
        chunk = self._buffered.read(max(at_least, CHUNK_BYTES))
        self._bytes_fed += len(chunk)
        try:
            text = self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            offset = self._bytes_fed - len(chunk) + exc.start
            raise InvalidEncodingError(f"invalid UTF-8 at byte {offset}: {exc.reason}") from None
        if not chunk:
            self._eof = True
            return False
        # Drop what was consumed, so the text held is about one chunk plus the record being read.
        self._text = self._text[self._pos :] + text
        self._pos = 0
        return True

    def _skip_whitespace(self) -> None:
        while True:
            self._pos = _WHITESPACE.match(self._text, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._text) or not self._fill():
                return

    def _offset(self) -> int:
        pending = len(self._decoder.getstate()[0])
        return self._bytes_fed - pending - len(self._text[self._pos :].encode("utf-8"))

    def _value(self) -> Any:
        """The JSON value at ``_pos``, reading more text until it is complete (or clearly invalid)."""
        while True:
            try:
                value, end = self._scan(self._text, self._pos)
            except json.JSONDecodeError as exc:
                # Cut by the end of the text read so far? Then it may be valid with more. An unclosed
                # string reports where it starts, anywhere before.
                cut = exc.pos >= len(self._text) - _LOOKAHEAD or exc.msg.startswith("Unterminated string")
                if cut and self._fill(len(self._text) - self._pos):
                    continue
                raise InvalidContentError(
                    f"invalid JSON: {_first_line(exc.msg)} at byte {self._offset()}"
                ) from None
            except RecursionError:
                raise InvalidContentError("invalid JSON: nested too deeply") from None
            # A number or literal just before the end of the text may go on in the next chunk ("1.",
            # "1e+"): decide with more text.
            if len(self._text) - end < _LOOKAHEAD and self._fill():
                continue
            self._pos = end
            return value

    def __iter__(self) -> Iterator[Any]:
        state = self.state
        if not self.resumable:
            record = self._value()
            self._skip_whitespace()
            if self._pos < len(self._text):
                raise InvalidContentError(
                    f"invalid JSON: trailing garbage after the document at byte {self._offset()}"
                )
            state.offset = self._offset()
            state.seen_content = True
            yield record
            return
        if not self._resumed:
            self._pos += 1  # the opening bracket
        first = not self._resumed
        while True:
            self._skip_whitespace()
            head = self._text[self._pos : self._pos + 1]
            if not head:
                raise InvalidContentError(f"invalid JSON: the array is not closed at byte {self._offset()}")
            if head == "]":
                self._pos += 1
                break
            if not first:
                if head != ",":
                    raise InvalidContentError(f"invalid JSON: expected ',' or ']' at byte {self._offset()}")
                self._pos += 1
                self._skip_whitespace()
            record = self._value()
            first = False
            state.seen_content = True
            yield record
        self._skip_whitespace()
        if self._pos < len(self._text):
            raise InvalidContentError(f"invalid JSON: trailing garbage after the array at byte {self._offset()}")


def open_reader(
    stream: SourceStream, file_format: FileFormat, state: ReaderState | None = None
) -> RecordReader:
    """A reader for ``stream`` (which starts at ``state.offset``: 0 for a new file)."""
    start = state if state is not None else ReaderState()
    if file_format is FileFormat.JSON:
        return JsonReader(stream, start)
    if file_format is FileFormat.NDJSON:
        return NdjsonReader(stream, start)
    return CsvReader(stream, start)


__all__ = [
    "CHUNK_BYTES",
    "ReaderState",
    "RecordReader",
    "SourceStream",
    "open_reader",
]
