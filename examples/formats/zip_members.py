"""The formats stack's whole-file processor: each CSV member of a zip archive becomes one NDJSON output.

It runs in the Lambda function from the code archive's root (``processorCodeDir: examples/formats``), so it
imports only the standard library. ``outputs.open`` keeps every output inside the archive's own output
folder: a member named ``../x.csv`` (a path-traversal entry) fails the file with that reason, and the
outputs already opened for it are discarded, so a hostile archive writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any


def zip_of_csvs(source: io.BufferedIOBase, outputs: Any, context: Any) -> None:
    """``a/b.csv`` in the archive -> ``<output folder>a/b.ndjson``, one JSON object per row."""
    # A zip's index is at its end, so the archive is read whole; the pipeline's size cap bounds it.
    archive = zipfile.ZipFile(io.BytesIO(source.read()))
    for member in archive.infolist():
        if member.is_dir() or not member.filename.lower().endswith(".csv"):
            continue
        output = outputs.open(member.filename[: -len(".csv")] + ".ndjson", "application/x-ndjson")
        with archive.open(member) as raw:
            for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
                output.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
