"""Compressed outputs: gzip or zstd, written as the output streams.

The output is compressed as a sequence of gzip members or zstd frames, each one ended where a part of
the multipart upload ends (and where a checkpoint hands the output to the next invocation). A part then
never ends inside a member, so a continued file, whose compressor state cannot be handed over, starts a
new member where the last one ended; ``gzip -d``, ``zstd -d`` and S3 Select read the members as one
stream, and the decompressed output is byte for byte the uncompressed one.
"""

from __future__ import annotations

import zlib
from typing import Final, Protocol

from .settings import OutputCompression

GZIP_LEVEL: Final = 6
"""zlib's default: most of the ratio of level 9 at a fraction of its CPU."""
ZSTD_LEVEL: Final = 3
"""zstd's default level."""
CONTENT_ENCODINGS: Final = {OutputCompression.GZIP: "gzip", OutputCompression.ZSTD: "zstd"}


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes:
        """Compressed bytes for ``data`` (possibly none yet: the compressor buffers)."""

    def end_member(self) -> bytes:
        """The rest of the current member or frame; the next :meth:`compress` starts a new one."""

    def empty(self) -> bytes:
        """A whole member or frame of nothing: an empty output is still a valid compressed stream."""


class _Gzip:
    def __init__(self) -> None:
        self._new()

    def _new(self) -> None:
        self._zlib = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
        self._open = False

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""  # zlib would start a member (its header) that nothing then ends
        self._open = True
        return self._zlib.compress(data)

    def end_member(self) -> bytes:
        if not self._open:
            return b""
        rest = self._zlib.flush(zlib.Z_FINISH)
        self._new()
        return rest

    def empty(self) -> bytes:
        return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31).flush(zlib.Z_FINISH)


class _Zstd:
    def __init__(self) -> None:
        # Python 3.14's compression.zstd, as a package for the runtimes before it (imported when used).
        from backports import zstd

        self._zstd = zstd.ZstdCompressor(level=ZSTD_LEVEL)
        self._open = False

    def compress(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._open = True
        return bytes(self._zstd.compress(data))

    def end_member(self) -> bytes:
        if not self._open:
            return b""
        self._open = False
        return bytes(self._zstd.flush(self._zstd.FLUSH_FRAME))

    def empty(self) -> bytes:
        from backports import zstd

        return bytes(zstd.compress(b"", level=ZSTD_LEVEL))


def compressor(compression: OutputCompression) -> Compressor | None:
    """A compressor for ``compression`` (``None``: the output is written as it is)."""
    if compression is OutputCompression.GZIP:
        return _Gzip()
    if compression is OutputCompression.ZSTD:
        return _Zstd()
    return None
