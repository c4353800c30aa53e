"""One object version, end to end: lease, read, validate, transform, write, record the outcome."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol
from urllib.parse import quote

from botocore.exceptions import BotoCoreError

from .capacity import expected_seconds
from .continuation import Checkpoint, DurablePoint, carry_budget, pack_carry
from .deadline import Deadline
from .decompression import Decompressed, compression_of
from .errors import (
    DeadlineError,
    FilepipeError,
    FileTooLargeError,
    KeyOutsidePrefixError,
    NeedsMoreTimeError,
    ObjectSupersededError,
    OutputKeyTooLongError,
    PermanentError,
    RetriesExhaustedError,
    S3UnavailableError,
    SchemaValidationError,
    TransientError,
    UnexpectedError,
)
from .events import ObjectRef
from .keys import (
    MAX_KEY_BYTES,
    output_folder,
    pipeline_output_key,
    rejects_key,
)
from .readers import CHUNK_BYTES, ReaderState, RecordReader, SourceStream, open_reader
from .retryable import classify, is_transient
from .settings import (
    FileStatus,
    HandlerSettings,
    InputCompression,
    InvalidRecordPolicy,
    OutputCompression,
    OutputFormat,
)
from .source import OpenedObject, open_object
from .state import Lease, Outcome, StateStore
from .transform import Processor, transform
from .validation import Validator
from .whole_file import FileContext, Outputs, WholeFileProcessor, run_whole_file
from .writers import (
    CONTENT_TYPES,
    DEFAULT_PART_BYTES,
    Misfit,
    NdjsonEncoder,
    RecordEncoder,
    S3StreamWriter,
    UploadState,
    abort_upload,
    make_encoder,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

GC_THRESHOLD_WHILE_STREAMING = 50_000
"""Allocations between two of the cyclic garbage collector's youngest-generation passes while a file
is streamed (Python's default is 700). Records are fresh dicts and lists that die young and hold no
cycles, yet every pass walks them: at the default, collection takes about a third of the time
(``bench/throughput.py``)."""


class _FewerCollections:
    """Raise the collector's threshold while any file streams, and restore it when the last one ends.

    The threshold is the process's: invocations that run side by side (the local runtime's pollers,
    tests) must not restore it under each other, hence the count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streaming = 0
        self._saved: tuple[int, int, int] | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._streaming == 0:
                self._saved = gc.get_threshold()
                gc.set_threshold(GC_THRESHOLD_WHILE_STREAMING, *self._saved[1:])
            self._streaming += 1
        try:
            yield
        finally:
            with self._lock:
                self._streaming -= 1
                if self._streaming == 0 and self._saved is not None:
                    gc.set_threshold(*self._saved)


_fewer_collections = _FewerCollections()

MAX_METADATA_BYTES = 2048
"""S3's limit on user-defined metadata: the UTF-8 bytes of every key and value together."""


def _fitting(key: str) -> str:
    """``key`` if S3 can store an object under it; an output that cannot exist is a permanent failure."""
    size = len(key.encode())
    if size > MAX_KEY_BYTES:
        raise OutputKeyTooLongError(
            f"output key would be {size} bytes, above S3's limit of {MAX_KEY_BYTES}: {key[:120]}..."
        )
    return key


class _HasS3(Protocol):
    @property
    def s3(self) -> S3Client: ...


@dataclass(frozen=True, slots=True)
class FileResult:
    """What happened to one object version (a transient failure is raised instead)."""

    ref: ObjectRef
    outcome: Outcome | None = None
    """Set when the output was written and the version recorded SUCCEEDED."""
    skipped: str | None = None
    """Why nothing was done (a duplicate of a final version, a superseded version, own output)."""
    superseded: bool = False
    failure: PermanentError | None = None
    """Set when the version failed permanently; the caller parks its message, then calls
    :meth:`FileProcessor.parked` with ``lease``."""
    lease: Lease | None = None
    continued: Checkpoint | None = None
    """Set when the file outgrew the invocation: its checkpoint is recorded and the lease given back;
    the caller hands the message to a fresh invocation."""
    restarted: str | None = None
    """Set when the version's checkpoint was inconsistent and the file was processed from its start."""


