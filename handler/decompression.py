"""Compressed inputs: gzip and zstd, decompressed as they stream, in constant memory.

Which compression a file has is decided once (:func:`compression_of`): the pipeline's setting, or with
``auto`` the key's suffix, then the object's ``Content-Encoding``. The readers see the decompressed bytes
through :class:`Decompressed`, a ``read(size)`` source like the S3 body it wraps, so every format reads
compressed files with no change; the size cap (``SourceStream``) then applies to the decompressed bytes,
which is what makes a small object that inflates to gigabytes (a compression bomb) a permanent
``FileTooLargeError`` rather than an out-of-memory kill.

Each step inflates at most ``size`` bytes, whatever the input holds: zlib's and zstd's ``max_length``.
(Written on the decompressors, not on ``gzip.GzipFile`` or a zstd stream reader: ``GzipFile`` words a
truncated stream as ``EOFError`` and python-zstandard's stream reader returns what it has without
saying the frame is incomplete; here both are a :class:`CorruptCompressionError` with the reason.)
Concatenated gzip members and zstd frames are one stream, as ``gzip -d`` and ``zstd -d`` read them.
"""

from __future__ import annotations

import zlib
from typing import Any, Final, Protocol

from .errors import CorruptCompressionError
from .keys import COMPRESSION_SUFFIXES
from .settings import InputCompression

COMPRESSED_READ_BYTES: Final = 256 * 1024
"""Compressed bytes read from S3 at a time."""
_CONTENT_ENCODINGS: Final = {
    "gzip": InputCompression.GZIP,
    "x-gzip": InputCompression.GZIP,
    "zstd": InputCompression.ZSTD,
}


def compression_of(setting: InputCompression, key: str, content_encoding: str | None) -> InputCompression:
    """The compression of the object at ``key`` (never ``AUTO``)."""
    if setting is not InputCompression.AUTO:
        return setting
    lowered = key.lower()
    for compression, suffix in COMPRESSION_SUFFIXES.items():
        if lowered.endswith(suffix):
            return InputCompression(compression)
    encoding = (content_encoding or "").strip().lower()
    return _CONTENT_ENCODINGS.get(encoding, InputCompression.NONE)


class _Inflater(Protocol):
    """One gzip member or one zstd frame being decompressed."""

    @property
    def eof(self) -> bool:
        """Whether the member or frame ended."""

    def inflate(self, data: bytes, max_length: int) -> bytes:
        """Up to ``max_length`` bytes of output for ``data`` (input it has not used yet it keeps)."""

    def has_output(self) -> bool:
        """Whether more output is ready without more input."""

    @property
    def unused_data(self) -> bytes:
        """Input after the end of the member or frame."""


class _StreamError(Exception):
    """The decompressor refused the stream (its own error, worded)."""


class _Gzip:
    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer (CRC-32, size)
        self._tail = b""

    @property
    def eof(self) -> bool:
        return bool(self._zlib.eof)

    def inflate(self, data: bytes, max_length: int) -> bytes:
        try:
            output = self._zlib.decompress(self._tail + data, max_length)
        except zlib.error as exc:
            raise _StreamError(str(exc)) from None
        self._tail = self._zlib.unconsumed_tail
        return output

    def has_output(self) -> bool:
        return bool(self._tail)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._zlib.unused_data)


class _Zstd:
    def __init__(self) -> None:
        # Python 3.14's compression.zstd, as a package for the runtimes before it; imported here, so that
        # what imports the handler without reading a zstd file needs no zstd.
        from backports import zstd

        self._zstd = zstd.ZstdDecompressor()
        self._error = zstd.ZstdError

    @property
    def eof(self) -> bool:
        return bool(self._zstd.eof)

    def inflate(self, data: bytes, max_length: int) -> bytes:
        try:
            return bytes(self._zstd.decompress(data, max_length))
        except self._error as exc:
            raise _StreamError(str(exc)) from None

    def has_output(self) -> bool:
        return not self._zstd.needs_input

    @property
    def unused_data(self) -> bytes:
        return bytes(self._zstd.unused_data)


_INFLATERS: Final[dict[InputCompression, type[_Gzip] | type[_Zstd]]] = {
    InputCompression.GZIP: _Gzip,
    InputCompression.ZSTD: _Zstd,
}


class Decompressed:
    """``read(size)`` of the decompressed bytes of ``body`` (a gzip or zstd stream)."""

    def __init__(self, body: Any, compression: InputCompression) -> None:
        self._body = body
        self._compression = compression
        self._new = _INFLATERS[compression]
        self._inflater: _Inflater = self._new()
        self._pending = b""
        """Compressed input read and not yet given to an inflater (the start of the next member)."""
        self._source_done = False
        self._started = False
        self.compressed_bytes = 0
        """Compressed bytes read from the body so far."""

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = COMPRESSED_READ_BYTES * 4
        while True:
            if self._inflater.eof and not self._next_member():
                return b""
            if self._inflater.has_output() or self._pending:
                data, self._pending = self._pending, b""
            elif not self._source_done:
                data = self._body.read(COMPRESSED_READ_BYTES)
                self.compressed_bytes += len(data)
                if not data:
                    self._source_done = True
                    continue
            else:
                if self._started:
                    raise CorruptCompressionError(
                        f"the {self._compression} stream ends before it is complete (truncated after"
                        f" {self.compressed_bytes} compressed bytes)"
                    )
                return b""
            self._started = self._started or bool(data)
            try:
                output = self._inflater.inflate(data, size)
            except _StreamError as exc:
                raise CorruptCompressionError(
                    f"the {self._compression} stream is corrupt near compressed byte"
                    f" {self.compressed_bytes}: {exc}"
                ) from None
            if output:
                return output

    def _next_member(self) -> bool:
        """After a member or frame: go on with the next one if input follows; False at the end."""
        rest = self._inflater.unused_data + self._pending
        while not rest and not self._source_done:
            rest = self._body.read(COMPRESSED_READ_BYTES)
            self.compressed_bytes += len(rest)
            self._source_done = not rest
        if not rest:
            return False
        self._inflater = self._new()
        self._pending = rest
        return True

    def skip(self, count: int) -> None:
        """Read and drop the first ``count`` decompressed bytes (a continued file resumes past them: a
        compressed stream cannot be entered in the middle)."""
        while count > 0:
            dropped = self.read(min(count, 1024 * 1024))
            if not dropped:
                raise CorruptCompressionError(
                    f"the {self._compression} stream ends {count} bytes before where the file resumes"
                )
            count -= len(dropped)

    def close(self) -> None:
        self._body.close()
