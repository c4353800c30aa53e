"""Streaming output: record encoders and an S3 writer that switches to multipart for large outputs.

Memory stays bounded by one part whatever the output size. A small output is a single ``PutObject``; a
large one is a multipart upload that is aborted if anything fails before completion, so a failed attempt
never leaves a partial object under the output key. Parts end on record boundaries, and a writer can be
handed over to the next invocation (:class:`UploadState`): its upload id, its parts' ETags, and the
bytes not yet in a part (the carry), so that a file that outgrows one invocation is continued.

Records are encoded by msgspec (about 10x ``json.dumps`` a record, and as fast again a batch at a
time; orjson is as fast for a whole list but pays ~4 µs a call for one record). It writes UTF-8
directly, so non-ASCII text is kept as it is, and integers of any size exactly. Where it would write
what ``json.dumps`` refuses, the handler still refuses: ``NaN`` and infinities (which msgspec writes as
``null``) are an :class:`OutputShapeError`, as is a string that is not valid Unicode. Deliberate
differences from ``json.dumps``: floats with an exponent are written in the shortest form (``1e16``
for ``1e+16``, ``1e-7`` for ``1e-07``; the same number), and a processor's ``datetime``, ``date``,
``UUID``, ``Decimal``, ``bytes`` (base64) and ``set`` values are written instead of refused.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from .errors import OutputIntegrityError, OutputShapeError, OutputTooLargeError
from .output_compression import CONTENT_ENCODINGS, compressor
from .settings import (
    DEFAULT_PARQUET_ROW_GROUP_ROWS,
    FileFormat,
    OutputCompression,
    OutputFormat,
    ParquetCompression,
)
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
    OutputFormat.JSON: "application/json",
    OutputFormat.NDJSON: "application/x-ndjson",
    OutputFormat.CSV: "text/csv; charset=utf-8",
    OutputFormat.PARQUET: "application/vnd.apache.parquet",  # the media type IANA registered
}

_encoder = msgspec.json.Encoder()


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(item) for item in value)
    return False


def _refused(exc: BaseException) -> OutputShapeError:
    if isinstance(exc, RecursionError):
        return OutputShapeError("record nests too deeply to be encoded as JSON")
    if isinstance(exc, UnicodeEncodeError):
        return OutputShapeError(f"record cannot be encoded as UTF-8: {exc.reason}")
    return OutputShapeError(f"record cannot be encoded as JSON: {exc}")


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON in UTF-8 (see the module's doc for what is refused)."""
    try:
        encoded = _encoder.encode(value)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError) as exc:
        raise _refused(exc) from None
    # msgspec writes NaN and infinities as null: only a record with a null can hide one.
    if b"null" in encoded and _has_non_finite(value):
        raise OutputShapeError(
            "record cannot be encoded as JSON: Out of range float values are not JSON compliant"
        )
    return encoded


def dump_json(value: Any) -> str:
    return encode_json(value).decode()


def encode_json_lines(records: list[Any]) -> bytes:
    """``records`` as NDJSON, one call for the batch: for records a parser produced (they hold no NaN)."""
    try:
        return _encoder.encode_lines(records)
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        return b"".join([encode_json(record) + b"\n" for record in records])  # finds and words the culprit


def encode_json_items(records: list[Any]) -> bytes:
    """``records`` joined by commas (the items of a JSON array), one call for the batch: for records a
    parser produced."""
    try:
        return _encoder.encode(records)[1:-1]
    except (TypeError, ValueError, RecursionError, msgspec.EncodeError):
        return b",".join([encode_json(record) for record in records])


@dataclass(frozen=True, slots=True)
class Misfit:
    """A record an encoder took and cannot write (a Parquet column type it does not fit)."""

    index: int
    record: Any
    reason: str


class RecordEncoder(Protocol):
    continuable: bool
    """Whether another invocation can go on with the output (:meth:`state`, :meth:`restore`)."""

    def begin(self) -> bytes: ...
    def encode(self, record: Any, index: int) -> bytes:
        """The output for ``record`` (the input's record ``index``): now, or with later records."""

    def encode_parsed(self, records: list[Any], first_index: int) -> bytes:
        """``encode`` of each record, joined: for records as a parser produced them (no NaN)."""

    def misfits(self) -> list[Misfit]:
        """Records handed over since the last call that the output cannot hold (they are not in it)."""

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

    continuable = True

    def encode(self, record: Any, index: int) -> bytes:
        if self._first:
            self._first = False
            return encode_json(record)
        return b"," + encode_json(record)

    def misfits(self) -> list[Misfit]:
        return []

    def encode_parsed(self, records: list[Any], first_index: int) -> bytes:
        items = encode_json_items(records)
        if self._first:
            self._first = False
            return items
        return b"," + items

    def end(self, record_count: int) -> bytes:
        return envelope_tail(record_count)

    def state(self) -> dict[str, Any]:
        return {"processed_at": self._processed_at}

    def restore(self, state: dict[str, Any], records_written: int) -> None:
        # The head already written holds the first invocation's time; the count decides the separator.
        self._first = records_written == 0


