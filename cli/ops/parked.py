"""Reading a pipeline's DLQ without losing or double-counting a message, and putting messages back.

SQS has no "peek": a message is read by receiving it, which hides it for the visibility timeout given and
raises its ``ApproximateReceiveCount``. :class:`DlqReader` receives page after page with
:data:`READ_VISIBILITY_SECONDS`, so that a message already seen stays hidden while the rest is read; the
caller then hands every message it does not delete back with :meth:`DlqReader.release` (visibility 0), so
a listing leaves the DLQ as it found it, apart from the receive counts.

A read is a snapshot: it takes the messages parked at or before the moment it began (their
``SentTimestamp``), and stops once receives bring nothing new from before then. A pipeline that keeps
parking while the command runs adds messages the read sees but does not take (it counts them and hands
them back), so every command that reads the DLQ ends, and ``failed retry`` never meets the files it
sent back and the pipeline parked again.

:func:`retry_batch` is the replay rule of the state table (``filepipe.handler.state.requeue``) applied
to DLQ messages: reset each file's state, send the original body and message attributes to the source
queue, and only then delete the DLQ copy. Interrupted anywhere, a message is still in the DLQ (resumed
later: sent once more, which the state table turns into a skip) or already on the source queue.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from filepipe.cli.ops.stack import Pipeline, Stack
from filepipe.handler.errors import UnknownBodyError
from filepipe.handler.events import ObjectRef, parse_body
from filepipe.handler.settings import DlqAttribute, StateAttribute
from filepipe.handler.state import requeue

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

READ_VISIBILITY_SECONDS: Final = 120
"""How long a received DLQ message stays hidden while the rest is read (it is handed back at the end).
Long enough for thousands of messages; a killed command's messages reappear after it."""
RENEW_AFTER_SECONDS: Final = READ_VISIBILITY_SECONDS // 3
"""A command that holds messages longer than this (a retry of thousands) hides them again for
:data:`READ_VISIBILITY_SECONDS`, so none reappears, to be read twice, before the command is done with it."""
RECEIVE_WAIT_SECONDS: Final = 1
"""Long polling: SQS then asks all of its servers, so an empty answer means an empty (rest of the) queue."""
LATER_ONLY_RECEIVES: Final = 2
"""A read stops after this many receives in a row that bring only messages parked after it began: what
the snapshot takes is then read (SQS hands out older messages first as a rule, not as a promise, hence
more than one), and a pipeline parking faster than the read cannot keep it going."""
SQS_BATCH: Final = 10
"""The most entries one ReceiveMessage, SendMessageBatch, DeleteMessageBatch or
ChangeMessageVisibilityBatch takes."""
BATCH_GET_KEYS: Final = 100
"""The most keys one BatchGetItem takes."""


