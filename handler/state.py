"""The processing-state table: one item per object key, written with conditional updates.

The item describes the newest version of the key that was started. Its lifecycle per version:
PROCESSING (under a lease) -> SUCCEEDED | FAILED | SUPERSEDED. A file that succeeds costs two writes
(``begin`` and ``succeed``) and no index write: only files that need an operator carry the
``attention`` attribute, the key of the sparse ``needs-attention`` index.

Why one item per key: S3 delivers events at least once and in no particular order. The lease is on
the key, and ``begin`` admits a version only if its event's ``sequencer`` is newer than the one the item
records, so a late event for an older version can never replace a newer version's output, and two
versions of one key are never processed at the same time. The conditions make processing idempotent:

- a duplicate of an event whose version is final (SUCCEEDED, SUPERSEDED, or FAILED and parked) is
  acknowledged and skipped; a duplicate of an older event is SUPERSEDED;
- an unexpired lease held by someone else makes the duplicate (or the newer version) retry later;
- a result is recorded only by the lease holder, and only after the output was written;
- a permanently failed version keeps its lease while its message is parked in the DLQ (``fail`` then
  ``parked``), so a duplicate arriving meanwhile waits instead of parking the file a second time.

An operator replays a version with :func:`requeue` (FAILED and parked, or any final status when
reprocessing, -> REQUEUED) before sending its event again: ``begin`` admits the same event of a REQUEUED
version once, and the first attempt to start takes the lease, so a replay sent twice is processed once.

Any failure to talk to the table is a :class:`~.errors.TransientError`: a file is never marked done
unless its output exists.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .continuation import Checkpoint, CheckpointMismatchError, pack_carry, unpack_carry
from .errors import FilepipeError, LeaseHeldError, StateConflictError, StateTableError
from .events import ObjectRef
from .settings import FileStatus, StateAttribute

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

MAX_ERROR_CHARS = 1000

Clock = Callable[[], float]

_FINAL = frozenset({FileStatus.SUCCEEDED, FileStatus.FAILED, FileStatus.SUPERSEDED})

A = StateAttribute

# What a finished attempt leaves on the item. Each outcome write removes the other outcome's attributes;
# a new attempt removes only the failure's, so that no item being processed shows an old error or stays
# in the attention index. (Few clauses per write also keep moto's expression engine, which is slow in the
# number of clauses, out of the local pipeline's way.)
_SUCCESS_ATTRIBUTES = (A.OUTPUT_KEY, A.REJECTS_KEY, A.RECORDS, A.REJECTED, A.BYTES_READ, A.LATENCY_MS)
_FAILURE_ATTRIBUTES = (A.ERROR_TYPE, A.ERROR, A.DLQ_MESSAGE_ID, A.ATTENTION)
_CONTINUATION_ATTRIBUTES = (A.CONTINUATION, A.CARRY, A.REJECTS_CARRY, A.RESUME_OFFSET, A.CONTINUATIONS)


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof that this invocation may process ``ref`` and record its outcome."""

    ref: ObjectRef
    token: str
    started_at: float
    resume: Checkpoint | None = None
    """The checkpoint this version's last invocation left: processing continues from it."""
    abandoned: Checkpoint | None = None
    """A checkpoint that is not resumed: of another (older) version of the key, or of this version but
    inconsistent (``restarted`` says why). Its uploads are to be aborted."""
    restarted: str | None = None
    """Why this version's own checkpoint could not be resumed: the file is processed from its start."""


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
    def begin(self, ref: ObjectRef, message_id: str, attempt: int) -> Lease | FileStatus:
        """Take the key's lease for ``ref``; or return why it must not be processed: its final status
        (a duplicate), or SUPERSEDED (a newer version was started). Raises transient errors, among them
        :class:`LeaseHeldError` while another invocation holds the lease."""

    def succeed(self, lease: Lease, outcome: Outcome) -> None: ...

    def fail(self, lease: Lease, error: FilepipeError) -> None:
        """Record FAILED and keep the lease: the caller parks the message, then calls :meth:`parked`."""

    def parked(self, lease: Lease, dlq_message_id: str) -> None:
        """Record that the FAILED version's message is in the DLQ, and give the lease back."""

    def supersede(self, lease: Lease, reason: str) -> None:
        """Record that a newer version replaced this one before it could be read (final)."""

    def release(self, lease: Lease, error: FilepipeError) -> None:
        """Give the lease back after a transient error so that the retry is not blocked."""

    @property
    def can_checkpoint(self) -> bool:
        """Whether :meth:`checkpoint` can hand a file to the next invocation."""

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint, resume_offset: int) -> None:
        """Record ``checkpoint`` and give the lease back (the file stays PROCESSING); raises
        :class:`StateConflictError` if the lease was lost meanwhile."""


