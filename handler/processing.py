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
    PermanentError,
    ProcessorError,
    S3UnavailableError,
    SchemaValidationError,
    TransientError,
)
from .events import ObjectRef
from .keys import output_key, rejects_key
from .readers import CheckedStream, iter_records
from .settings import FileFormat, HandlerSettings, InvalidRecordPolicy
from .source import open_object
from .state import Lease, Outcome, StateStore
from .transform import Processor
from .validation import Validator
from .writers import CONTENT_TYPES, NdjsonEncoder, S3StreamWriter, make_encoder

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEADLINE_CHECK_EVERY = 512
"""Records between two looks at the remaining time while streaming a file."""


class _HasS3(Protocol):
    @property
    def s3(self) -> S3Client: ...


@dataclass(frozen=True, slots=True)
class FileResult:
    """What happened to one object version."""

    ref: ObjectRef
    output_key: str | None
    skipped: str | None = None
    """Why nothing was done (already SUCCEEDED, output-prefix object), else ``None``."""
    outcome: Outcome | None = None


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
            return output_key(ref.key, s.input_prefix, s.output_prefix, s.input_format, s.output_format)
        except ValueError as exc:
            raise KeyOutsidePrefixError(str(exc)) from None

    def _is_own_output(self, ref: ObjectRef) -> bool:
        return bool(self._settings.output_prefix) and ref.key.startswith(self._settings.output_prefix)

    def receive(self, ref: ObjectRef, message_id: str) -> None:
        """Record ``ref`` RECEIVED before any file of the batch starts; raise a :class:`TransientError`.

        Versions :meth:`process` will never lease (own output, key outside the input prefix) get no
        item: they would show as waiting forever.
        """
        if self._is_own_output(ref):
            return
        try:
            self.output_key_for(ref)
        except KeyOutsidePrefixError:
            return
        self._state.receive(ref, message_id)

    def mark_parked(self, ref: ObjectRef, dlq_message_id: str) -> None:
        """Record that the FAILED version's message is in the DLQ, so duplicates are not parked again."""
        self._state.parked(ref, dlq_message_id)

    def process(self, ref: ObjectRef, message_id: str, deadline: Deadline) -> FileResult:
        """Raise a :class:`PermanentError` or :class:`TransientError`; the state item is updated first."""
        if self._is_own_output(ref):
            # Our own output must never be processed again (recursion guard).
            return FileResult(ref, None, skipped="object is under the output prefix")
        target = self.output_key_for(ref)
        lease = self._state.begin(ref, message_id)
        if not isinstance(lease, Lease):
            return FileResult(ref, target, skipped=f"already {lease.value}")
        try:
            outcome = self._run(lease, target, deadline)
        except PermanentError as error:
            try:
                self._state.fail(lease, error)
            except TransientError as state_error:
                # Not recorded: give the lease back so the retry is not blocked until it expires.
                self._release(lease, state_error)
                raise state_error from error
            raise
        except TransientError as error:
            self._release(lease, error)
            raise
        except Exception as exc:
            # Unknown failures are retried (then redriven by SQS): never lose a file to a bug.
            unexpected = TransientError(f"{type(exc).__name__}: {exc}")
            self._release(lease, unexpected)
            raise unexpected from exc
        try:
            self._state.succeed(lease, outcome)
        except TransientError as error:
            # The output exists but the file is not marked done: the retry rewrites the same key.
            self._release(lease, error)
            raise
        return FileResult(ref, target, outcome=outcome)

    def _release(self, lease: Lease, error: FilepipeError) -> None:
        # If this fails the lease expires on its own; the original error is what matters.
        with contextlib.suppress(TransientError):
            self._state.release(lease, error)

    def _metadata(self, ref: ObjectRef, etag: str | None, version_id: str | None) -> dict[str, str]:
        # S3 user metadata travels as HTTP headers: keep it ASCII (keys are percent-encoded).
        metadata = {
            "source-bucket": ref.bucket,
            "source-key": quote(ref.key, safe="/"),
            "pipeline": quote(self._settings.pipeline_name, safe=""),
        }
        if version_id:
            metadata["source-version-id"] = version_id
        if etag:
            metadata["source-etag"] = etag
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
                                ref.bucket, rejects_key(target), CONTENT_TYPES[FileFormat.NDJSON], metadata
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
        except Exception as exc:
            raise ProcessorError(f"processor failed on record {index}: {type(exc).__name__}: {exc}") from exc

    def _close(self, writer: S3StreamWriter, ref: ObjectRef) -> None:
        try:
            writer.close()
        except Exception as exc:
            raise S3UnavailableError(f"writing s3://{ref.bucket}/{writer.key} failed: {exc}") from exc