class NdjsonEncoder:
    continuable = True

    def begin(self) -> bytes:
        return b""

    def encode(self, record: Any, index: int) -> bytes:
        return encode_json(record) + b"\n"

    def encode_parsed(self, records: list[Any], first_index: int) -> bytes:
        return encode_json_lines(records)

    def misfits(self) -> list[Misfit]:
        return []

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

    continuable = True

    def begin(self) -> bytes:
        return b""

    def encode(self, record: Any, index: int) -> bytes:
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

    def encode_parsed(self, records: list[Any], first_index: int) -> bytes:
        return b"".join([self.encode(record, index) for index, record in enumerate(records, first_index)])

    def misfits(self) -> list[Misfit]:
        return []

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


def make_encoder(
    output_format: OutputFormat | FileFormat,
    source_file: str,
    processed_at: datetime,
    *,
    schema: Mapping[str, Any] | None = None,
    parquet_row_group_rows: int = DEFAULT_PARQUET_ROW_GROUP_ROWS,
    parquet_compression: ParquetCompression = ParquetCompression.SNAPPY,
) -> RecordEncoder:
    """The encoder for ``output_format``; ``schema`` (the records' JSON Schema) types Parquet columns."""
    output_format = OutputFormat(output_format)  # an input format's name is an output format's too
    if output_format is OutputFormat.JSON:
        return EnvelopeEncoder(source_file, processed_at)
    if output_format is OutputFormat.NDJSON:
        return NdjsonEncoder()
    if output_format is OutputFormat.PARQUET:
        # Imported here: pyarrow is loaded only where Parquet is written (it comes from its own layer).
        from .parquet_output import ParquetEncoder

        return ParquetEncoder(schema, parquet_row_group_rows, parquet_compression)
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
    size: int = 0
    """Bytes of output so far, in the parts and the carry (the completed object must have exactly these)."""


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
        compression: OutputCompression = OutputCompression.NONE,
    ) -> None:
        self._s3 = s3
        self._compressor = compressor(compression)
        """Compresses what is written (``None``: written as it is); every part ends a member."""
        self._content_encoding = CONTENT_ENCODINGS.get(compression)
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
        self._sent = len(self._parts)
        """Parts sent or being sent."""
        self._resumed_parts = self._sent
        self._resumed_size = resume.size - len(resume.carry) if resume else 0
        """Output bytes in the parts the checkpoint handed over (all it wrote but its carry)."""
        self._sizes: list[int] = []
        """Output bytes through each part sent in this invocation (index: part number - resumed - 1)."""
        self._in_flight: tuple[int, Future[Any]] | None = None
        self._next_flush = part_size(len(self._parts) + 1, part_bytes)
        self.bytes_written = resume.size if resume else 0
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes written and not yet sent in a part."""
        return len(self._buffer)

    @property
    def upload_id(self) -> str | None:
        return self._upload_id

    def write(self, data: bytes) -> None:
        """Buffer ``data`` (whole records); parts are sent by :meth:`flush_full`, between batches, so
        that every part ends where the reader can say how far the input was read."""
        if self._compressor is not None:
            data = self._compressor.compress(data)
        self._buffer += data
        self.bytes_written += len(data)

    def _end_member(self) -> None:
        """End the compressed member, so that what is buffered can end a part or be handed over."""
        if self._compressor is not None:
            rest = self._compressor.end_member()
            self._buffer += rest
            self.bytes_written += len(rest)

    def flush_full(self) -> bool:
        """Send the buffer as a part once it reached the part size; True if it did."""
        if len(self._buffer) >= self._next_flush:
            self._end_member()
            self._flush_part()
            return True
        return False

    def flush_if_possible(self) -> bool:
        """Send what is buffered as a part if S3 accepts a part of that size; True if it did."""
        self._end_member()
        if len(self._buffer) >= MIN_PART_BYTES:
            self._flush_part()
            return True
        return not self._buffer

    @property
    def parts_sent(self) -> int:
        return self._sent

    def handover(self, through: int | None = None) -> UploadState:
        """The state the next invocation resumes from: every part and the buffer as the carry (after
        :meth:`flush_if_possible`), or only the first ``through`` parts and no carry."""
        self._wait()
        etags = [str(part["ETag"]) for part in self._parts]
        if through is not None:
            return UploadState(self._upload_id, etags[:through], b"", self._size_through(through))
        self._end_member()  # the carry holds whole members: the next invocation starts a new one
        return UploadState(self._upload_id, etags, bytes(self._buffer), self.bytes_written)

    def _size_through(self, parts: int) -> int:
        """Output bytes in the first ``parts`` parts."""
        if parts == 0:
            return 0
        if parts == self._resumed_parts:
            return self._resumed_size
        if parts < self._resumed_parts:
            # Only the total of the handed-over parts is known; no checkpoint goes back inside them.
            raise ValueError(f"the size through part {parts} of {self._resumed_parts} resumed is unknown")
        return self._sizes[parts - self._resumed_parts - 1]

    def settle(self) -> None:
        """Wait for the part in flight, whatever its upload's fate (after a failure that keeps the upload
        for a retry: a part still uploading could land after the retry's part of the same number)."""
        with contextlib.suppress(Exception):
            self._wait()

    def _flush_part(self) -> None:
        number = self._sent + 1
        if number > MAX_PARTS:
            raise OutputTooLargeError(
                f"s3://{self._bucket}/{self.key} would need more than {MAX_PARTS} parts"
            )
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(**self._object_fields())
            self._upload_id = created["UploadId"]
        body = bytes(self._buffer)
        self._buffer.clear()
        self._sizes.append(self.bytes_written)
        # One part uploads while the next is produced: reading and encoding go on during the upload
        # (the socket wait releases the GIL), at the cost of one more part in memory.
        self._wait()
        self._sent = number
        self._next_flush = part_size(number + 1, self._base_part_bytes)
        upload = _uploader().submit(
            self._s3.upload_part,
            Bucket=self._bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._in_flight = (number, upload)

    def _wait(self) -> None:
        """Wait for the part in flight and record its ETag (raises what its upload raised)."""
        if self._in_flight is None:
            return
        number, upload = self._in_flight
        self._in_flight = None
        part = upload.result()
        self._parts.append({"ETag": part["ETag"], "PartNumber": number})

    def _object_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": self.key,
            "ContentType": self._content_type,
            "Metadata": self._metadata,
        }
        if self._content_encoding:
            fields["ContentEncoding"] = self._content_encoding
        return fields

    def close(self) -> None:
        if self.closed:
            return
        self._end_member()
        if self._compressor is not None and self.bytes_written == 0:
            empty = self._compressor.empty()
            self._buffer += empty
            self.bytes_written += len(empty)
        if self._upload_id is None:
            self._s3.put_object(Body=bytes(self._buffer), **self._object_fields())
            self._buffer.clear()
        else:
            if self._buffer:
                self._flush_part()
            self._wait()
            completed = self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._verify_size(completed.get("VersionId"))
        self.closed = True

    def _verify_size(self, version_id: str | None) -> None:
        """An object assembled from parts of several invocations must hold exactly what was written:
        anything else is a bug or a race, and the file must fail rather than be recorded as done."""
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": self.key}
        if version_id:
            request["VersionId"] = version_id
        size = int(self._s3.head_object(**request)["ContentLength"])
        if size != self.bytes_written:
            raise OutputIntegrityError(
                f"s3://{self._bucket}/{self.key} holds {size} bytes but {self.bytes_written} were written"
            )

    def abort(self) -> None:
        """Discard what was written; best effort (a lifecycle rule cleans up what this misses)."""
        self._buffer.clear()
        self.settle()  # a part still uploading would otherwise outlive the abort
        if self._upload_id is not None and not self.closed:
            upload_id, self._upload_id = self._upload_id, None
            abort_upload(self._s3, self._bucket, self.key, upload_id)
        self.closed = True


_UPLOADER: ThreadPoolExecutor | None = None
_UPLOADER_LOCK = threading.Lock()


def _uploader() -> ThreadPoolExecutor:
    """The threads that upload parts, shared by every writer of the process (created on first use)."""
    global _UPLOADER  # noqa: PLW0603 - one pool per process, like the clients
    with _UPLOADER_LOCK:
        if _UPLOADER is None:
            _UPLOADER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="filepipe-upload")
        return _UPLOADER


def abort_upload(s3: S3Client, bucket: str, key: str, upload_id: str) -> None:
    """Abort an upload; never raises (a lifecycle rule removes what is left, and the error that made
    us abort must not be masked)."""
    with contextlib.suppress(Exception):
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