class FileProcessor:
    """Processes object versions for one pipeline; holds no per-call state."""

    def __init__(
        self,
        settings: HandlerSettings,
        clients: _HasS3,
        state: StateStore,
        validator: Validator | None,
        processor: Processor | None,
        part_bytes: int | None = None,
        file_processor: WholeFileProcessor | None = None,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._state = state
        self._validator = validator
        self._processor = processor
        self._part_bytes = part_bytes
        self._file_processor = file_processor

    def output_key_for(self, ref: ObjectRef) -> str:
        try:
            target = pipeline_output_key(ref.key, self._settings)
        except ValueError as exc:
            raise KeyOutsidePrefixError(str(exc)) from None
        return _fitting(target)

    def _is_own_output(self, ref: ObjectRef) -> bool:
        return bool(self._settings.output_prefix) and ref.key.startswith(self._settings.output_prefix)

    def parked(self, lease: Lease, dlq_message_id: str) -> None:
        """Record that the FAILED version's message is in the DLQ, so duplicates are not parked again."""
        self._state.parked(lease, dlq_message_id)

    def release(self, lease: Lease, error: FilepipeError) -> None:
        """Give a FAILED version's lease back when its message could not be parked (it is retried)."""
        with contextlib.suppress(TransientError):
            self._state.release(lease, error)

    def process(
        self, ref: ObjectRef, message_id: str, attempt: int, deadline: Deadline, last_delivery: bool = False
    ) -> FileResult:
        """Process one version under the key's lease; raise a :class:`TransientError` to retry it.

        On the ``last_delivery`` the queue allows, a transient failure under the lease is recorded as a
        permanent :class:`RetriesExhaustedError` instead, so the file is parked with its reason.
        """
        if self._is_own_output(ref):
            # Our own output must never be processed again (recursion guard).
            return FileResult(ref, skipped="object is under the output prefix")
        # A held lease raises here even on the last delivery: the holder may have died with it, so
        # the caller parks this message (a replay is then skipped if the holder did finish).
        claim = self._state.begin(ref, message_id, attempt)
        if not isinstance(claim, Lease):
            return FileResult(
                ref, skipped=f"already {claim.value}", superseded=claim is FileStatus.SUPERSEDED
            )
        lease = claim
        if lease.abandoned is not None:
            # A newer version took over the key mid-continuation, or this version's checkpoint cannot
            # be trusted: that checkpoint's output never completes.
            target = self._abandoned_target(ref)
            if target:
                self._abandon(lease.abandoned, target, ref.bucket)
        result = self._leased(lease, attempt, deadline, last_delivery)
        return replace(result, restarted=lease.restarted) if lease.restarted else result

    def _leased(self, lease: Lease, attempt: int, deadline: Deadline, last_delivery: bool) -> FileResult:
        ref = lease.ref
        try:
            target = self.output_key_for(ref)
            outcome = self._run(lease, target, deadline)
        except ObjectSupersededError as superseded:
            self._end_resumed(lease)
            try:
                self._state.supersede(lease, superseded.reason)
            except TransientError:
                self.release(lease, superseded)
                raise
            return FileResult(ref, skipped=superseded.reason, superseded=True)
        except Exception as exc:
            failure = classify(exc)
            if isinstance(failure, TransientError) and last_delivery:
                failure = RetriesExhaustedError.after(attempt, failure)
            if isinstance(failure, TransientError):
                self.release(lease, failure)
                raise failure from exc
            assert isinstance(failure, PermanentError)
            self._end_resumed(lease)
            return self._failed(lease, failure, last_delivery)
        if isinstance(outcome, Checkpoint):
            return FileResult(ref, continued=outcome)
        try:
            self._state.succeed(lease, outcome)
        except TransientError as error:
            # The output exists but the file is not marked done: the retry rewrites the same key.
            self.release(lease, error)
            raise
        return FileResult(ref, outcome=outcome)

    def _abandoned_target(self, ref: ObjectRef) -> str:
        try:
            return self.output_key_for(ref)
        except PermanentError:
            return ""

    def _end_resumed(self, lease: Lease) -> None:
        """The file ends without an output: its checkpoint's uploads will never complete."""
        if lease.resume is not None:
            target = self._abandoned_target(lease.ref)
            if target:
                self._abandon(lease.resume, target, lease.ref.bucket)

    def _failed(self, lease: Lease, error: PermanentError, last_delivery: bool) -> FileResult:
        try:
            self._state.fail(lease, error)
        except TransientError as state_error:
            if last_delivery:
                # Park it anyway: a message must not leave the queue without its reason.
                return FileResult(lease.ref, failure=error)
            self.release(lease, state_error)
            raise state_error from error
        return FileResult(lease.ref, failure=error, lease=lease)

    def _metadata(self, ref: ObjectRef, etag: str | None, version_id: str | None) -> dict[str, str]:
        """Where the output came from, within S3's 2 KB budget for user metadata.

        S3 user metadata travels as HTTP headers: values are kept ASCII (percent-encoded). An entry that
        would overflow the budget is left out rather than failing the write (a long non-ASCII key
        percent-encodes to up to 9 bytes a character; the output key mirrors it anyway).
        """
        entries = [
            ("pipeline", quote(self._settings.pipeline_name, safe="")),
            ("source-bucket", ref.bucket),
            ("source-version-id", version_id),
            ("source-etag", etag),
            ("source-key", quote(ref.key, safe="/")),
        ]
        metadata: dict[str, str] = {}
        budget = MAX_METADATA_BYTES
        for name, value in entries:
            size = len(name) + len(value or "")
            if value and size <= budget:
                metadata[name] = value
                budget -= size
        return metadata

    def _writer(
        self,
        bucket: str,
        key: str,
        content_type: str,
        metadata: dict[str, str],
        resume: UploadState | None = None,
        compression: OutputCompression = OutputCompression.NONE,
    ) -> S3StreamWriter:
        part_bytes = self._part_bytes if self._part_bytes is not None else DEFAULT_PART_BYTES
        return S3StreamWriter(
            self._clients.s3, bucket, key, content_type, metadata, part_bytes, resume, compression
        )

    def _abandon(self, checkpoint: Checkpoint, target: str, bucket: str) -> None:
        """Abort a checkpoint's uploads (a newer version replaced its file, or the file failed)."""
        keys = [target, rejects_key(target)]
        points = [checkpoint.output, checkpoint.rejects]
        for key, point in zip(keys, points, strict=True):
            if point is not None and point.upload.upload_id:
                abort_upload(self._clients.s3, bucket, key, point.upload.upload_id)

    def _run(self, lease: Lease, target: str, deadline: Deadline) -> Outcome | Checkpoint:
        if self._file_processor is not None:
            return self._whole_file(self._file_processor, lease, deadline)
        return _Attempt(self, lease, target, deadline).run()

    def _whole_file(self, processor: WholeFileProcessor, lease: Lease, deadline: Deadline) -> Outcome:
        """The file through a whole-file processor (:mod:`filepipe.handler.whole_file`)."""
        ref, s = lease.ref, self._settings
        try:
            folder = output_folder(ref.key, s.input_prefix, s.output_prefix)
        except ValueError as exc:
            raise KeyOutsidePrefixError(str(exc)) from None
        started = time.time()
        opened, body = open_source(self._clients.s3, ref, s, 0)
        metadata = self._metadata(ref, opened.etag, opened.version_id)
        stream = SourceStream(body, s.max_file_bytes, 0)
        outputs = Outputs(
            folder,
            lambda key, content_type, extra: self._writer(
                ref.bucket, key, content_type, {**metadata, **extra}
            ),
        )
        context = FileContext(
            ref.bucket,
            ref.key,
            opened.version_id,
            ref.size,
            {
                name: value
                for name, value in (("etag", opened.etag), ("content-encoding", opened.content_encoding))
                if value
            },
            deadline.remaining_ms,
        )
        try:
            run_whole_file(processor, io.BufferedReader(stream, CHUNK_BYTES), outputs, context)
            outputs.close_all()
        except BaseException:
            outputs.abort_all()  # nothing of a failed attempt is published
            raise
        finally:
            body.close()
        latency_ms = None
        if ref.event_time is not None:
            latency_ms = max(0, int((datetime.now(UTC) - ref.event_time).total_seconds() * 1000))
        return Outcome(
            output_key=folder,
            records=len(outputs.keys),
            rejected=0,
            bytes_read=stream.position,
            duration_ms=int((time.time() - started) * 1000),
            latency_ms=latency_ms,
        )

    def _transform(self, index: int, record: Any) -> Any:
        return transform(self._processor, index, record)

    def _close(self, writer: S3StreamWriter, ref: ObjectRef) -> None:
        try:
            writer.close()
        except Exception as exc:
            described = f"writing s3://{ref.bucket}/{writer.key} failed: {exc}"
            if is_transient(exc):
                raise S3UnavailableError(described) from exc
            raise UnexpectedError(described) from exc


class _Attempt:
    """One invocation's work on one file version: from the start, or from its checkpoint."""

    def __init__(self, files: FileProcessor, lease: Lease, target: str, deadline: Deadline) -> None:
        self.files = files
        self.settings = files._settings
        self.lease = lease
        self.ref = lease.ref
        self.target = target
        self.deadline = deadline
        self.resume = lease.resume
        self.start = self.resume.resume if self.resume is not None else None
        self.output: S3StreamWriter | None = None
        self.rejects: S3StreamWriter | None = None
        self.at_start: _Mark | None = None
        self._reject_encoder = NdjsonEncoder()
        self.handed_over: set[int] = set()
        """ids of the writers resumed from a checkpoint: a transient failure keeps their uploads."""

    def run(self) -> Outcome | Checkpoint:
        ref = self.ref
        start_offset = self.start.reader.offset if self.start is not None else 0
        self.remaining_at_start = self.deadline.remaining_ms()
        self.started = time.monotonic()
        self.first_started = self.resume.started_at if self.resume is not None else time.time()
        opened, body = open_source(self.files._clients.s3, ref, self.settings, start_offset)
        self.size = ref.size
        try:
            return self._stream(opened, body, start_offset)
        except BaseException as exc:
            # A transient failure is retried from the checkpoint, which needs its uploads, and so is
            # an invocation that is being killed (a BaseException: in Lambda, a killed process runs no
            # code at all); a permanent failure ends them. Uploads this attempt started are not in any
            # checkpoint: they always go.
            keep = not isinstance(exc, Exception) or is_transient(exc)
            for writer in (self.output, self.rejects):
                if writer is None:
                    continue
                if keep and id(writer) in self.handed_over:
                    writer.settle()
                else:
                    writer.abort()
            if isinstance(exc, FileTooLargeError) and isinstance(body, Decompressed):
                raise FileTooLargeError(
                    f"{exc}: decompressed from {body.compressed_bytes} of the object's"
                    f" {ref.size if ref.size is not None else '?'} bytes"
                ) from None
            raise
        finally:
            body.close()

    def _stream(self, opened: OpenedObject, body: Any, start_offset: int) -> Outcome | Checkpoint:
        s = self.settings
        ref = self.ref
        files = self.files
        resume = self.resume
        metadata = files._metadata(ref, opened.etag, opened.version_id)
        processed_at = datetime.now(UTC)
        if resume is not None and "processed_at" in resume.encoder:
            processed_at = datetime.fromisoformat(str(resume.encoder["processed_at"]))
        encoder = make_encoder(
            s.output_format,
            f"s3://{ref.bucket}/{ref.key}",
            processed_at,
            # The schema types Parquet columns only for records written as validated.
            schema=files._validator.schema if files._validator and files._processor is None else None,
            parquet_row_group_rows=s.parquet_row_group_rows,
            parquet_compression=s.parquet_compression,
        )
        reject_encoder = self._reject_encoder
        output = self.output = files._writer(
            ref.bucket,
            self.target,
            CONTENT_TYPES[s.output_format],
            metadata,
            resume.output.upload if resume is not None else None,
            s.output_compression,
        )
        if resume is not None:
            self.handed_over.add(id(output))
            encoder.restore(resume.encoder, resume.output.records)
            if resume.rejects is not None:
                self.rejects = self._rejects_writer(metadata, resume.rejects.upload)
                self.handed_over.add(id(self.rejects))
        reader_state = self.start.reader.copy() if self.start is not None else ReaderState()
        stream = SourceStream(body, s.max_file_bytes, start_offset)
        validator = files._validator
        plain = validator is None and files._processor is None
        reader = open_reader(
            stream,
            s.input_format,
            reader_state,
            untouched_json=plain and s.output_format in (OutputFormat.JSON, OutputFormat.NDJSON),
        )
        if not reader.resumable or not encoder.continuable:
            self._check_fits(reader.resumable)
        index = self.start.index if self.start is not None else 0
        # Where this invocation starts: an output with nothing durable yet is durable up to here, empty.
        at_start = self.at_start = _Mark(reader.checkpoint(), index, 0, 0)
        out_point = _Mark.of(resume.output) if resume is not None else at_start
        rej_point = _Mark.of(resume.rejects) if resume is not None and resume.rejects is not None else None
        # Records before a point are already in that output (in its parts or its carry).
        out_through = out_point.index
        rej_through = rej_point.index if rej_point is not None else index
        written = out_point.records
        rejected = rej_point.records if rej_point is not None else 0
        if resume is None or resume.output.pristine:
            output.write(encoder.begin())
        errors: list[str] = []
        truncated = False
        reject_file = s.invalid_records is InvalidRecordPolicy.REJECT_FILE
        # Records that need no Python work of their own (no schema, no processor) are encoded a
        # batch at a time.
        try:
            with _fewer_collections():
                for batch in reader.batches():
                    if plain and not errors:
                        fresh = batch[out_through - index :] if index < out_through else batch
                        if fresh:
                            output.write(encoder.encode_parsed(fresh, index + len(batch) - len(fresh)))
                            written += len(fresh)
                        index += len(batch)
                    else:
                        for record in batch:
                            problem = validator.check(record) if validator is not None else None
                            if problem is not None:
                                if index >= rej_through:
                                    rejected += 1
                                    if reject_file:
                                        if len(errors) >= s.max_schema_errors:
                                            truncated = True
                                            break
                                        errors.append(f"record {index}: {problem}")
                                        output.abort()  # the file is rejected: stop buffering output
                                    else:
                                        rejects = self.rejects or self._rejects_writer(metadata, None)
                                        self.rejects = rejects
                                        rejects.write(
                                            reject_encoder.encode(
                                                {"index": index, "error": problem, "record": record}, index
                                            )
                                        )
                            elif index >= out_through and not errors:
                                transformed = files._transform(index, record)
                                if transformed is not None:
                                    written += 1
                                    output.write(encoder.encode(transformed, index))
                            index += 1
                        if truncated:
                            break
                    misfits = encoder.misfits()
                    if misfits:
                        written -= len(misfits)
                        rejected += len(misfits)
                        truncated = self._reject(misfits, errors, metadata) or truncated
                        if truncated:
                            break
                    # Parts end between batches, where the reader knows how far the input was read.
                    if not errors and output.flush_full():
                        out_point = _Mark(reader.checkpoint(), index, written, output.parts_sent)
                    if self.rejects is not None and self.rejects.flush_full():
                        rej_point = _Mark(reader.checkpoint(), index, rejected, self.rejects.parts_sent)
                    if self.deadline.near(0.5):
                        if errors:
                            truncated = True  # not every record was checked: the file is rejected anyway
                            break
                        return self._checkpoint(
                            reader, stream, encoder, index, written, rejected, out_point, rej_point
                        )
        except (OSError, BotoCoreError) as exc:
            # A broken or timed-out response stream (botocore's ReadTimeoutError,
            # ResponseStreamingError, IncompleteReadError) is worth another try.
            raise S3UnavailableError(f"reading s3://{ref.bucket}/{ref.key} failed: {exc}") from exc
        if errors:
            raise SchemaValidationError(errors, truncated)
        ending = encoder.end(written)
        misfits = encoder.misfits()  # the last records are converted at the end
        if misfits:
            written -= len(misfits)
            rejected += len(misfits)
            truncated = self._reject(misfits, errors, metadata)
            if errors:
                raise SchemaValidationError(errors, truncated)
        output.write(ending)
        files._close(output, ref)
        if self.rejects is not None:
            files._close(self.rejects, ref)
        latency_ms = None
        if ref.event_time is not None:
            latency_ms = max(0, int((datetime.now(UTC) - ref.event_time).total_seconds() * 1000))
        return Outcome(
            output_key=self.target,
            records=written,
            rejected=rejected,
            bytes_read=stream.position,
            duration_ms=int((time.time() - self.first_started) * 1000),
            latency_ms=latency_ms,
            rejects_key=self.rejects.key if self.rejects is not None else None,
        )

    def _reject(self, misfits: list[Misfit], errors: list[str], metadata: dict[str, str]) -> bool:
        """Deal with records the output format cannot hold as with records that fail the schema: the
        file is rejected (their reasons are among ``errors``), or they go to the rejects object. True
        when more errors were found than are reported."""
        if self.settings.invalid_records is InvalidRecordPolicy.REJECT_FILE:
            assert self.output is not None
            self.output.abort()  # the file is rejected: stop buffering output
            room = self.settings.max_schema_errors - len(errors)
            errors.extend(f"record {misfit.index}: {misfit.reason}" for misfit in misfits[:room])
            return len(misfits) > room
        rejects = self.rejects or self._rejects_writer(metadata, None)
        self.rejects = rejects
        for misfit in misfits:
            rejects.write(
                self._reject_encoder.encode(
                    {"index": misfit.index, "error": misfit.reason, "record": misfit.record}, misfit.index
                )
            )
        return False

    def _rejects_writer(self, metadata: dict[str, str], resume: UploadState | None) -> S3StreamWriter:
        key = _fitting(rejects_key(self.target))
        return self.files._writer(self.ref.bucket, key, CONTENT_TYPES[OutputFormat.NDJSON], metadata, resume)

    def _check_fits(self, resumable_input: bool) -> None:
        """A file that cannot be continued (a JSON document that is not an array is one record; a
        Parquet output's footer indexes all its row groups) and cannot be done in the time left is parked
        at once, with what it would need."""
        s = self.settings
        memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        remaining = self.remaining_at_start
        if not memory or not memory.isdigit() or remaining is None or self.size is None:
            return
        needed = expected_seconds(self.size, s.input_format, int(memory), s.output_format)
        if needed * 1000 <= remaining - s.timeout_margin_ms / 2:
            return
        what = (
            "a JSON document (not an array)"
            if not resumable_input
            else f"a file with {s.output_format} output"
        )
        if not self.deadline.had_whole_invocation(remaining):
            raise DeadlineError(f"{what} needs more time than is left; will retry")
        instead = (
            "use an array or ndjson" if not resumable_input else "lower max_file_bytes or split the files"
        )
        raise NeedsMoreTimeError(
            f"{what} of {self.size} bytes needs about {needed:.0f} s at {memory} MB and cannot be"
            f" continued; raise timeout_seconds or memory_mb, or {instead}"
        )

    def _out_of_time(self, stream: SourceStream, index: int, why: str) -> NoReturn:
        """Near the deadline with no way to continue: retry if this invocation started the file late,
        else park it with the time it would need (another invocation would end the same way)."""
        if not self.deadline.had_whole_invocation(self.remaining_at_start):
            raise DeadlineError(f"function timeout near after {index} records; will retry")
        elapsed = time.monotonic() - self.started
        done = max(stream.bytes_read, 1)
        left = max((self.size or stream.position) - stream.position, 0)
        needed = elapsed * (done + left) / done
        raise NeedsMoreTimeError(
            f"{why}: read {stream.position} bytes ({index} records) in {elapsed:.0f} s, the whole file"
            f" needs about {needed:.0f} s at this memory; raise timeout_seconds or memory_mb"
        )

    def _checkpoint(
        self,
        reader: RecordReader,
        stream: SourceStream,
        encoder: RecordEncoder,
        index: int,
        written: int,
        rejected: int,
        out_mark: _Mark,
        rej_mark: _Mark | None,
    ) -> Checkpoint:
        """Hand the file to the next invocation, or say why it cannot be."""
        state = self.files._state
        if not encoder.continuable:
            self._out_of_time(stream, index, f"{self.settings.output_format} output cannot be continued")
        if not state.can_checkpoint:
            self._out_of_time(stream, index, "a pipeline without a state table cannot continue a file")
        here = reader.checkpoint()
        assert self.output is not None
        writers = [writer for writer in (self.output, self.rejects) if writer is not None]
        # Each output may send one more part below, at the checkpoint.
        parts = sum(writer.parts_sent + 1 for writer in writers)
        budget = carry_budget(here, encoder.state(), parts)
        out_point, budget = _durable(self.output, out_mark, here, index, written, budget)
        rej_point: DurablePoint | None = None
        if self.rejects is not None:
            assert self.at_start is not None
            rej_point, budget = _durable(
                # A rejects object begun in this invocation was empty where the invocation started.
                self.rejects,
                rej_mark or self.at_start,
                here,
                index,
                rejected,
                budget,
            )
        previous = self.resume.continuations if self.resume is not None else 0
        checkpoint = Checkpoint(
            version=self.ref.version_token,
            output=out_point,
            rejects=rej_point,
            encoder=encoder.state(),
            started_at=self.first_started,
            continuations=previous + 1,
        )
        resume = checkpoint.resume
        if resume.index <= (self.start.index if self.start is not None else 0):
            self._out_of_time(
                stream, index, "no output became durable in this invocation (S3 parts are at least 5 MiB)"
            )
        state.checkpoint(self.lease, checkpoint, resume.reader.offset)
        return checkpoint


def open_source(
    s3: S3Client, ref: ObjectRef, settings: HandlerSettings, start_offset: int
) -> tuple[OpenedObject, Any]:
    """GET the object from where reading resumes, and its body to read: a compressed one from its first
    byte (a compressed stream cannot be entered in the middle), decompressed and skipped to there."""
    setting = settings.input_compression
    known = compression_of(setting, ref.key, None)
    ranged = start_offset if known is InputCompression.NONE else 0
    opened = open_object(s3, ref, settings.max_file_bytes, ranged)
    compression = compression_of(setting, ref.key, opened.content_encoding)
    if compression is InputCompression.NONE:
        return opened, opened.body
    if ranged:  # compressed by its Content-Encoding, which only the response told
        opened.body.close()
        opened = open_object(s3, ref, settings.max_file_bytes, 0)
    body = Decompressed(opened.body, compression)
    if start_offset:
        try:
            body.skip(start_offset)
        except BaseException:
            body.close()
            raise
    return opened, body


@dataclass(frozen=True, slots=True)
class _Mark:
    """How far an output's parts go, at a point between two batches (the parts' ETags are known once
    their uploads end; ``resumed``: the checkpoint's own point, carry included, when nothing was sent
    since it)."""

    reader: ReaderState
    index: int
    records: int
    parts: int
    resumed: DurablePoint | None = None

    @classmethod
    def of(cls, point: DurablePoint) -> _Mark:
        return cls(point.reader, point.index, point.records, len(point.upload.etags), point)

    def point(self, writer: S3StreamWriter) -> DurablePoint:
        if self.resumed is not None:
            return self.resumed
        return DurablePoint(self.reader.copy(), self.index, self.records, writer.handover(through=self.parts))


def _durable(
    writer: S3StreamWriter,
    last: _Mark,
    here: ReaderState,
    index: int,
    records: int,
    budget: int,
) -> tuple[DurablePoint, int]:
    """How far ``writer``'s output is safe at a checkpoint here: sent as a part when S3 takes one that
    small, else kept as a carry while the budget lasts, else only up to its last part (``last``)."""
    if writer.flush_if_possible():
        return DurablePoint(here.copy(), index, records, writer.handover()), budget
    handover = writer.handover()
    packed = len(pack_carry(handover.carry))
    if packed <= budget:
        return DurablePoint(here.copy(), index, records, handover), budget - packed
    return last.point(writer), budget
