"""S3 behaviour that moto (5.2) lacks, added so that code which passes locally also holds on S3.

moto differs from S3 in ways that would hide bugs S3 shows:

- event notifications (to SQS, SNS, Lambda) have no ``versionId`` and no ``sequencer``, encode ``/`` in
  keys as ``%2F``, and a completed multipart upload sends an ``ObjectCreated:Put`` record as well as its
  ``ObjectCreated:CompleteMultipartUpload`` one; EventBridge ``Object Created`` events carry a constant
  ``sequencer``, ``version-id`` ``"null"`` on unversioned buckets, ``eTag`` instead of ``etag`` and
  ``reason`` ``ObjectCreated`` instead of the API's name;
- object keys over 1,024 bytes of UTF-8 and user metadata over 2 KB are accepted;
- ``CompleteMultipartUpload`` ignores ``If-Match``.

:func:`apply` patches moto in place, for the whole process (moto's backends are process-global), and
only ever makes it stricter or closer to S3. The local endpoint calls it when it starts; tests that run
moto in-process (``mock_aws``) call it before their first request.
"""

from __future__ import annotations

import contextvars
import copy
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from filepipe.handler.events import event_key

MAX_KEY_BYTES: Final = 1024
"""S3's limit on an object key, in bytes of UTF-8."""
MAX_METADATA_BYTES: Final = 2048
"""S3's limit on user-defined metadata: names (without ``x-amz-meta-``) and values, bytes of UTF-8."""

_USER_METADATA_PREFIX: Final = "x-amz-meta-"
_SEQUENCER_DIGITS: Final = 18
"""Fixed width, so that S3's rule for comparing sequencers (right-pad, compare as strings) orders them."""

_apply_lock = threading.Lock()
_applied: list[bool] = []
_sequencer_lock = threading.Lock()
_last_sequencer = 0
_event_sequencer: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "filepipe_s3_event_sequencer", default=None
)


def apply() -> None:
    """Patch moto's S3 (events, limits, conditional completion) to behave as S3 does; idempotent."""
    with _apply_lock:
        if _applied:
            return
        _patch_events()
        _patch_limits()
        _patch_complete_if_match()
        _applied.append(True)


def next_sequencer() -> str:
    """A new sequencer: fixed-width uppercase hex, greater than every one this process made before.

    It counts nanoseconds of wall-clock time (never repeating, never going back), so sequencers also
    keep increasing across processes, as S3's do for one key.
    """
    global _last_sequencer  # noqa: PLW0603 - one counter for the whole process, under the lock
    with _sequencer_lock:
        _last_sequencer = max(_last_sequencer + 1, time.time_ns())
        return f"{_last_sequencer:0{_SEQUENCER_DIGITS}X}"


# --- Events -----------------------------------------------------------------------------------------

_SEQUENCED_EVENTS: Final = ("s3:ObjectCreated:", "s3:ObjectRemoved:")
"""S3 gives a sequencer to the events that create and delete objects only."""
_EVENTBRIDGE_REASONS: Final = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete": "DeleteObject",
    "s3:ObjectRemoved:DeleteMarkerCreated": "DeleteObject",
}


def _name(event_name: Any) -> str:
    """``s3:ObjectCreated:Put`` from moto's event enum (a ``str`` enum whose ``str()`` is its member name)."""
    return str(getattr(event_name, "value", event_name))


def _add_version_and_sequencer(obj: dict[str, Any], bucket: Any, key: Any, version_field: str) -> None:
    """Add the object's version (on a versioning-enabled bucket only, as S3 does) and the event's
    sequencer to an event's ``object``; ``version_field`` is ``versionId`` or EventBridge's ``version-id``.
    """
    version = getattr(key, "version_id", None)
    if bucket.is_versioned and version and version != "null":
        obj[version_field] = str(version)
    sequencer = _event_sequencer.get()
    if sequencer is not None:
        obj["sequencer"] = sequencer


def _patch_events() -> None:
    from moto.s3 import notifications

    original_send_event = notifications.send_event
    original_s3_event = notifications._get_s3_event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        # moto stores a completed multipart upload with put_object, which sends its own Put event
        # before the CompleteMultipartUpload one; S3 sends only the latter.
        if event_name == notifications.S3NotificationEvent.OBJECT_CREATED_PUT_EVENT and key.multipart:
            return
        # One sequencer per event, shared by every destination it is delivered to, as S3 does.
        sequencer = next_sequencer() if _name(event_name).startswith(_SEQUENCED_EVENTS) else None
        token = _event_sequencer.set(sequencer)
        try:
            original_send_event(account_id, event_name, bucket, key)
        finally:
            _event_sequencer.reset(token)

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event: dict[str, Any] = original_s3_event(event_name, bucket, key, notification_id)
        record = event["Records"][0]["s3"]["object"]
        record["key"] = event_key(key.name)
        _add_version_and_sequencer(record, bucket, key, "versionId")
        return event

    setattr(notifications, "send_event", send_event)  # noqa: B010 - moto's module names, replaced on purpose
    setattr(notifications, "_get_s3_event", get_s3_event)  # noqa: B010
    setattr(notifications, "_send_event_bridge_message", _send_event_bridge_message)  # noqa: B010