class NullStateStore:
    """No state table configured: idempotency rests on the deterministic output key alone."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock

    def begin(self, ref: ObjectRef, message_id: str, attempt: int) -> Lease | FileStatus:
        return Lease(ref, uuid.uuid4().hex, self._clock())

    def succeed(self, lease: Lease, outcome: Outcome) -> None:
        return None

    def fail(self, lease: Lease, error: FilepipeError) -> None:
        return None

    def parked(self, lease: Lease, dlq_message_id: str) -> None:
        return None

    def supersede(self, lease: Lease, reason: str) -> None:
        return None

    def release(self, lease: Lease, error: FilepipeError) -> None:
        return None

    @property
    def can_checkpoint(self) -> bool:
        return False  # nowhere to keep a checkpoint

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint, resume_offset: int) -> None:
        raise NotImplementedError("a pipeline without a state table cannot continue a file")


class _HasDynamoDB(Protocol):
    @property
    def dynamodb(self) -> DynamoDBClient: ...


def _s(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def _n(value: float) -> AttributeValueTypeDef:
    return {"N": str(value)}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _string(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


class _Update:
    """One UpdateItem: ``SET`` and ``REMOVE`` clauses and a condition over ``#name``/``:value`` pairs.

    Every attribute is written as ``#name`` because DynamoDB reserves hundreds of words (status, bucket,
    key...); the placeholders are derived from the names, so the expression and its maps cannot drift.
    """

    def __init__(self) -> None:
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValueTypeDef] = {}

    def name(self, attribute: str) -> str:
        self.names[f"#{attribute}"] = attribute
        return f"#{attribute}"

    def value(self, placeholder: str, value: AttributeValueTypeDef) -> str:
        self.values[f":{placeholder}"] = value
        return f":{placeholder}"

    def set(self, attribute: str, value: AttributeValueTypeDef) -> str:
        """``SET #attribute = :attribute``; returns the value's placeholder for use in the condition."""
        placeholder = self.value(attribute, value)
        self.sets.append(f"{self.name(attribute)} = {placeholder}")
        return placeholder

    def remove(self, *attributes: str) -> None:
        self.removes.extend(self.name(attribute) for attribute in attributes)

    def expression(self) -> str:
        clauses = []
        if self.sets:
            clauses.append("SET " + ", ".join(self.sets))
        if self.removes:
            clauses.append("REMOVE " + ", ".join(self.removes))
        return " ".join(clauses)


def _end_continuation(update: _Update, lease: Lease) -> None:
    """An outcome ends the continuation: remove the checkpoint (only where one can exist, so the common
    outcome write stays small)."""
    if lease.resume is not None or lease.abandoned is not None:
        update.remove(*_CONTINUATION_ATTRIBUTES)


def _binary(item: dict[str, Any], name: str) -> bytes:
    value = item.get(name)
    raw = value.get("B") if isinstance(value, dict) else None
    return bytes(raw) if raw else b""


def _checkpoint(item: dict[str, Any], verify: bool = True) -> Checkpoint | None:
    """The checkpoint an item holds, if any (raises :class:`CheckpointMismatchError`, if ``verify``)."""
    document = _string(item, A.CONTINUATION)
    if document is None:
        return None
    return Checkpoint.parse(
        document,
        unpack_carry(_binary(item, A.CARRY)),
        unpack_carry(_binary(item, A.REJECTS_CARRY)),
        verify,
    )


