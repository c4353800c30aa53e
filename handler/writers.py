"""Streaming output: record encoders and an S3 writer that switches to multipart for large outputs.

Memory stays bounded by one part whatever the output size. A small output is a single ``PutObject``; a
large one is a multipart upload that is aborted if anything fails before completion, so a failed attempt
never leaves a partial object under the output key. Parts end on record boundaries, and a writer can be
handed over to the next invocation (:class:`UploadState`): its upload id, its parts' ETags, and the
bytes not yet in a part (the carry), so that a file that outgrows one invocation is continued.

Records are encoded by orjson (about 10x ``json.dumps``; it writes UTF-8 directly, so non-ASCII text
is kept as it is). Where orjson would write something ``json.dumps`` refuses or spells differently, the
standard library decides, so the output's rules are unchanged: integers beyond 64 bits, non-string keys
and subclasses of built-in types are encoded by ``json.dumps``; ``NaN`` and infinities (which orjson
writes as ``null``) are refused. Floats are written in orjson's shortest round-trip form, which spells
some exponents differently (``1e-7`` for ``1e-07``, ``0.00001`` for ``1e-05``): the same number.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from .errors import OutputShapeError, OutputTooLargeError
from .settings import FileFormat
from .transform import envelope_head, envelope_tail

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_BYTES = 5 * 1024 * 1024
"""S3's smallest part (all but the last)."""
MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
"""S3's largest part."""
MAX_PARTS = 10_000
"""S3's most parts in one upload."""
DEFAULT_PART_BYTES = 8 * 1024 * 1024
PARTS_PER_DOUBLING = 500
"""The part size doubles after every this many parts: 5,500 parts of 8 MiB doubling reach S3's 5 TB
object limit, while a file of a few GB keeps 8 MiB parts (and its memory)."""
CONTENT_TYPES = {
    FileFormat.JSON: "application/json",
    FileFormat.NDJSON: "application/x-ndjson",
    FileFormat.CSV: "text/csv; charset=utf-8",
}