def _send_event_bridge_message(account_id: str, bucket: Any, event_name: Any, key: Any) -> None:
    """moto's EventBridge delivery with the detail S3 documents ("EventBridge event message structure").

    Rewritten rather than wrapped: moto builds the event inside the function that delivers it, so there
    is no narrower point to correct the detail at. Routing is moto's: every rule of the account's
    buses, no input transformation. Errors are swallowed as moto does (the delivery is asynchronous on
    AWS: it never fails the S3 request).
    """
    from moto.core.utils import unix_time
    from moto.events.models import events_backends
    from moto.events.utils import _BASE_EVENT_MESSAGE
    from moto.s3.notifications import _detail_type

    name = _name(event_name)
    try:
        obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.replace('"', "")}
        _add_version_and_sequencer(obj, bucket, key, "version-id")
        event = copy.deepcopy(_BASE_EVENT_MESSAGE)
        event.update(
            {
                "id": str(uuid.uuid4()),
                "detail-type": _detail_type(event_name),
                "source": "aws.s3",
                "account": account_id,
                # moto's SQS target turns this epoch time into S3's "2021-11-12T00:00:00Z" form.
                "time": unix_time(),
                "region": bucket.region_name,
                "resources": [bucket.arn],
                "detail": {
                    "version": "0",
                    "bucket": {"name": bucket.name},
                    "object": obj,
                    "request-id": uuid.uuid4().hex[:16].upper(),
                    "requester": account_id,
                    "source-ip-address": "127.0.0.1",
                    "reason": _EVENTBRIDGE_REASONS.get(name, name.split(":")[1]),
                },
            }
        )
        backend = events_backends[account_id][bucket.region_name]
        for event_bus in backend.event_buses.values():
            for rule in event_bus.rules.values():
                rule.send_to_targets(event, transform_input=False)
    except Exception:  # asynchronous on AWS: a failed delivery never fails the S3 request
        pass


# --- Limits -----------------------------------------------------------------------------------------


def _s3_error(code: str, message: str) -> Exception:
    from moto.s3.exceptions import S3ClientError

    # No error shape in moto's S3 model for these codes: served as HTTP 400 with Code and Message.
    return S3ClientError(code, message)


def _check_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise _s3_error("KeyTooLongError", "Your key is too long.")


def _check_metadata(headers: Mapping[str, Any] | None) -> None:
    size = 0
    for name, value in (headers or {}).items():
        if isinstance(name, str) and name.lower().startswith(_USER_METADATA_PREFIX):
            text = value[0] if isinstance(value, list) else value
            size += len(name[len(_USER_METADATA_PREFIX) :].encode("utf-8")) + len(str(text).encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise _s3_error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.")


def _patch_limits() -> None:
    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    original_put: Callable[..., Any] = S3Response.put_object
    original_copy: Callable[..., Any] = S3Backend.copy_object
    original_create: Callable[..., Any] = S3Backend.create_multipart_upload

    def put_object(self: Any) -> Any:
        _check_key(self.parse_key_name())
        _check_metadata(self.headers)
        return original_put(self)

    def copy_object(self: Any, src_key: Any, dest_bucket_name: str, dest_key_name: str, **kwargs: Any) -> Any:
        _check_key(dest_key_name)
        replaced = kwargs.get("mdirective") == "REPLACE"
        _check_metadata(kwargs.get("metadata") if replaced else src_key.metadata)
        return original_copy(self, src_key, dest_bucket_name, dest_key_name, **kwargs)

    def create_multipart_upload(self: Any, bucket_name: str, key_name: str, metadata: Any, *args: Any) -> Any:
        _check_key(key_name)
        _check_metadata(metadata)
        return original_create(self, bucket_name, key_name, metadata, *args)

    setattr(S3Response, "put_object", put_object)  # noqa: B010 - moto's methods, replaced on purpose
    setattr(S3Backend, "copy_object", copy_object)  # noqa: B010
    setattr(S3Backend, "create_multipart_upload", create_multipart_upload)  # noqa: B010


# --- Conditional completion --------------------------------------------------------------------------


def _patch_complete_if_match() -> None:
    from moto.s3.exceptions import MissingKey, PreconditionFailed
    from moto.s3.responses import S3Response

    original_post: Callable[..., Any] = S3Response._key_response_post

    def key_response_post(
        self: Any, request: Any, body: bytes, bucket_name: str, query: dict[str, Any], key_name: str
    ) -> Any:
        upload_id = (query.get("uploadId") or [None])[0]
        if_match = self.headers.get("If-Match")
        if upload_id and if_match:
            existing = self.backend.get_object(bucket_name, key_name)
            replay = existing is not None and existing.multipart and existing.multipart.id == upload_id
            # As PutObject: no object is NoSuchKey, another ETag is 412; a retried completion of the
            # same upload stays idempotent (moto answers it from the stored object).
            if existing is None:
                raise MissingKey(key=key_name)
            if not replay and if_match.replace('"', "") != existing.etag.replace('"', ""):
                raise PreconditionFailed("If-Match")
        return original_post(self, request, body, bucket_name, query, key_name)

    setattr(S3Response, "_key_response_post", key_response_post)  # noqa: B010 - replaced on purpose
