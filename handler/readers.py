"""Streaming record readers: JSON (a document or a top-level array), NDJSON and CSV in constant memory.

Each reader pulls bytes from the object's body about a megabyte at a time and yields the records of
each chunk as one batch (a list); nothing holds the whole file (except a JSON document that is not an
array: it is one record). Between two batches a reader knows the byte offset of the first byte it has
not consumed and can start again there (a ranged GET of the rest of the object) with the
:class:`ReaderState` it had: that is how a file that outgrows one invocation is continued instead of
restarted. Batches keep the per-record Python work to what a record needs (validation, a processor):
parsing and, for unchanged records, encoding happen a batch at a time in C.

Why these parsers:

- JSON is decoded by msgspec: several times faster than ``json.loads``, integers of any size are exact
  (orjson turns integers beyond 64 bits into floats), and ``NaN``, out-of-range numbers and invalid UTF-8
  are refused by the parser itself, so no separate decoding pass is needed.
- NDJSON: a chunk is cut at its last newline and each line decoded on its own (a line holding two
  values is an error, as it must be).
- A JSON array: msgspec parses whole documents only, and no library streams the items of a top-level
  array at C speed (ijson's C backend builds each item through Python callbacks: about a quarter of
  the speed, ``bench/throughput.py``). So a chunk is cut at a comma that looks like the end of an item
  and ``[`` + the items + ``]`` is decoded as one document: if that parses, the comma was the array's own
  (a parse from the same start cannot end inside a string or a nested value), else an earlier candidate
  is tried, and in the end the standard library's scanner (``JSONDecoder.raw_decode``) reads the chunk
  item by item, which also words the errors.
- CSV is the standard library's C reader over the decoded chunk; a row whose quoted field goes on past
  the chunk is carried to the next one. A chunk with no quote, no bare carriage return and no NUL (most
  of most feeds) is split with ``str.split`` instead, which reads the same rows about a third faster.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from .errors import EmptyFileError, FileTooLargeError, InvalidContentError, InvalidEncodingError
from .settings import FileFormat

CHUNK_BYTES = 512 * 1024
"""Bytes per read from S3: large enough that per-call overhead vanishes, small against the memory."""
_BOM = codecs.BOM_UTF8
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_LOOKAHEAD = 8
"""Characters past a JSON value that decide whether it is complete (the longest cut tail, "e+", is 2)."""


class ByteSource(Protocol):
    def read(self, amt: int | None = ..., /) -> bytes: ...


@dataclass(slots=True)
class ReaderState:
    """Where a reader stands between two batches: enough to start again at ``offset``."""

    offset: int = 0
    """Byte offset in the object of the first byte not yet consumed."""
    line: int = 0
    """Lines consumed so far (error messages name lines of the whole file)."""
    header: list[str] | None = None
    """CSV: the header row, read once at the start of the file."""
    seen_content: bool = False
    """A record (or a CSV header) was read: an empty remainder is then not an empty file, and a JSON
    array is resumed after an item."""

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

    def copy(self) -> ReaderState:
        header = list(self.header) if self.header is not None else None
        return ReaderState(self.offset, self.line, header, self.seen_content)


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


def _complete_utf8(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 character cut at its end (its last 1-3 bytes)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:  # a lead byte: is its character complete?
            width = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= width else len(data) - back
    return len(data)


_decode_json = msgspec.json.Decoder().decode


def _too_deep() -> InvalidContentError:
    return InvalidContentError("invalid JSON: nested too deeply")


def _json_error(data: bytes, offset: int, exc: Exception, where: str = "") -> Exception:
    return _invalid_utf8(data, offset) or InvalidContentError(f"invalid JSON{where}: {exc}")


class RecordReader:
    """:meth:`batches` yields lists of records; :meth:`checkpoint` is where the reader stands after the
    last batch it yielded."""

    resumable = True
    """Whether the reader can start again at a checkpoint (a JSON document that is not an array cannot:
    it is a single record)."""

    def __init__(self, stream: SourceStream, state: ReaderState) -> None:
        self._buffered = io.BufferedReader(stream, buffer_size=CHUNK_BYTES)
        self.state = state
        if state.offset == 0 and self._buffered.peek(len(_BOM))[: len(_BOM)] == _BOM:
            self._buffered.read(len(_BOM))
            state.offset = len(_BOM)

    def batches(self) -> Iterator[list[Any]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        for batch in self.batches():
            yield from batch

    def checkpoint(self) -> ReaderState:
        """A copy of where the reader stands now (just past the batch it yielded last)."""
        return self.state.copy()

    def _chunks(self, cut: Callable[[bytes], int]) -> Iterator[bytes]:
        """The body in pieces that end where ``cut`` says (at a line end); the last piece is the rest."""
        pending = b""
        while True:
            chunk = self._buffered.read(CHUNK_BYTES)
            if not chunk:
                if pending:
                    yield pending
                return
            data = pending + chunk if pending else chunk
            end = cut(data)
            if end <= 0:
                pending = data  # a line longer than a chunk: read on
                continue
            pending = data[end:]
            yield data[:end]


def _after_last_newline(data: bytes) -> int:
    return data.rfind(b"\n") + 1


def _after_last_line_end(data: bytes) -> int:
    end = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
    if end == len(data) and data.endswith(b"\r"):
        # A CR at the end may be the first half of a CRLF: cut at the line end before it instead, so
        # that the LF in the next chunk is not read as one more (empty) line.
        end = max(data.rfind(b"\n", 0, end - 1), data.rfind(b"\r", 0, end - 1)) + 1
    return end


class NdjsonReader(RecordReader):
    def batches(self) -> Iterator[list[Any]]:
        state = self.state
        decode = _decode_json
        for piece in self._chunks(_after_last_newline):
            lines = piece.split(b"\n")
            try:
                records = [decode(line) for line in lines if line and not line.isspace()]
            except msgspec.DecodeError:
                raise self._line_error(lines) from None
            except RecursionError:
                raise _too_deep() from None
            state.offset += len(piece)
            state.line += piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
            if records:
                state.seen_content = True
                yield records
        if not state.seen_content:
            raise EmptyFileError("file has no content")

    def _line_error(self, lines: list[bytes]) -> Exception:
        offset = self.state.offset
        for number, line in enumerate(lines, start=self.state.line + 1):
            if line and not line.isspace():
                try:
                    _decode_json(line)
                except msgspec.DecodeError as exc:
                    return _json_error(line, offset, exc, f" on line {number}")
            offset += len(line) + 1
        return InvalidContentError("invalid JSON")  # pragma: no cover - the batch failed on some line


@functools.cache
def _csv_row_type(header: tuple[str, ...]) -> Any:
    """A struct type whose fields encode as the header's names, in order (any text is a valid name)."""
    names = [f"f{number}" for number in range(len(header))]
    rename = dict(zip(names, header, strict=True))
    return msgspec.defstruct("CsvRow", [(name, str) for name in names], rename=rename)


