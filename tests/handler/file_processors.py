"""Whole-file processors the tests configure (``module:function``), as a user would write them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from typing import Any

from filepipe.handler.errors import RetryLaterError

COPY_CHUNK_BYTES = 1024 * 1024


def zip_of_csvs(source: io.BufferedIOBase, outputs: Any, context: Any) -> None:
    """Each CSV member of a zip becomes one NDJSON output named after it (``a/b.csv`` -> ``a/b.ndjson``)."""
    archive = zipfile.ZipFile(io.BytesIO(source.read()))  # a zip's index is at its end: it needs seeking
    for member in archive.infolist():
        if member.is_dir() or not member.filename.lower().endswith(".csv"):
            continue
        output = outputs.open(member.filename[: -len(".csv")] + ".ndjson", "application/x-ndjson")
        with archive.open(member) as raw:
            for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
                output.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")


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
