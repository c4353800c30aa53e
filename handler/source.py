"""Opening the source object: the exact version, size checks, and S3 error classification."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    AccessDeniedError,
    EmptyFileError,
    FilepipeError,
    FileTooLargeError,
    ObjectMissingError,
    ObjectSupersededError,
    S3UnavailableError,
    UnexpectedError,
)
from .events import ObjectRef
from .retryable import error_code, is_transient

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404", "NotFound"}
_CHANGED = {"PreconditionFailed", "412"}
_DENIED = {"AccessDenied", "403", "InvalidObjectState"}
_PAST_THE_END = {"InvalidRange", "416"}


def classify_s3_error(exc: Exception, ref: ObjectRef) -> FilepipeError:
    """Map a failed read to what it means for the file (only known-temporary errors are transient)."""
    where = f"s3://{ref.bucket}/{ref.key}"
    code = error_code(exc)
    if code in _MISSING:
        version = f" version {ref.version_id}" if ref.version_id else ""
        return ObjectMissingError(f"{where}{version} does not exist (deleted before processing)")
    if code in _CHANGED:
        # Only an unversioned bucket's read is conditional (If-Match on the event's ETag).
        return ObjectSupersededError(f"{where} was overwritten before processing (ETag {ref.etag} is gone)")
    if code in _DENIED:
        return AccessDeniedError(f"{where}: {code}")
    described = f"{where}: {code or type(exc).__name__}: {exc}"
    return S3UnavailableError(described) if is_transient(exc) else UnexpectedError(described)


@dataclass(frozen=True, slots=True)
class OpenedObject:
    body: Any
    """botocore ``StreamingBody``: read in chunks, never whole."""
    etag: str | None
    version_id: str | None
    content_encoding: str | None = None
    """The object's ``Content-Encoding`` (``gzip`` for a file stored compressed under a plain key)."""


def _total_size(response: dict[str, Any], start: int) -> int:
    """The whole object's size: ``ContentRange`` (``bytes a-b/total``) of a ranged GET, else its length."""
    content_range = str(response.get("ContentRange") or "")
    if start and "/" in content_range:
        with contextlib.suppress(ValueError):
            return int(content_range.rsplit("/", 1)[1])
    return start + int(response.get("ContentLength", 0))


def open_object(s3: S3Client, ref: ObjectRef, max_bytes: int, start: int = 0) -> OpenedObject:
    """GET the exact version announced by the event from byte ``start`` on (a continued file), refusing
    empty and oversized objects."""
    if ref.size is not None and ref.size > max_bytes:
        raise FileTooLargeError(f"file is {ref.size} bytes, above the size cap of {max_bytes}")
    request: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        request["VersionId"] = ref.version_id
    elif ref.etag:
        # Unversioned bucket: refuse to process newer content under this event's identity.
        request["IfMatch"] = f'"{ref.etag}"'
    if start:
        request["Range"] = f"bytes={start}-"
    try:
        response = s3.get_object(**request)
    except Exception as exc:
        if start and error_code(exc) in _PAST_THE_END:
            return _remainder_empty(s3, ref, request, start)
        raise classify_s3_error(exc, ref) from exc
    body = response["Body"]
    length = _total_size(dict(response), start)
    if length > max_bytes:
        body.close()
        raise FileTooLargeError(f"file is {length} bytes, above the size cap of {max_bytes}")
    if length == 0:
        body.close()
        raise EmptyFileError("file is empty (0 bytes)")
    return OpenedObject(
        body=body,
        etag=str(response.get("ETag", "")).strip('"') or ref.etag,
        version_id=response.get("VersionId") or ref.version_id,
        content_encoding=response.get("ContentEncoding"),
    )


def _remainder_empty(s3: S3Client, ref: ObjectRef, request: dict[str, Any], start: int) -> OpenedObject:
    """A continuation that resumes at the very end (its checkpoint followed the last record): S3 refuses
    the range, so check with a HEAD of the same version that the object is still the one announced."""
    head_request = {name: value for name, value in request.items() if name != "Range"}
    try:
        head = s3.head_object(**head_request)
    except Exception as exc:
        raise classify_s3_error(exc, ref) from exc
    if int(head.get("ContentLength", 0)) != start:
        raise UnexpectedError(f"s3://{ref.bucket}/{ref.key}: refused the range from byte {start}")
    return OpenedObject(
        body=io.BytesIO(b""),
        etag=str(head.get("ETag", "")).strip('"') or ref.etag,
        version_id=head.get("VersionId") or ref.version_id,
    )