class CsvReader(RecordReader):
    def batches(self) -> Iterator[list[Any]]:
        state = self.state
        carry = ""
        for piece in self._chunks(_after_last_line_end):
            try:
                text = carry + piece.decode("utf-8")
            except UnicodeDecodeError:
                error = _invalid_utf8(piece, state.offset + len(carry.encode()))
                assert error is not None
                raise error from None
            records, consumed, lines = self._rows(text, final=False)
            carry = text[consumed:]
            state.offset += len(text[:consumed].encode()) if carry else len(text.encode())
            state.line += lines
            if records:
                yield records
        records, consumed, lines = self._rows(carry, final=True)
        state.offset += len(carry.encode())
        state.line += lines
        if records:
            yield records
        if state.header is None:
            raise EmptyFileError("file has no content")

    as_structs = False
    """Records as msgspec structs instead of dicts (encoded as the same JSON objects, built about twice
    as fast): for records that go to a JSON encoder untouched."""

    def _rows(self, text: str, final: bool) -> tuple[list[Any], int, int]:
        """The records of the complete rows of ``text``, the characters they took, and their lines."""
        source = io.StringIO(text, newline="")
        rows = csv.reader(source, strict=True)
        state = self.state
        try:
            if state.header is None:
                header = next(rows, None)
                while header is not None and not header:
                    header = next(rows, None)
                if header is None:
                    return [], len(text), rows.line_num
                if len(set(header)) != len(header) or any(not name for name in header):
                    raise InvalidContentError("CSV header has empty or duplicate column names")
                state.header = header
                state.seen_content = True
            header = state.header
            # (Once the reader has read the header from ``text``, it reads the rest of it too.)
            plain = _plain_lines(text) if rows.line_num == 0 else None
            try:
                if plain is not None:
                    return self._split_rows(plain, header), len(text), len(plain)
                if self.as_structs:
                    make = _csv_row_type(tuple(header))
                    records: list[Any] = [make(*row) for row in rows if row]
                else:
                    records = [dict(zip(header, row, strict=True)) for row in rows if row]
            except (ValueError, TypeError):
                raise self._width_error(text) from None
        except csv.Error as exc:
            if not final and source.tell() == len(text):
                # A quoted field goes on past this piece: keep its row for the next one.
                return self._complete_rows(text)
            raise InvalidContentError(f"invalid CSV: {exc}") from None
        return records, len(text), rows.line_num

    def _split_rows(self, lines: list[str], header: list[str]) -> list[Any]:
        """The records of :func:`_plain_lines` (an empty line is no record, as for the CSV reader)."""
        if self.as_structs:
            make = _csv_row_type(tuple(header))
            return [make(*line.split(",")) for line in lines if line]
        return [dict(zip(header, line.split(","), strict=True)) for line in lines if line]

    def _complete_rows(self, text: str) -> tuple[list[Any], int, int]:
        source = io.StringIO(text, newline="")
        rows = csv.reader(source, strict=True)
        header = self.state.header
        assert header is not None
        records: list[Any] = []
        consumed = lines = 0
        try:
            for row in rows:
                if row:
                    records.append(
                        _csv_row_type(tuple(header))(*row)
                        if self.as_structs
                        else dict(zip(header, row, strict=True))
                    )
                consumed, lines = source.tell(), rows.line_num
        except csv.Error:
            pass  # the unfinished row, which the next piece completes
        except (ValueError, TypeError):
            raise self._width_error(text) from None
        return records, consumed, lines

    def _width_error(self, text: str) -> InvalidContentError:
        header = self.state.header
        assert header is not None
        rows = csv.reader(io.StringIO(text, newline=""), strict=True)
        for row in rows:
            if row and len(row) != len(header):
                return InvalidContentError(
                    f"CSV line {self.state.line + rows.line_num}: {len(row)} fields, header has {len(header)}"
                )
        return InvalidContentError("CSV row width differs from the header")  # pragma: no cover


