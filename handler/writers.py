"""Streaming output: record encoders and an S3 writer that switches to multipart for large outputs.

Memory stays bounded by one part (``part_bytes``) whatever the output size. A small output is a single
``PutObject``; a large one is a multipart upload that is aborted if anything fails before completion,
so a failed attempt never leaves a partial object under the output key.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .errors import OutputShapeError
from .settings import FileFormat
from .transform import envelope_head, envelope_tail

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_BYTES = 5 * 1024 * 1024
DEFAULT_PART_BYTES = 8 * 1024 * 1024
CONTENT_TYPES = {
    FileFormat.JSON: "application/json",
    FileFormat.NDJSON: "application/x-ndjson",
    FileFormat.CSV: "text/csv; charset=utf-8",
}


def dump_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise OutputShapeError(f"record cannot be encoded as JSON: {exc}") from None
    except RecursionError:
        raise OutputShapeError("record nests too deeply to be encoded as JSON") from None


class RecordEncoder(Protocol):
    def begin(self) -> bytes: ...
    def encode(self, record: Any) -> bytes: ...
    def end(self, record_count: int) -> bytes: ...


class EnvelopeEncoder:
    """``{"source_file", "processed_at", "data": [...], "record_count"}`` (the JSON output format)."""

    def __init__(self, source_file: str, processed_at: datetime) -> None:
        self._head = envelope_head(source_file, processed_at)
        self._first = True

    def begin(self) -> bytes:
        return self._head

    def encode(self, record: Any) -> bytes:
        separator = "" if self._first else ","
        self._first = False
        return (separator + dump_json(record)).encode()

    def end(self, record_count: int) -> bytes:
        return envelope_tail(record_count)


class NdjsonEncoder:
    def begin(self) -> bytes:
        return b""

    def encode(self, record: Any) -> bytes:
        return (dump_json(record) + "\n").encode()

    def end(self, record_count: int) -> bytes:
        return b""


class CsvEncoder:
    """Columns come from the first record; nested values are written as JSON text."""

    def __init__(self) -> None:
        self._columns: list[str] | None = None
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def begin(self) -> bytes:
        return b""

    def encode(self, record: Any) -> bytes:
        if not isinstance(record, Mapping):
            raise OutputShapeError(f"CSV output needs object records, got {type(record).__name__}")
        if self._columns is None:
            self._columns = [str(name) for name in record]
            self._writer.writerow(self._columns)
        extra = [str(name) for name in record if str(name) not in self._columns]
        if extra:
            raise OutputShapeError(f"record has fields {extra} that are not in the CSV header")
        self._writer.writerow([_cell(record.get(name)) for name in self._columns])
        encoded = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return encoded

    def end(self, record_count: int) -> bytes:
        return b""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return dump_json(value)


def make_encoder(output_format: FileFormat, source_file: str, processed_at: datetime) -> RecordEncoder:
    if output_format is FileFormat.JSON:
        return EnvelopeEncoder(source_file, processed_at)
    if output_format is FileFormat.NDJSON:
        return NdjsonEncoder()
    return CsvEncoder()


class S3StreamWriter:
    """Write bytes to ``s3://bucket/key``; :meth:`close` publishes, :meth:`abort` discards."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        content_type: str,
        metadata: Mapping[str, str],
        part_bytes: int = DEFAULT_PART_BYTES,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.key = key
        self._content_type = content_type
        self._metadata = dict(metadata)
        self._part_bytes = max(part_bytes, MIN_PART_BYTES)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= self._part_bytes:
            self._flush_part()

    def _flush_part(self) -> None:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type, Metadata=self._metadata
            )
            self._upload_id = created["UploadId"]
        body = bytes(self._buffer)
        self._buffer.clear()
        number = len(self._parts) + 1
        part = self._s3.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})

    def close(self) -> None:
        if self.closed:
            return
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
                Metadata=self._metadata,
            )
            self._buffer.clear()
        else:
            if self._buffer:
                self._flush_part()
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self.closed = True

    def abort(self) -> None:
        """Discard what was written; best effort (a lifecycle rule cleans up what this misses)."""
        self._buffer.clear()
        if self._upload_id is not None and not self.closed:
            upload_id, self._upload_id = self._upload_id, None
            # Never mask the error that made us abort; a lifecycle rule removes what is left.
            with contextlib.suppress(Exception):
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self.key, UploadId=upload_id)
        self.closed = True
