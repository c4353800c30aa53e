"""The processing-state table: one item per object version, written with conditional updates.

Lifecycle: RECEIVED -> PROCESSING (under a lease) -> SUCCEEDED | FAILED, so the common path costs three
writes per file. Every version a batch announces is first recorded RECEIVED, and only if it has no item
yet, so a redelivery never downgrades an item; a version the function has no time to start stays
RECEIVED ("waiting") until its message comes back. The conditions make processing idempotent:

- RECEIVED creates items and changes none;
- a SUCCEEDED version is never processed again (duplicate deliveries are acknowledged and skipped);
- an unexpired PROCESSING lease held by someone else makes the duplicate retry later;
- a result is recorded only by the lease holder, and only after the output was written.

Any failure to talk to the table is a :class:`~.errors.TransientError`: a file is never marked done
unless its output exists.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .errors import FilepipeError, LeaseHeldError, StateConflictError, StateTableError
from .events import ObjectRef
from .settings import FileStatus, StateAttribute

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

MAX_ERROR_CHARS = 1000
_PLACEHOLDER = re.compile(r"#(\w+)")
_STATUS = f"#{StateAttribute.STATUS.value}"
_UPDATED_AT = f"#{StateAttribute.UPDATED_AT.value}"
_EXPIRES_AT = f"#{StateAttribute.EXPIRES_AT.value}"
_DLQ_MESSAGE_ID = f"#{StateAttribute.DLQ_MESSAGE_ID.value}"

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that this invocation may process ``ref`` and record its outcome."""

    ref: ObjectRef
    token: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a successful attempt produced, recorded with the SUCCEEDED status."""

    output_key: str
    records: int
    rejected: int
    bytes_read: int
    duration_ms: int
    latency_ms: int | None = None
    rejects_key: str | None = None


class StateStore(Protocol):
    def receive(self, ref: ObjectRef, message_id: str) -> None:
        """Record a version RECEIVED unless it already has an item. Raises transient errors."""

    def begin(self, ref: ObjectRef, message_id: str) -> Lease | FileStatus:
        """Take the lease; or the final status (SUCCEEDED, or FAILED and parked) of a version that must
        not be processed again. Raises transient errors."""

    def succeed(self, lease: Lease, outcome: Outcome) -> None: ...

    def fail(self, lease: Lease, error: FilepipeError) -> None: ...

    def parked(self, ref: ObjectRef, dlq_message_id: str) -> None:
        """Record that a FAILED version's message is in the DLQ. Raises transient errors."""

    def release(self, lease: Lease, error: FilepipeError) -> None:
        """Give the lease back after a transient error so that the retry is not blocked."""


class NullStateStore:
    """No state table configured: idempotency rests on the deterministic output key alone."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock

    def receive(self, ref: ObjectRef, message_id: str) -> None:
        return None

    def begin(self, ref: ObjectRef, message_id: str) -> Lease | FileStatus:
        return Lease(ref, uuid.uuid4().hex, self._clock())

    def parked(self, ref: ObjectRef, dlq_message_id: str) -> None:
        return None

    def succeed(self, lease: Lease, outcome: Outcome) -> None:
        return None

    def fail(self, lease: Lease, error: FilepipeError) -> None:
        return None

    def release(self, lease: Lease, error: FilepipeError) -> None:
        return None


class _HasDynamoDB(Protocol):
    @property
    def dynamodb(self) -> DynamoDBClient: ...


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: float) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _names(*expressions: str) -> dict[str, str]:
    """Every attribute is written as ``#name``: DynamoDB reserves hundreds of words (bucket, status...)."""
    return {f"#{name}": name for expression in expressions for name in _PLACEHOLDER.findall(expression)}


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


