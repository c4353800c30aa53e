"""One object version, end to end: lease, read, validate, transform, write, record the outcome."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from botocore.exceptions import BotoCoreError

from .deadline import Deadline
from .errors import (
    DeadlineError,
    FilepipeError,
    KeyOutsidePrefixError,
    ObjectSupersededError,
    OutputKeyTooLongError,
    PermanentError,
    ProcessorError,
    RetriesExhaustedError,
    RetryLaterError,
    S3UnavailableError,
    SchemaValidationError,
    TransientError,
    UnexpectedError,
)
from .events import ObjectRef
from .keys import MAX_KEY_BYTES, output_key, rejects_key
from .readers import CheckedStream, iter_records
from .retryable import classify, is_transient
from .settings import FileFormat, FileStatus, HandlerSettings, InvalidRecordPolicy
from .source import open_object
from .state import Lease, Outcome, StateStore
from .transform import Processor
from .validation import Validator
from .writers import CONTENT_TYPES, NdjsonEncoder, S3StreamWriter, make_encoder

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEADLINE_CHECK_EVERY = 512
"""Records between two looks at the remaining time while streaming a file."""
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
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._state = state
        self._validator = validator
        self._processor = processor
        self._part_bytes = part_bytes

    def output_key_for(self, ref: ObjectRef) -> str:
        s = self._settings
        try:
            target = output_key(ref.key, s.input_prefix, s.output_prefix, s.input_format, s.output_format)
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
        try:
            outcome = self._run(lease, self.output_key_for(ref), deadline)
        except ObjectSupersededError as superseded:
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
            return self._failed(lease, failure, last_delivery)
        try:
            self._state.succeed(lease, outcome)
        except TransientError as error:
            # The output exists but the file is not marked done: the retry rewrites the same key.
            self.release(lease, error)
            raise
        return FileResult(ref, outcome=outcome)

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

    def _writer(self, bucket: str, key: str, content_type: str, metadata: dict[str, str]) -> S3StreamWriter:
        if self._part_bytes is None:
            return S3StreamWriter(self._clients.s3, bucket, key, content_type, metadata)
        return S3StreamWriter(self._clients.s3, bucket, key, content_type, metadata, self._part_bytes)

    def _run(self, lease: Lease, target: str, deadline: Deadline) -> Outcome:
        s = self._settings
        ref = lease.ref
        started = time.monotonic()
        opened = open_object(self._clients.s3, ref, s.max_file_bytes)
        metadata = self._metadata(ref, opened.etag, opened.version_id)
        output = self._writer(ref.bucket, target, CONTENT_TYPES[s.output_format], metadata)
        rejects: S3StreamWriter | None = None
        try:
            stream = CheckedStream(opened.body, s.max_file_bytes)
            encoder = make_encoder(s.output_format, f"s3://{ref.bucket}/{ref.key}", datetime.now(UTC))
            reject_encoder = NdjsonEncoder()
            output.write(encoder.begin())
            written = rejected = 0
            errors: list[str] = []
            truncated = False
            reject_file = s.invalid_records is InvalidRecordPolicy.REJECT_FILE
            try:
                for index, record in enumerate(iter_records(stream, s.input_format)):
                    if index % DEADLINE_CHECK_EVERY == 0 and deadline.near(0.5):
                        raise DeadlineError(f"function timeout near after {index} records; will retry")
                    problem = self._validator.check(record) if self._validator is not None else None
                    if problem is not None:
                        rejected += 1
                        if reject_file:
                            if len(errors) >= s.max_schema_errors:
                                truncated = True
                                break
                            errors.append(f"record {index}: {problem}")
                            output.abort()  # the file is rejected: stop buffering output
                            continue
                        if rejects is None:
                            rejects = self._writer(
                                ref.bucket,
                                _fitting(rejects_key(target)),
                                CONTENT_TYPES[FileFormat.NDJSON],
                                metadata,
                            )
                        rejects.write(
                            reject_encoder.encode({"index": index, "error": problem, "record": record})
                        )
                        continue
                    if errors:
                        continue
                    transformed = self._transform(index, record)
                    if transformed is None:
                        continue
                    output.write(encoder.encode(transformed))
                    written += 1
            except (OSError, BotoCoreError) as exc:
                # A broken or timed-out response stream (botocore's ReadTimeoutError,
                # ResponseStreamingError, IncompleteReadError) is worth another try.
                raise S3UnavailableError(f"reading s3://{ref.bucket}/{ref.key} failed: {exc}") from exc
            if errors:
                raise SchemaValidationError(errors, truncated)
            output.write(encoder.end(written))
            self._close(output, ref)
            if rejects is not None:
                self._close(rejects, ref)
        except BaseException:
            output.abort()
            if rejects is not None:
                rejects.abort()
            raise
        finally:
            opened.body.close()
        latency_ms = None
        if ref.event_time is not None:
            latency_ms = max(0, int((datetime.now(UTC) - ref.event_time).total_seconds() * 1000))
        return Outcome(
            output_key=target,
            records=written,
            rejected=rejected,
            bytes_read=stream.bytes_read,
            duration_ms=int((time.monotonic() - started) * 1000),
            latency_ms=latency_ms,
            rejects_key=rejects.key if rejects is not None else None,
        )

    def _transform(self, index: int, record: Any) -> Any:
        if self._processor is None:
            return record
        try:
            return self._processor(record)
        except TransientError:
            raise  # the processor asked for a retry (RetryLaterError)
        except Exception as exc:
            if is_transient(exc):
                raise RetryLaterError(f"processor hit a transient error on record {index}: {exc}") from exc
            raise ProcessorError(f"processor failed on record {index}: {type(exc).__name__}: {exc}") from exc

    def _close(self, writer: S3StreamWriter, ref: ObjectRef) -> None:
        try:
            writer.close()
        except Exception as exc:
            described = f"writing s3://{ref.bucket}/{writer.key} failed: {exc}"
            if is_transient(exc):
                raise S3UnavailableError(described) from exc
            raise UnexpectedError(described) from exc
