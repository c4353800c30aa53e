"""Whole-file processors the tests configure (``module:function``), as a user would write them (the zip
one is the formats stack's own, which its function runs from its code archive)."""

from __future__ import annotations

import hashlib
import io
from typing import Any

from examples.formats.zip_members import zip_of_csvs
from filepipe.handler.errors import RetryLaterError

__all__ = ["copy_with_checksum", "downstream_busy", "zip_of_csvs"]

COPY_CHUNK_BYTES = 1024 * 1024


def copy_with_checksum(source: io.BufferedIOBase, outputs: Any, context: Any) -> None:
    """The file copied through as it is, with its SHA-256 in the output's metadata."""
    digest = hashlib.sha256()
    chunks = []
    while chunk := source.read(COPY_CHUNK_BYTES):
        digest.update(chunk)
        chunks.append(chunk)
    name = context.key.rsplit("/", 1)[-1]
    output = outputs.open(name, "application/octet-stream", {"sha256": digest.hexdigest()})
    for chunk in chunks:
        output.write(chunk)


def downstream_busy(source: io.BufferedIOBase, outputs: Any, context: Any) -> None:
    outputs.open("partial.bin").write(source.read(10))
    raise RetryLaterError("the indexing service answered 429")
