"""SQS message bodies -> the object versions they announce.

Understood bodies: S3 event notifications (one or more ``Records``), EventBridge ``Object Created``
events (raw or wrapped in an SNS envelope), and ``s3:TestEvent``. Anything else is a permanent error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from .errors import UnknownBodyError

_S3_CREATED_PREFIX = "ObjectCreated:"
_EVENTBRIDGE_CREATED = "Object Created"


def event_key(key: str) -> str:
    """``key`` as S3 writes it into event records: form-encoded (space -> ``+``) with ``/`` kept.

    The inverse of the decoding below; whatever matches keys inside an event (an SNS filter policy)
    must match them in this form."""
    return quote_plus(key, safe="/")


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One object version announced by an event."""

    bucket: str
    key: str
    """Decoded key, ready for the S3 API."""
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    event_time: datetime | None = None

    @property
    def state_pk(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def version_token(self) -> str:
        """Which version this is: the version id, or the ETag in an unversioned bucket."""
        if self.version_id:
            return f"v#{self.version_id}"
        return f"e#{self.etag or ''}"


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """What a message body announced."""

    objects: list[ObjectRef] = field(default_factory=list)
    test_event: bool = False
    ignored: list[str] = field(default_factory=list)
    """Events understood but not for us (e.g. deletions), one description each."""


def parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def _etag(raw: object) -> str | None:
    return raw.strip('"') if isinstance(raw, str) and raw else None


def _size(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _s3_record(record: dict[str, Any]) -> ObjectRef | str:
    name = record.get("eventName", "")
    s3 = record.get("s3")
    if record.get("eventSource") != "aws:s3" or not isinstance(s3, dict):
        raise UnknownBodyError(f"record is not an S3 event (eventSource={record.get('eventSource')!r})")
    try:
        bucket = s3["bucket"]["name"]
        obj = s3["object"]
        raw_key = obj["key"]
    except (KeyError, TypeError):
        raise UnknownBodyError("S3 event record without bucket name or object key") from None
    if not isinstance(name, str) or not name.startswith(_S3_CREATED_PREFIX):
        return f"{name} s3://{bucket}/{unquote_plus(raw_key)}"
    return ObjectRef(
        bucket=bucket,
        # S3 encodes space as '+', '+' as %2B and keeps '/'; moto also encodes '/' as %2F.
        key=unquote_plus(raw_key),
        version_id=obj.get("versionId") or None,
        etag=_etag(obj.get("eTag")),
        size=_size(obj.get("size")),
        sequencer=obj.get("sequencer"),
        event_time=parse_time(record.get("eventTime")),
    )


def _eventbridge(body: dict[str, Any]) -> ParsedBody:
    detail = body.get("detail")
    if not isinstance(detail, dict):
        raise UnknownBodyError("EventBridge S3 event without detail")
    try:
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        raw_key = obj["key"]
    except (KeyError, TypeError):
        raise UnknownBodyError("EventBridge S3 event without bucket name or object key") from None
    if body.get("detail-type") != _EVENTBRIDGE_CREATED:
        return ParsedBody(ignored=[f"{body.get('detail-type')} s3://{bucket}/{raw_key}"])
    ref = ObjectRef(
        bucket=bucket,
        key=unquote_plus(raw_key),
        version_id=obj.get("version-id") or None,
        etag=_etag(obj.get("etag")),
        size=_size(obj.get("size")),
        sequencer=obj.get("sequencer"),
        event_time=parse_time(body.get("time")),
    )
    return ParsedBody(objects=[ref])


def parse_body(body: str) -> ParsedBody:
    """Parse one SQS message body; raise :class:`UnknownBodyError` for anything not understood."""
    try:
        document = json.loads(body)
    except (ValueError, TypeError):
        raise UnknownBodyError("message body is not JSON") from None
    if not isinstance(document, dict):
        raise UnknownBodyError("message body is not a JSON object")
    # S3 -> SNS -> SQS without raw message delivery wraps the event in an SNS envelope.
    if document.get("Type") == "Notification" and isinstance(document.get("Message"), str):
        return parse_body(document["Message"])
    if document.get("Event") == "s3:TestEvent":
        return ParsedBody(test_event=True)
    if document.get("source") == "aws.s3" and "detail-type" in document:
        return _eventbridge(document)
    records = document.get("Records")
    if not isinstance(records, list) or not records:
        raise UnknownBodyError("message body is not an S3 event notification")
    parsed = ParsedBody()
    for record in records:
        if not isinstance(record, dict):
            raise UnknownBodyError("S3 event record is not an object")
        outcome = _s3_record(record)
        if isinstance(outcome, ObjectRef):
            parsed.objects.append(outcome)
        else:
            parsed.ignored.append(outcome)
    return parsed