def _plain_lines(text: str) -> list[str] | None:
    """The lines of ``text`` if the CSV reader would read each as its fields split at commas: no quote
    (quoting is the only way a field holds a comma or a line end), no carriage return but in CRLF line
    ends, no NUL. ``None``: the CSV reader reads ``text``. (Hand-written, not the library's reader,
    because splitting is about a third faster and these are the rows most feeds consist of.)"""
    if '"' in text or "\x00" in text:
        return None
    returns = text.count("\r")
    if returns == 0:
        end = "\n"
    elif returns == text.count("\n") == text.count("\r\n"):
        end = "\r\n"  # every line ends in CRLF, as RFC 4180 writes CSV
    else:
        return None
    lines = text.split(end)
    if lines and lines[-1] == "":
        lines.pop()  # the line end of the last line, not an empty line after it
    return lines


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidContentError(f"invalid JSON: number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise InvalidContentError(f"invalid JSON: {name} is not a JSON value")


_scan = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant).raw_decode
_WHITESPACE_BYTES = re.compile(rb"[ \t\n\r]*")
_decode_raw_items = msgspec.json.Decoder(list[msgspec.Raw]).decode
_EXPONENT_SHAPES = bytes(
    ord("0") if byte in b"0123456789" else ord("e") if byte in b"eE" else byte if byte == ord("+") else 32
    for byte in range(256)
)
"""A translation table that keeps only the shape of a number's exponent: every digit is ``0``, ``E`` is
``e``, ``+`` stays, anything else is a space. (A regular expression over the text runs at a fifth of the
speed of this translation and two substring searches.)"""


