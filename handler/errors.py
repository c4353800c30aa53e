"""The handler's error hierarchy: every failure is either permanent or transient.

A :class:`PermanentError` is about the file or the message itself (bad content, missing object, unknown
body, a bug the content triggers): retrying cannot help, so the message goes to the DLQ at once. A
:class:`TransientError` is about the moment (throttling, 5xx, timeouts, connection errors, a held
lease): the message is retried with backoff. Only errors known to be temporary are transient; an
exception nobody classified is permanent (:class:`UnexpectedError`), so it is parked with its reason
instead of being retried until the queue's redrive moves it without one.

A user's processor signals "retry me" by raising :class:`RetryLaterError` (or letting a transient AWS or
connection error propagate); any other exception fails the file permanently as a
:class:`ProcessorError`.
"""

from __future__ import annotations


class FilepipeError(Exception):
    """Base of every error the handler classifies."""

    @property
    def error_type(self) -> str:
        """The stable name recorded in the DLQ attributes, the state table and the logs."""
        return type(self).__name__

    @property
    def reason(self) -> str:
        return str(self) or self.error_type


class PermanentError(FilepipeError):
    """Retrying will not help: park the message in the DLQ and mark the file FAILED."""


class UnknownBodyError(PermanentError):
    """The SQS body is neither an S3 notification, an EventBridge S3 event nor an ``s3:TestEvent``."""


class KeyOutsidePrefixError(PermanentError):
    """The object key does not start with the pipeline's input prefix."""


class ObjectMissingError(PermanentError):
    """The object (or the exact version) no longer exists and no newer version replaced it."""


class ObjectSupersededError(FilepipeError):
    """Not a failure: a newer version replaced this one before it was read (an unversioned bucket
    answers a read of the older ETag with 412). The newer version's own event brings its output."""


class AccessDeniedError(PermanentError):
    """S3 refused the read; retrying the same message will be refused again."""


class EmptyFileError(PermanentError):
    """The object has no content (or only a byte-order mark and whitespace)."""


class FileTooLargeError(PermanentError):
    """The object is larger than the pipeline's size cap."""


class InvalidEncodingError(PermanentError):
    """The object is not valid UTF-8."""


class InvalidContentError(PermanentError):
    """The object is not valid JSON, NDJSON or CSV."""


class CorruptCompressionError(PermanentError):
    """The object is compressed (gzip, zstd) but its stream is corrupt or ends before it is complete."""


class SchemaValidationError(PermanentError):
    """Records violate the pipeline's JSON Schema (the file is rejected as a whole)."""

    def __init__(self, errors: list[str], truncated: bool) -> None:
        self.errors = errors
        self.truncated = truncated
        more = " (more errors not shown)" if truncated else ""
        super().__init__("; ".join(errors) + more)


class ProcessorError(PermanentError):
    """The user processor raised for a record."""


class OutputShapeError(PermanentError):
    """A record cannot be written in the output format (e.g. a non-object record for CSV)."""


class OutputTooLargeError(PermanentError):
    """The output would need more parts than one S3 multipart upload can hold."""


class OutputIntegrityError(PermanentError):
    """A completed multipart output does not hold exactly the bytes written into it."""


class NeedsMoreTimeError(PermanentError):
    """The file cannot be finished at this pipeline's timeout and memory, and cannot be continued (a
    JSON document that is not an array, no state table to continue with, or an invocation too short to
    make any of its output durable). Retrying would only repeat the same attempt."""


class OutputKeyTooLongError(PermanentError):
    """The output key would exceed S3's 1,024-byte key limit: the output cannot exist."""


class UnexpectedError(PermanentError):
    """An exception no rule classifies (e.g. ``RecursionError`` on deeply nested content)."""


class RetriesExhaustedError(PermanentError):
    """A transient failure on the last delivery the queue allows: parked with the last error."""

    @classmethod
    def after(cls, deliveries: int, last: FilepipeError) -> RetriesExhaustedError:
        return cls(f"gave up after {deliveries} deliveries: {last.error_type}: {last.reason}")


class TransientError(FilepipeError):
    """Retry later: report the message in ``batchItemFailures`` and back off."""


class S3UnavailableError(TransientError):
    """S3 throttled, failed with a 5xx, or the connection timed out."""


class StateTableError(TransientError):
    """The state table could not be read or written."""


class RetryLaterError(TransientError):
    """Raised by a user's processor to ask for the file to be retried later (e.g. a downstream outage)."""


class LeaseHeldError(TransientError):
    """Another invocation holds an unexpired lease on this object key."""


class StateConflictError(TransientError):
    """The lease was lost before the result could be recorded."""


class DlqUnavailableError(TransientError):
    """A permanent failure could not be parked in the DLQ (or no DLQ is configured)."""


class DeadlineError(TransientError):
    """The function is too close to its timeout to start or finish this message."""