class DynamoStateStore:
    """The state table of one pipeline (``StateAttribute`` names, ``by-status`` index)."""

    def __init__(
        self,
        clients: _HasDynamoDB,
        table: str,
        pipeline: str,
        lease_seconds: int,
        ttl_days: int,
        clock: Clock = time.time,
    ) -> None:
        self._clients = clients
        self._table = table
        self._pipeline = pipeline
        self._lease_seconds = lease_seconds
        self._ttl_seconds = ttl_days * 86400
        self._clock = clock

    @property
    def _client(self) -> DynamoDBClient:
        return self._clients.dynamodb

    def _key(self, ref: ObjectRef) -> dict[str, AttributeValueTypeDef]:
        return {StateAttribute.PK.value: _s(ref.state_pk), StateAttribute.SK.value: _s(ref.state_sk)}

    def _update(self, ref: ObjectRef, expression: str, condition: str, values: dict[str, Any]) -> Any:
        return self._client.update_item(
            TableName=self._table,
            Key=self._key(ref),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=_names(expression, condition),
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _current(self, ref: ObjectRef, exc: Exception) -> dict[str, Any]:
        item = getattr(exc, "response", {}).get("Item")
        if item is None:
            try:
                item = self._client.get_item(
                    TableName=self._table, Key=self._key(ref), ConsistentRead=True
                ).get("Item")
            except Exception as read_error:
                raise StateTableError(f"state table read failed: {read_error}") from read_error
        return dict(item or {})

    def _describe(self, ref: ObjectRef, message_id: str) -> tuple[list[str], dict[str, Any]]:
        """The attributes every write that may create the item sets: pipeline, message, object."""
        sets = [
            "#pipeline = :pipeline",
            "#message_id = :message_id",
            "#bucket = :bucket",
            "#object_key = :key",
        ]
        values: dict[str, Any] = {
            ":pipeline": _s(self._pipeline),
            ":message_id": _s(message_id),
            ":bucket": _s(ref.bucket),
            ":key": _s(ref.key),
        }
        if ref.version_id:
            values[":version"] = _s(ref.version_id)
            sets.append("#version_id = :version")
        if ref.etag:
            values[":etag"] = _s(ref.etag)
            sets.append("#etag = :etag")
        return sets, values

    def receive(self, ref: ObjectRef, message_id: str) -> None:
        now = self._clock()
        described, values = self._describe(ref, message_id)
        values |= {
            ":received": _s(FileStatus.RECEIVED),
            ":now_iso": _s(_iso(now)),
            ":expires": _n(int(now) + self._ttl_seconds),
        }
        sets = [
            f"{_STATUS} = :received",
            f"{_UPDATED_AT} = :now_iso",
            f"{_EXPIRES_AT} = :expires",
            "#received_at = :now_iso",
            *described,
        ]
        expression = "SET " + ", ".join(sets)
        # Only a version without an item: a redelivery must not downgrade PROCESSING, SUCCEEDED or FAILED.
        condition = f"attribute_not_exists(#{StateAttribute.PK.value})"
        try:
            self._update(ref, expression, condition, values)
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StateTableError(f"state table write failed: {exc}") from exc

    def begin(self, ref: ObjectRef, message_id: str) -> Lease | FileStatus:
        now = self._clock()
        token = uuid.uuid4().hex
        described, values = self._describe(ref, message_id)
        values |= {
            ":was_received": _s(FileStatus.RECEIVED),
            ":processing": _s(FileStatus.PROCESSING),
            ":failed": _s(FileStatus.FAILED),
            ":now_iso": _s(_iso(now)),
            ":now": _n(int(now)),
            ":lease_until": _n(int(now) + self._lease_seconds),
            ":expires": _n(int(now) + self._ttl_seconds),
            ":token": _s(token),
            ":one": _n(1),
        }
        sets = [
            f"{_STATUS} = :processing",
            f"{_UPDATED_AT} = :now_iso",
            f"{_EXPIRES_AT} = :expires",
            "#lease_until = :lease_until",
            "#lease_token = :token",
            *described,
            "#received_at = if_not_exists(#received_at, :now_iso)",
            "#started_at = :now_iso",
        ]
        expression = "SET " + ", ".join(sets) + " ADD #attempts :one REMOVE #error_type, #error"
        # Predecessors: no item, RECEIVED, a PROCESSING lease that expired, or a FAILED version whose
        # message never reached the DLQ. A parked FAILED version is final: a duplicate delivery of it
        # must not park it a second time.
        condition = (
            f"attribute_not_exists({_STATUS}) OR {_STATUS} = :was_received"
            f" OR ({_STATUS} = :processing AND #lease_until < :now)"
            f" OR ({_STATUS} = :failed AND attribute_not_exists({_DLQ_MESSAGE_ID}))"
        )
        try:
            self._update(ref, expression, condition, values)
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StateTableError(f"state table write failed: {exc}") from exc
            current = self._current(ref, exc)
            status = current.get(StateAttribute.STATUS.value, {}).get("S")
            if status in (FileStatus.SUCCEEDED, FileStatus.FAILED):
                return FileStatus(status)
            raise LeaseHeldError(
                f"s3://{ref.bucket}/{ref.key} ({ref.state_sk}) is being processed by another invocation"
            ) from None
        return Lease(ref, token, now)

    def _finish(self, lease: Lease, status: FileStatus, sets: list[str], values: dict[str, Any]) -> None:
        now = self._clock()
        values = {
            **values,
            ":status": _s(status),
            ":now_iso": _s(_iso(now)),
            ":expires": _n(int(now) + self._ttl_seconds),
            ":token": _s(lease.token),
        }
        expression = "SET " + ", ".join(
            [f"{_STATUS} = :status", f"{_UPDATED_AT} = :now_iso", f"{_EXPIRES_AT} = :expires", *sets]
        )
        expression += " REMOVE #lease_until, #lease_token"
        try:
            self._update(lease.ref, expression, "#lease_token = :token", values)
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StateTableError(f"state table write failed: {exc}") from exc
            current = self._current(lease.ref, exc)
            if current.get(StateAttribute.STATUS.value, {}).get("S") == status:
                return  # a concurrent attempt recorded the same outcome
            raise StateConflictError(
                "the processing lease was lost before the outcome was recorded"
            ) from None

    def succeed(self, lease: Lease, outcome: Outcome) -> None:
        sets = [
            "#output_key = :output_key",
            "#records = :records",
            "#rejected = :rejected",
            "#bytes_read = :bytes_read",
            "#duration_ms = :duration_ms",
            "#finished_at = :now_iso",
        ]
        values: dict[str, Any] = {
            ":output_key": _s(outcome.output_key),
            ":records": _n(outcome.records),
            ":rejected": _n(outcome.rejected),
            ":bytes_read": _n(outcome.bytes_read),
            ":duration_ms": _n(outcome.duration_ms),
        }
        if outcome.latency_ms is not None:
            sets.append("#latency_ms = :latency_ms")
            values[":latency_ms"] = _n(outcome.latency_ms)
        if outcome.rejects_key is not None:
            sets.append("#rejects_key = :rejects_key")
            values[":rejects_key"] = _s(outcome.rejects_key)
        self._finish(lease, FileStatus.SUCCEEDED, sets, values)

    def fail(self, lease: Lease, error: FilepipeError) -> None:
        duration_ms = int((self._clock() - lease.started_at) * 1000)
        self._finish(
            lease,
            FileStatus.FAILED,
            [
                "#error_type = :error_type",
                "#error = :error",
                "#duration_ms = :duration_ms",
                "#finished_at = :now_iso",
            ],
            {
                ":error_type": _s(error.error_type),
                ":error": _s(error.reason[:MAX_ERROR_CHARS]),
                ":duration_ms": _n(duration_ms),
            },
        )

    def parked(self, ref: ObjectRef, dlq_message_id: str) -> None:
        now = self._clock()
        try:
            self._update(
                ref,
                f"SET {_DLQ_MESSAGE_ID} = :dlq_message_id, {_UPDATED_AT} = :now_iso",
                f"{_STATUS} = :failed",
                {
                    ":dlq_message_id": _s(dlq_message_id),
                    ":now_iso": _s(_iso(now)),
                    ":failed": _s(FileStatus.FAILED),
                },
            )
        except Exception as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return  # no FAILED item for this version (it was never leased): nothing to record
            raise StateTableError(f"state table write failed: {exc}") from exc

    def release(self, lease: Lease, error: FilepipeError) -> None:
        now = self._clock()
        try:
            self._update(
                lease.ref,
                f"SET {_UPDATED_AT} = :now_iso, #lease_until = :now, #error_type = :error_type, #error = :error",
                "#lease_token = :token",
                {
                    ":now_iso": _s(_iso(now)),
                    ":now": _n(int(now) - 1),
                    ":token": _s(lease.token),
                    ":error_type": _s(error.error_type),
                    ":error": _s(error.reason[:MAX_ERROR_CHARS]),
                },
            )
        except Exception as exc:
            raise StateTableError(f"state table write failed: {exc}") from exc