def _may_overflow(compact: bytes) -> bool:
    """Whether compact JSON text may hold a number beyond a double's range (an exponent of three digits
    or more after a digit; also true of text that looks like one, which is then read as values)."""
    shapes = compact.translate(_EXPONENT_SHAPES)
    return b"0e000" in shapes or b"0e+000" in shapes


def _raw_items(array: bytes) -> Any:
    """The items of the JSON array ``array`` as compact JSON text, validated as :func:`_decode_json`
    validates them (UTF-8, syntax, numbers in range). Where a number may be out of range the items are
    decoded as values instead, which refuses it, as for any record that is read as values."""
    array.decode("utf-8")  # msgspec does not check the UTF-8 of text it only copies
    compact = msgspec.json.format(array, indent=-1)
    if _may_overflow(compact):
        return _decode_json(compact)
    return _decode_raw_items(compact)


_CUT_CANDIDATES = (b"},", b"],", b",")
"""Where an item of an array most likely ends (tried from the end of the chunk, in this order)."""
_CUT_ATTEMPTS = 4


class JsonReader(RecordReader):
    """A top-level array yields its items (resumable between batches); any other document is one record."""

    as_raw = False
    """An array's items as their JSON text (``msgspec.Raw``, whitespace removed) instead of Python values:
    for items that go to a JSON encoder untouched, which writes the text as it is (about three times
    faster than building the values and encoding them again)."""

    def __init__(self, stream: SourceStream, state: ReaderState) -> None:
        super().__init__(stream, state)
        self._buf = b""
        self._pos = 0
        self._base = state.offset
        """Byte offset in the object of ``self._buf[0]``."""
        self._eof = False
        # Resumed inside the array, just after an item: a ',' or the closing ']' comes next.
        self._resumed = state.seen_content
        if not self._resumed:
            self._skip_whitespace()
            if self._pos >= len(self._buf):
                raise EmptyFileError("file has no content")
            self.resumable = self._buf[self._pos : self._pos + 1] == b"["

    def _fill(self, at_least: int = CHUNK_BYTES) -> bool:
        """Read at least ``at_least`` more bytes (or the rest); False at the end of the file."""
        if self._eof:
            return False
        chunk = self._buffered.read(max(at_least, CHUNK_BYTES))
        if not chunk:
            self._eof = True
            return False
        # Drop what was consumed, so the bytes held are about one chunk plus the item being read.
        self._base += self._pos
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        return True

    def _skip_whitespace(self) -> None:
        while True:
            self._pos = _WHITESPACE_BYTES.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf) or not self._fill():
                return

    def _offset(self) -> int:
        return self._base + self._pos

    def checkpoint(self) -> ReaderState:
        state = self.state.copy()
        state.offset = self._offset()
        return state

    def batches(self) -> Iterator[list[Any]]:
        if not self.resumable:
            yield [self._document()]
            return
        if not self._resumed:
            self._pos += 1  # the opening bracket
        first = not self._resumed
        while True:
            self._skip_whitespace()
            head = self._buf[self._pos : self._pos + 1]
            if not head:
                raise InvalidContentError(f"invalid JSON: the array is not closed at byte {self._offset()}")
            if head == b"]":
                self._pos += 1
                break
            if not first:
                if head != b",":
                    raise InvalidContentError(f"invalid JSON: expected ',' or ']' at byte {self._offset()}")
                self._pos += 1
                self._skip_whitespace()
            first = False
            if len(self._buf) - self._pos < CHUNK_BYTES:
                self._fill()
            records = self._items_in_bulk()
            if records is None:
                records = self._items_one_by_one()
            self.state.seen_content = True
            self.state.offset = self._offset()
            yield records
        self._skip_whitespace()
        if self._pos < len(self._buf):
            raise InvalidContentError(
                f"invalid JSON: trailing garbage after the array at byte {self._offset()}"
            )
        self.state.offset = self._offset()

    def _items_in_bulk(self) -> list[Any] | None:
        """The items from here to a comma (or the closing bracket) near the end of the buffer, decoded
        as one array; ``None`` if no candidate cut parses. Leaves ``_pos`` at the ',' or ']'."""
        buf, start = self._buf, self._pos
        cuts: list[int] = []
        if self._eof:
            closing = buf.rfind(b"]", start)
            if closing > start:
                cuts.append(closing)
        for candidate in _CUT_CANDIDATES:
            end = len(buf)
            while len(cuts) < _CUT_ATTEMPTS:
                found = buf.rfind(candidate, start, end)
                if found < 0:
                    break
                comma = found + len(candidate) - 1
                if comma not in cuts:
                    cuts.append(comma)
                end = found
            if len(cuts) >= _CUT_ATTEMPTS:
                break
        decode = _raw_items if self.as_raw else _decode_json
        for cut in cuts[:_CUT_ATTEMPTS]:
            try:
                records = decode(b"[" + buf[start:cut] + b"]")
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                continue  # the item by item reading finds out why
            if isinstance(records, list) and records:
                self._pos = cut
                return records
        return None

    def _items_one_by_one(self) -> list[Any]:
        """The items of the buffer read with the standard library's scanner, which reads a value from a
        position and says where it ends (and words the error if it is not valid)."""
        while True:
            end = len(self._buf) if self._eof else _complete_utf8(self._buf)
            window = self._buf[self._pos : end]
            try:
                text = window.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidEncodingError(
                    f"invalid UTF-8 at byte {self._offset() + exc.start}: {exc.reason}"
                ) from None
            items, used = self._scan_text(text)
            if items:
                self._pos += len(text[:used].encode("utf-8"))
                return items
            # Not even one whole item in the buffer: read more (doubling, so a huge item costs O(n)).
            self._fill(2 * len(self._buf))

    def _scan_text(self, text: str) -> tuple[list[Any], int]:
        """Items from the start of ``text`` (at an item), and the characters they took up to the next
        ',' or ']' (exclusive); stops before an item that the end of ``text`` may have cut."""
        items: list[Any] = []
        pos = used = 0
        while True:
            try:
                value, end = _scan(text, pos)
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(text) - _LOOKAHEAD or exc.msg.startswith("Unterminated string")
                if cut and not self._eof:
                    return items, used
                offset = self._offset() + len(text[: exc.pos].encode("utf-8"))
                raise InvalidContentError(f"invalid JSON: {_first_line(exc.msg)} at byte {offset}") from None
            except RecursionError:
                raise _too_deep() from None
            if len(text) - end < _LOOKAHEAD and not self._eof:
                return items, used  # "1." or "tru" may go on past the buffer
            items.append(value)
            used = pos = end
            pos = _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text[pos : pos + 1] != ",":
                return items, used  # the ']' (or an error) is for the caller to see
            pos = _WHITESPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
            if pos >= len(text) - _LOOKAHEAD and not self._eof:
                return items, used

    def _document(self) -> Any:
        while self._fill():
            pass
        data = self._buf[self._pos :]
        try:
            record = _decode_json(data)
        except msgspec.DecodeError as exc:
            raise _json_error(data, self._offset(), exc) from None
        except RecursionError:
            raise _too_deep() from None
        self._pos = len(self._buf)
        self.state.seen_content = True
        self.state.offset = self._offset()
        return record


def open_reader(
    stream: SourceStream,
    file_format: FileFormat,
    state: ReaderState | None = None,
    untouched_json: bool = False,
) -> RecordReader:
    """A reader for ``stream`` (which starts at ``state.offset``: 0 for a new file). ``untouched_json``:
    the records go straight to a JSON encoder (no schema, no processor), in whatever form is fastest."""
    start = state if state is not None else ReaderState()
    if file_format is FileFormat.JSON:
        json_reader = JsonReader(stream, start)
        json_reader.as_raw = untouched_json
        return json_reader
    if file_format is FileFormat.NDJSON:
        return NdjsonReader(stream, start)
    reader = CsvReader(stream, start)
    reader.as_structs = untouched_json
    return reader


__all__ = [
    "CHUNK_BYTES",
    "ReaderState",
    "RecordReader",
    "SourceStream",
    "open_reader",
]