_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _stdlib_json(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise OutputShapeError(f"record cannot be encoded as JSON: {exc}") from None
    except RecursionError:
        raise OutputShapeError("record nests too deeply to be encoded as JSON") from None
    except UnicodeEncodeError as exc:
        raise OutputShapeError(f"record cannot be encoded as UTF-8: {exc.reason}") from None


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(item) for item in value)
    return False


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8, under ``json.dumps``'s rules (see the module's doc)."""
    try:
        encoded = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _stdlib_json(value)  # decides (and words the refusal) as before
    # orjson writes NaN and infinities as null: only a record with a null can hide one.
    if b"null" in encoded and _has_non_finite(value):
        return _stdlib_json(value)  # raises OutputShapeError
    return encoded


def dump_json(value: Any) -> str:
    return encode_json(value).decode()


class RecordEncoder(Protocol):
    def begin(self) -> bytes: ...
    def encode(self, record: Any) -> bytes: ...
    def end(self, record_count: int) -> bytes: ...
    def state(self) -> dict[str, Any]:
        """What a continuation needs to go on encoding the same output."""

    def restore(self, state: dict[str, Any], records_written: int) -> None: ...


class EnvelopeEncoder:
    """``{"source_file", "processed_at", "data": [...], "record_count"}`` (the JSON output format)."""

    def __init__(self, source_file: str, processed_at: datetime) -> None:
        self._head = envelope_head(source_file, processed_at)
        self._processed_at = processed_at.isoformat()
        self._first = True

    def begin(self) -> bytes:
        return self._head

    def encode(self, record: Any) -> bytes:
        if self._first:
            self._first = False
            return encode_json(record)
        return b"," + encode_json(record)

    def end(self, record_count: int) -> bytes:
        return envelope_tail(record_count)

    def state(self) -> dict[str, Any]:
        return {"processed_at": self._processed_at}

    def restore(self, state: dict[str, Any], records_written: int) -> None:
        # The head already written holds the first invocation's time; the count decides the separator.
        self._first = records_written == 0


class NdjsonEncoder:
    def begin(self) -> bytes:
        return b""

    def encode(self, record: Any) -> bytes:
        return encode_json(record) + b"\n"

    def end(self, record_count: int) -> bytes:
        return b""

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any], records_written: int) -> None:
        return None


class CsvEncoder:
    """Columns come from the first record; nested values are written as JSON text."""

    def __init__(self) -> None:
        self._columns: list[str] | None = None
        self._known: frozenset[str] = frozenset()
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\n")

    def begin(self) -> bytes:
        return b""

    def encode(self, record: Any) -> bytes:
        if not isinstance(record, Mapping):
            raise OutputShapeError(f"CSV output needs object records, got {type(record).__name__}")
        if self._columns is None:
            columns = [str(name) for name in record]
            self._set_columns(columns)
            self._writer.writerow(columns)
        assert self._columns is not None
        extra = [str(name) for name in record if str(name) not in self._known]
        if extra:
            raise OutputShapeError(f"record has fields {extra} that are not in the CSV header")
        self._writer.writerow([_cell(record.get(name)) for name in self._columns])
        encoded = self._buffer.getvalue().encode()
        self._buffer.seek(0)
        self._buffer.truncate()
        return encoded

    def _set_columns(self, columns: list[str]) -> None:
        self._columns = columns
        self._known = frozenset(columns)

    def end(self, record_count: int) -> bytes:
        return b""

    def state(self) -> dict[str, Any]:
        return {"columns": self._columns} if self._columns is not None else {}

    def restore(self, state: dict[str, Any], records_written: int) -> None:
        # The header row is already in the output: only the column order is needed.
        columns = state.get("columns")
        if columns is not None:
            self._set_columns([str(name) for name in columns])


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


def part_size(number: int, base: int = DEFAULT_PART_BYTES) -> int:
    """The size at which part ``number`` (from 1) is sent: ``base``, doubled every
    :data:`PARTS_PER_DOUBLING` parts, within S3's bounds."""
    doublings = min((number - 1) // PARTS_PER_DOUBLING, 20)
    return min(max(base, MIN_PART_BYTES) << doublings, MAX_PART_BYTES)


@dataclass(slots=True)
class UploadState:
    """A multipart upload in progress, as one invocation hands it to the next."""

    upload_id: str | None = None
    etags: list[str] = field(default_factory=list)
    """The ETags of parts 1..n, in order."""
    carry: bytes = b""
    """Output written after the last part: the start of the next part."""


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
        resume: UploadState | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.key = key
        self._content_type = content_type
        self._metadata = dict(metadata)
        self._base_part_bytes = part_bytes
        self._buffer = bytearray(resume.carry if resume else b"")
        self._upload_id: str | None = resume.upload_id if resume else None
        self._parts: list[CompletedPartTypeDef] = [
            {"ETag": etag, "PartNumber": number}
            for number, etag in enumerate(resume.etags if resume else [], 1)
        ]
        self._next_flush = part_size(len(self._parts) + 1, part_bytes)
        self.bytes_written = len(self._buffer)
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes written and not yet sent in a part."""
        return len(self._buffer)

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    def write(self, data: bytes) -> bool:
        """Buffer ``data`` (whole records); True when that completed a part and sent it."""
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= self._next_flush:
            self._flush_part()
            return True
        return False

    def flush_if_possible(self) -> bool:
        """Send what is buffered as a part if S3 accepts a part of that size; True if it did."""
        if len(self._buffer) >= MIN_PART_BYTES:
            self._flush_part()
            return True
        return not self._buffer

    def handover(self) -> UploadState:
        """The state the next invocation resumes from (after :meth:`flush_if_possible`)."""
        return UploadState(self._upload_id, [str(part["ETag"]) for part in self._parts], bytes(self._buffer))

    def _flush_part(self) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise OutputTooLargeError(
                f"s3://{self._bucket}/{self.key} would need more than {MAX_PARTS} parts"
            )
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self.key, ContentType=self._content_type, Metadata=self._metadata
            )
            self._upload_id = created["UploadId"]
        body = bytes(self._buffer)
        self._buffer.clear()
        part = self._s3.upload_part(
            Bucket=self._bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})
        self._next_flush = part_size(number + 1, self._base_part_bytes)

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
            abort_upload(self._s3, self._bucket, self.key, upload_id)
        self.closed = True


def abort_upload(s3: S3Client, bucket: str, key: str, upload_id: str) -> None:
    """Abort an upload; never raises (a lifecycle rule removes what is left, and the error that made
    us abort must not be masked)."""
    with contextlib.suppress(Exception):
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
