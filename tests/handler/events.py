"""Loading event fixtures from ``tests/events/`` and patching them to the objects a test uploaded."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """The fixture ``tests/events/<name>.json`` as a dict (a fresh copy each call)."""
    return copy.deepcopy(json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8")))


def s3_encode(key: str) -> str:
    """How S3 encodes a key in a notification: '/' kept, space as '+', the rest percent-encoded."""
    return quote_plus(key, safe="/")


def s3_body(
    name: str = "s3_object_created",
    *,
    key: str | None = None,
    put: dict[str, Any] | None = None,
    bucket: str | None = None,
) -> str:
    """An S3 notification body from a fixture, pointed at ``key`` and the uploaded version ``put``."""
    event = load_event(name)
    for record in event["Records"]:
        s3 = record["s3"]
        if bucket is not None:
            s3["bucket"]["name"] = bucket
            s3["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        if key is not None:
            s3["object"]["key"] = s3_encode(key)
        if put is not None:
            _patch_object(s3["object"], put, version_field="versionId", etag_field="eTag")
    return json.dumps(event)


def eventbridge_body(*, key: str | None = None, put: dict[str, Any] | None = None) -> str:
    event = load_event("eventbridge_object_created")
    obj = event["detail"]["object"]
    if key is not None:
        obj["key"] = s3_encode(key)
    if put is not None:
        _patch_object(obj, put, version_field="version-id", etag_field="etag")
    return json.dumps(event)


def _patch_object(obj: dict[str, Any], put: dict[str, Any], version_field: str, etag_field: str) -> None:
    obj[etag_field] = put["ETag"].strip('"')
    obj["size"] = put["size"]
    if "sequencer" in put:
        obj["sequencer"] = put["sequencer"]
    if put.get("VersionId") and put["VersionId"] != "null":
        obj[version_field] = put["VersionId"]
    else:
        obj.pop(version_field, None)