@dataclass(frozen=True, slots=True)
class ParkedMessage:
    """One DLQ message: the original event body, the handler's reason attributes, the files it names."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    """The ``filepipe-*`` message attributes (empty for a message SQS's own redrive moved)."""
    message_attributes: dict[str, MessageAttributeValueTypeDef]
    """Every message attribute, in the shape SendMessage takes."""
    receive_count: int
    """DLQ receives, ours included: each listing raises it by one."""
    parked_at: str
    sent_ms: int | None
    """``SentTimestamp`` (epoch milliseconds, the DLQ's clock): when it was parked."""
    files: tuple[ObjectRef, ...]
    """The object versions the body announces (several for a multi-record notification)."""

    @property
    def error_type(self) -> str:
        return self.attributes.get(DlqAttribute.ERROR_TYPE, "")

    @property
    def reason(self) -> str:
        return self.attributes.get(DlqAttribute.REASON, "")

    @property
    def keys(self) -> list[str]:
        """The source keys: the handler's attribute, else every key the body names."""
        named = self.attributes.get(DlqAttribute.SOURCE_KEY)
        return [named] if named else [ref.key for ref in self.files]

    @property
    def bucket(self) -> str:
        named = self.attributes.get(DlqAttribute.SOURCE_BUCKET)
        return named or (self.files[0].bucket if self.files else "")

    def matches(self, error_type: str | None, key_glob: str | None) -> bool:
        if error_type is not None and self.error_type != error_type:
            return False
        return key_glob is None or any(fnmatch.fnmatchcase(key, key_glob) for key in self.keys)

    def document(self, states: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """The message as ``--json`` and ``export`` print it (``states``: the files' state-table rows)."""
        return {
            "messageId": self.message_id,
            "parkedAt": self.parked_at,
            "bucket": self.bucket,
            "keys": self.keys,
            "errorType": self.error_type,
            "reason": self.reason,
            "dlqReceiveCount": self.receive_count,
            "attributes": self.attributes,
            "state": list(states),
            "body": self.body,
        }


def _send_shape(value: dict[str, Any]) -> MessageAttributeValueTypeDef:
    """A received attribute as SendMessage takes it (ReceiveMessage adds empty list fields)."""
    kept = {name: value[name] for name in ("DataType", "StringValue", "BinaryValue") if name in value}
    return kept  # type: ignore[return-value]


def _parked(message: MessageTypeDef) -> ParkedMessage:
    raw_attributes = message.get("MessageAttributes", {})
    system = message.get("Attributes", {})
    try:
        files = tuple(parse_body(message.get("Body", "")).objects)
    except UnknownBodyError:
        files = ()
    sent = system.get("SentTimestamp")
    return ParkedMessage(
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message.get("Body", ""),
        attributes={
            name: str(value.get("StringValue", ""))
            for name, value in raw_attributes.items()
            if name.startswith("filepipe-")
        },
        message_attributes={name: _send_shape(dict(value)) for name, value in raw_attributes.items()},
        receive_count=int(system.get("ApproximateReceiveCount", "0")),
        parked_at=iso_ms(int(sent)) if sent else "",
        sent_ms=int(sent) if sent else None,
        files=files,
    )


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC, the form every command prints times in."""
    return (
        datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def now_ms() -> int:
    """This moment in epoch milliseconds, the unit of ``SentTimestamp``."""
    return int(time.time() * 1000)


@dataclass
class DlqReader:
    """Receives a DLQ's messages page by page and remembers what it holds hidden, to hand it back.

    ``parked_by`` (epoch milliseconds, default: when the reader is made) bounds the snapshot: messages
    parked later are received (and held, so they are not received again) but not returned; they are
    counted in :attr:`parked_since`. SQS stamps ``SentTimestamp`` with its own clock: a local clock that
    runs behind leaves out the latest messages before the start, one that runs ahead takes a few after.
    """

    sqs: SQSClient
    url: str
    parked_by: int = field(default_factory=now_ms)
    held: dict[str, str] = field(default_factory=dict)
    """Message id -> the latest receipt handle (only the latest is sure to work)."""
    parked_since: int = 0
    """Messages received that were parked after :attr:`parked_by` (left in the DLQ, not returned)."""
    _held_since: float | None = None
    """``time.monotonic()`` of the oldest receive (or renewal) whose visibility still runs."""

    def pages(self) -> Iterator[list[ParkedMessage]]:
        """Pages of messages of the snapshot not seen before, until receives bring none (see
        :data:`LATER_ONLY_RECEIVES`)."""
        seen: set[str] = set()
        later_only = 0
        while later_only < LATER_ONLY_RECEIVES:
            self.keep_hidden()  # a DLQ of many thousands takes longer to read than one visibility timeout
            received = self.sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=SQS_BATCH,
                VisibilityTimeout=READ_VISIBILITY_SECONDS,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if received and self._held_since is None:
                self._held_since = time.monotonic()
            for message in received:
                self.held[message["MessageId"]] = message["ReceiptHandle"]
            new = [_parked(message) for message in received if message["MessageId"] not in seen]
            if not new:
                return
            seen.update(message.message_id for message in new)
            taken = [
                message for message in new if message.sent_ms is None or message.sent_ms <= self.parked_by
            ]
            self.parked_since += len(new) - len(taken)
            later_only = 0 if taken else later_only + 1
            if taken:
                yield taken

    def snapshot(self) -> list[ParkedMessage]:
        """Every message of the snapshot, oldest first, each held hidden until :meth:`release`."""
        found = [message for page in self.pages() for message in page]
        return sorted(found, key=lambda message: (message.parked_at, message.message_id))

    def keep_hidden(self) -> None:
        """Hide the held messages again for :data:`READ_VISIBILITY_SECONDS` once they have been held
        :data:`RENEW_AFTER_SECONDS` (a no-op before): a long retry must not see its own messages
        reappear, to be received by another reader, before it sent or released them."""
        if self._held_since is None or time.monotonic() - self._held_since < RENEW_AFTER_SECONDS:
            return
        self._change_visibility(READ_VISIBILITY_SECONDS)
        self._held_since = time.monotonic()

    def forget(self, message_ids: Sequence[str]) -> None:
        """Messages deleted: nothing to hand back."""
        for message_id in message_ids:
            self.held.pop(message_id, None)

    def release(self) -> None:
        """Make every message still held visible again at once (best effort: the timeout does it too)."""
        self._change_visibility(0)
        self.held.clear()
        self._held_since = None

    def _change_visibility(self, seconds: int) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
            for index, handle in enumerate(self.held.values())
        ]
        for start in range(0, len(entries), SQS_BATCH):
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=entries[start : start + SQS_BATCH],  # type: ignore[arg-type]
            )


@dataclass(frozen=True, slots=True)
class ParkedSnapshot:
    """What one read of the DLQ found: the messages parked by its start, and how many came after."""

    messages: list[ParkedMessage]
    parked_by: int
    """The snapshot's bound (epoch milliseconds): :attr:`messages` were parked at or before it."""
    parked_since: int
    """Messages parked while the read ran: seen, left in the DLQ, not in :attr:`messages`."""


def read_parked(stack: Stack, pipeline: Pipeline) -> ParkedSnapshot:
    """Every message parked in the pipeline's DLQ by now, oldest first, each left in the DLQ as it was."""
    reader = DlqReader(stack.sqs(), pipeline.dlq_url)
    try:
        messages = reader.snapshot()
    finally:
        reader.release()
    return ParkedSnapshot(messages, reader.parked_by, reader.parked_since)


def file_states(
    stack: Stack, pipeline: Pipeline, messages: Sequence[ParkedMessage]
) -> dict[str, dict[str, Any]]:
    """The state-table rows of the files ``messages`` name, by ``pk`` (plain values), read consistently."""
    if not pipeline.table_name:
        return {}
    pks = sorted({ref.state_pk for message in messages for ref in message.files})
    rows: dict[str, dict[str, Any]] = {}
    for start in range(0, len(pks), BATCH_GET_KEYS):
        request: Any = {
            pipeline.table_name: {
                "Keys": [{StateAttribute.PK.value: {"S": pk}} for pk in pks[start : start + BATCH_GET_KEYS]],
                "ConsistentRead": True,
            }
        }
        while request:
            response = stack.dynamodb().batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(pipeline.table_name, []):
                row = {name: next(iter(value.values())) for name, value in item.items()}
                rows[str(row[StateAttribute.PK])] = row
            request = response.get("UnprocessedKeys") or None
    return rows


def states_of(message: ParkedMessage, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[ref.state_pk] for ref in message.files if ref.state_pk in rows]


@dataclass(frozen=True, slots=True)
class Retried:
    """What happened to one DLQ message in :func:`retry_batch`."""

    message: ParkedMessage
    sent: bool
    notes: tuple[str, ...]
    """Per file, what the state table said when it was requeued (or why the message stayed)."""


def retry_batch(
    stack: Stack, pipeline: Pipeline, reader: DlqReader, messages: Sequence[ParkedMessage]
) -> list[Retried]:
    """Put up to ten DLQ messages back on the source queue: requeue -> send -> delete (see the module)."""
    sqs = stack.sqs()
    notes: dict[str, list[str]] = {message.message_id: [] for message in messages}
    to_send: list[ParkedMessage] = []
    for message in messages:
        ready = True
        for ref in message.files if pipeline.table_name else ():
            found = requeue(stack.dynamodb(), pipeline.table_name, ref, parked_only=True)
            notes[message.message_id].append(f"{ref.key}: {found.note}")
            ready = ready and found.ready
        if ready:
            to_send.append(message)
    sent: list[ParkedMessage] = []
    if to_send:
        response = sqs.send_message_batch(
            QueueUrl=pipeline.queue_url,
            Entries=[
                {
                    "Id": str(index),
                    "MessageBody": message.body,
                    "MessageAttributes": message.message_attributes,
                }
                for index, message in enumerate(to_send)
            ],
        )
        sent = [to_send[int(entry["Id"])] for entry in response.get("Successful", [])]
        for failure in response.get("Failed", []):
            notes[to_send[int(failure["Id"])].message_id].append(
                f"not sent ({failure.get('Code', 'error')}: {failure.get('Message', '')}): left in the DLQ"
            )
    if sent:
        response_deleted = sqs.delete_message_batch(
            QueueUrl=pipeline.dlq_url,
            Entries=[
                {
                    "Id": str(index),
                    "ReceiptHandle": reader.held.get(message.message_id, message.receipt_handle),
                }
                for index, message in enumerate(sent)
            ],
        )
        reader.forget([sent[int(entry["Id"])].message_id for entry in response_deleted.get("Successful", [])])
        for failure in response_deleted.get("Failed", []):
            # Harmless: retried again, the copy is skipped as a duplicate of the retried version.
            notes[sent[int(failure["Id"])].message_id].append("sent, but its DLQ copy was not deleted")
    sent_ids = {message.message_id for message in sent}
    return [
        Retried(message, message.message_id in sent_ids, tuple(notes[message.message_id]))
        for message in messages
    ]