def order_token(sequencer: str) -> str:
    """A sequencer in a form that compares as S3 orders events of one key.

    S3's rule: sequencers may differ in length; right-pad the shorter with zeros, then compare
    lexicographically. Padding every value to one width (and one case) lets DynamoDB's string
    comparison apply the same rule inside a condition expression.
    """
    return sequencer.upper().ljust(_SEQUENCER_WIDTH, "0")


_SEQUENCER_WIDTH = 64


class DynamoStateStore:
    """The state table of one pipeline (``StateAttribute`` names, sparse ``needs-attention`` index)."""

    def __init__(
        self,
        clients: _HasDynamoDB,
        table: str,
        lease_seconds: int,
        ttl_days: int,
        clock: Clock = time.time,
    ) -> None:
        self._clients = clients
        self._table = table
        self._lease_seconds = lease_seconds
        self._ttl_seconds = ttl_days * 86400
        self._clock = clock

    @property
    def _client(self) -> DynamoDBClient:
        return self._clients.dynamodb

    def _write(self, ref: ObjectRef, update: _Update, condition: str) -> dict[str, Any]:
        """Write; returns the item as it was before (``begin`` resumes from its checkpoint)."""
        response = self._client.update_item(
            TableName=self._table,
            Key={A.PK: _s(ref.state_pk)},
            UpdateExpression=update.expression(),
            ConditionExpression=condition,
            ExpressionAttributeNames=update.names,
            ExpressionAttributeValues=update.values,
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return dict(response.get("Attributes") or {})

    def _current(self, ref: ObjectRef, exc: Exception) -> dict[str, Any]:
        item = getattr(exc, "response", {}).get("Item")
        if item is None:
            try:
                item = self._client.get_item(
                    TableName=self._table,
                    Key={A.PK: _s(ref.state_pk)},
                    ConsistentRead=True,
                ).get("Item")
            except Exception as read_error:
                raise StateTableError(f"state table read failed: {read_error}") from read_error
        return dict(item or {})

    def _stamp(self, update: _Update, status: FileStatus) -> float:
        now = self._clock()
        update.set(A.STATUS, _s(status))
        update.set(A.UPDATED_AT, _s(_iso(now)))
        update.set(A.EXPIRES_AT, _n(int(now) + self._ttl_seconds))
        return now

    def begin(self, ref: ObjectRef, message_id: str, attempt: int) -> Lease | FileStatus:
        update = _Update()
        now = self._stamp(update, FileStatus.PROCESSING)
        token = uuid.uuid4().hex
        update.set(A.LEASE_UNTIL, _n(int(now) + self._lease_seconds))
        update.set(A.LEASE_TOKEN, _s(token))
        update.set(A.MESSAGE_ID, _s(message_id))
        version = update.set(A.VERSION, _s(ref.version_token))
        update.set(A.RECEIVED_AT, _s(_iso(ref.event_time.timestamp() if ref.event_time else now)))
        update.set(A.ATTEMPTS, _n(attempt))
        sequencer = update.set(A.SEQUENCER, _s(order_token(ref.sequencer))) if ref.sequencer else None
        if sequencer is None:
            update.remove(A.SEQUENCER)
        update.remove(*_FAILURE_ATTRIBUTES)

        lease_until, status = update.name(A.LEASE_UNTIL), update.name(A.STATUS)
        no_lease = f"(attribute_not_exists({lease_until}) OR {lease_until} < {update.value('now', _n(now))})"
        # The same event again: resumable only if its attempt did not end (a lease that expired with
        # its invocation, or a FAILED version whose message never reached the DLQ), or if an operator
        # requeued the version.
        unfinished = (
            f"({status} = {update.value('processing', _s(FileStatus.PROCESSING))}"
            f" OR {status} = {update.value('requeued', _s(FileStatus.REQUEUED))}"
            f" OR ({status} = {update.value('failed', _s(FileStatus.FAILED))}"
            f" AND attribute_not_exists({update.name(A.DLQ_MESSAGE_ID)})))"
        )
        if sequencer is not None:
            stored = update.name(A.SEQUENCER)
            newer = f"(attribute_not_exists({stored}) OR {stored} < {sequencer})"
            same = f"{stored} = {sequencer}"
        else:
            # Without a sequencer (a hand-made event) the order is unknown: a different version is
            # processed; the same version is resumed or skipped like any duplicate.
            newer = f"{update.name(A.VERSION)} <> {version}"
            same = f"{update.name(A.VERSION)} = {version}"
        condition = (
            f"attribute_not_exists({update.name(A.PK)})"
            f" OR ({no_lease} AND ({newer} OR ({same} AND {unfinished})))"
        )
        try:
            before = self._write(ref, update, condition)
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StateTableError(f"state table write failed: {exc}") from exc
            return self._refused(ref, self._current(ref, exc), now)
        try:
            checkpoint = _checkpoint(before)
        except CheckpointMismatchError as mismatch:
            # Resuming would write bytes that do not belong where they would go. Starting the file again
            # costs time and loses nothing: the output is written only when the file completes.
            inconsistent = _checkpoint(before, verify=False)
            return Lease(ref, token, now, abandoned=inconsistent, restarted=str(mismatch))
        if checkpoint is None:
            return Lease(ref, token, now)
        if checkpoint.version == ref.version_token:
            return Lease(ref, token, now, resume=checkpoint)
        return Lease(ref, token, now, abandoned=checkpoint)

    def _refused(self, ref: ObjectRef, item: dict[str, Any], now: float) -> FileStatus:
        """Why ``begin``'s condition refused ``ref``, from the item as it was (raises if it must wait)."""
        where = f"s3://{ref.bucket}/{ref.key}"
        stored = _string(item, A.SEQUENCER)
        if ref.sequencer and stored is not None:
            ours = order_token(ref.sequencer)
            if stored > ours:
                return FileStatus.SUPERSEDED
            same = stored == ours
        else:
            same = _string(item, A.VERSION) == ref.version_token
        lease_until = item.get(A.LEASE_UNTIL, {}).get("N")
        if lease_until is not None and float(lease_until) >= now:
            who = "this event" if same else "another version of the key"
            raise LeaseHeldError(f"{where}: another invocation is processing {who}")
        status = _string(item, A.STATUS)
        if status in _FINAL:
            return FileStatus(status)
        raise StateConflictError(f"{where}: unexpected state {status!r}; will retry")

    def _finish(self, lease: Lease, update: _Update, keep_lease: bool = False) -> None:
        if not keep_lease:
            update.remove(A.LEASE_UNTIL, A.LEASE_TOKEN)
        self._write_leased(lease, update, "the outcome")

    def _write_leased(self, lease: Lease, update: _Update, what: str) -> None:
        """Write only while ``lease`` is the item's (its token): a lost lease is a StateConflictError."""
        token = update.value("token", _s(lease.token))
        try:
            self._write(lease.ref, update, f"{update.name(A.LEASE_TOKEN)} = {token}")
        except Exception as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise StateTableError(f"state table write failed: {exc}") from exc
            raise StateConflictError(f"the processing lease was lost before {what} was recorded") from None

    def succeed(self, lease: Lease, outcome: Outcome) -> None:
        update = _Update()
        now = self._stamp(update, FileStatus.SUCCEEDED)
        update.set(A.FINISHED_AT, _s(_iso(now)))
        update.set(A.OUTPUT_KEY, _s(outcome.output_key))
        update.set(A.RECORDS, _n(outcome.records))
        update.set(A.REJECTED, _n(outcome.rejected))
        update.set(A.BYTES_READ, _n(outcome.bytes_read))
        update.set(A.DURATION_MS, _n(outcome.duration_ms))
        for attribute, value in ((A.LATENCY_MS, outcome.latency_ms), (A.REJECTS_KEY, outcome.rejects_key)):
            if value is None:
                update.remove(attribute)  # a previous version's value must not describe this one
            else:
                update.set(attribute, _n(value) if isinstance(value, int) else _s(value))
        _end_continuation(update, lease)
        self._finish(lease, update)

    def fail(self, lease: Lease, error: FilepipeError) -> None:
        update = _Update()
        now = self._stamp(update, FileStatus.FAILED)
        update.set(A.ATTENTION, _s(FileStatus.FAILED))
        update.set(A.FINISHED_AT, _s(_iso(now)))
        update.set(A.DURATION_MS, _n(int((now - lease.started_at) * 1000)))
        update.set(A.ERROR_TYPE, _s(error.error_type))
        update.set(A.ERROR, _s(error.reason[:MAX_ERROR_CHARS]))
        update.remove(*_SUCCESS_ATTRIBUTES)
        _end_continuation(update, lease)
        self._finish(lease, update, keep_lease=True)

    def parked(self, lease: Lease, dlq_message_id: str) -> None:
        update = _Update()
        update.set(A.DLQ_MESSAGE_ID, _s(dlq_message_id))
        update.set(A.UPDATED_AT, _s(_iso(self._clock())))
        self._finish(lease, update)

    def supersede(self, lease: Lease, reason: str) -> None:
        update = _Update()
        now = self._stamp(update, FileStatus.SUPERSEDED)
        update.set(A.FINISHED_AT, _s(_iso(now)))
        update.set(A.DURATION_MS, _n(int((now - lease.started_at) * 1000)))
        update.set(A.ERROR, _s(reason[:MAX_ERROR_CHARS]))
        update.remove(A.ERROR_TYPE, *_SUCCESS_ATTRIBUTES)
        _end_continuation(update, lease)
        self._finish(lease, update)

    @property
    def can_checkpoint(self) -> bool:
        return True

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint, resume_offset: int) -> None:
        update = _Update()
        now = self._clock()
        update.set(A.UPDATED_AT, _s(_iso(now)))
        update.set(A.EXPIRES_AT, _n(int(now) + self._ttl_seconds))
        update.set(A.CONTINUATION, _s(checkpoint.document()))
        update.set(A.RESUME_OFFSET, _n(resume_offset))
        update.set(A.CONTINUATIONS, _n(checkpoint.continuations))
        for attribute, carry in (
            (A.CARRY, checkpoint.output.upload.carry),
            (A.REJECTS_CARRY, checkpoint.rejects.upload.carry if checkpoint.rejects is not None else b""),
        ):
            packed = pack_carry(carry)
            if packed:
                update.set(attribute, {"B": packed})
            else:
                update.remove(attribute)
        # Given back as in ``release`` (expired, token kept): the fresh copy's delivery takes it at once,
        # and a late write of this invocation fails its condition once that delivery holds the lease.
        update.set(A.LEASE_UNTIL, _n(int(now) - 1))
        self._write_leased(lease, update, "the checkpoint")

    def release(self, lease: Lease, error: FilepipeError) -> None:
        update = _Update()
        now = self._clock()
        update.set(A.UPDATED_AT, _s(_iso(now)))
        # An expired lease, not a removed one: the token stays, so a late write of this attempt still
        # fails its condition only once another attempt has taken the lease.
        update.set(A.LEASE_UNTIL, _n(int(now) - 1))
        update.set(A.ERROR_TYPE, _s(error.error_type))
        update.set(A.ERROR, _s(error.reason[:MAX_ERROR_CHARS]))
        token = update.value("token", _s(lease.token))
        try:
            self._write(lease.ref, update, f"{update.name(A.LEASE_TOKEN)} = {token}")
        except Exception as exc:
            raise StateTableError(f"state table write failed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Requeue:
    """What :func:`requeue` found: whether the version's event may be sent again, and with which sequencer."""

    ready: bool
    """Sending the event now loses nothing: its delivery is processed, or skipped because the version
    is final or was replaced by a newer one. ``False``: the version is being worked on; try later."""
    status: str | None
    """The item's status afterwards (REQUEUED when this call requeued it); ``None``: no item."""
    sequencer: str | None
    """The order token the item records for the version: a re-made event must carry it to be admitted
    as the same event (``None``: send it without one)."""
    note: str
    """Why, for people, when the version was not simply requeued."""


def requeue(
    client: DynamoDBClient,
    table: str,
    ref: ObjectRef,
    *,
    parked_only: bool,
    clock: Clock = time.time,
) -> Requeue:
    """Make ``ref``'s version eligible again: REQUEUED, out of the attention index, its park forgotten.

    ``parked_only`` (``filepipe failed retry``): only a FAILED (or already REQUEUED) version is reset;
    otherwise (``filepipe reprocess``) any status of the version is. Never while a lease is live, and
    never another version than the one the item describes (a newer one is left alone).
    """
    update = _Update()
    now = clock()
    requeued = update.set(A.STATUS, _s(FileStatus.REQUEUED))
    update.set(A.UPDATED_AT, _s(_iso(now)))
    # A replay starts the file afresh: a checkpoint left by an interrupted continuation is dropped (its
    # uploads are aborted by the bucket's lifecycle rule for incomplete multipart uploads).
    update.remove(A.DLQ_MESSAGE_ID, A.ATTENTION, A.LEASE_UNTIL, A.LEASE_TOKEN, *_CONTINUATION_ATTRIBUTES)
    lease_until, status = update.name(A.LEASE_UNTIL), update.name(A.STATUS)
    condition = (
        f"{update.name(A.VERSION)} = {update.value('version', _s(ref.version_token))}"
        f" AND (attribute_not_exists({lease_until}) OR {lease_until} < {update.value('now', _n(now))})"
    )
    if parked_only:
        failed = update.value("failed", _s(FileStatus.FAILED))
        condition += f" AND ({status} = {failed} OR {status} = {requeued})"
    try:
        attributes = client.update_item(
            TableName=table,
            Key={A.PK: _s(ref.state_pk)},
            UpdateExpression=update.expression(),
            ConditionExpression=condition,
            ExpressionAttributeNames=update.names,
            ExpressionAttributeValues=update.values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
    except Exception as exc:
        if _error_code(exc) != "ConditionalCheckFailedException":
            raise
        item = getattr(exc, "response", {}).get("Item")
        if item is None:
            item = client.get_item(TableName=table, Key={A.PK: _s(ref.state_pk)}, ConsistentRead=True).get(
                "Item"
            )
        return _not_requeued(dict(item or {}), ref, now, parked_only)
    return Requeue(True, FileStatus.REQUEUED, _string(dict(attributes), A.SEQUENCER), "requeued")


def _not_requeued(item: dict[str, Any], ref: ObjectRef, now: float, parked_only: bool) -> Requeue:
    if not item:
        # ``begin`` admits any version of a key without an item.
        return Requeue(True, None, None, "no state recorded")
    status = _string(item, A.STATUS)
    if _string(item, A.VERSION) != ref.version_token:
        # Another version is (or was) processed: the item's order rules decide, without a sequencer of
        # ours (begin then compares versions: a different one is admitted once no lease is live).
        return Requeue(True, status, None, f"the item describes another version ({status})")
    lease_until = item.get(A.LEASE_UNTIL, {}).get("N")
    if lease_until is not None and float(lease_until) >= now:
        if status == FileStatus.FAILED:
            # Between ``fail`` and ``parked``: once parked, a copy sent now would be skipped as final.
            return Requeue(False, status, None, "being parked right now; try again in a moment")
        # A retry's copy is a harmless duplicate of the attempt running now (it is the retry); a
        # reprocess would be skipped once that attempt ends, so it waits instead.
        return Requeue(parked_only, status, None, f"{status}: being processed right now")
    return Requeue(True, status, _string(item, A.SEQUENCER), f"already {status}")
