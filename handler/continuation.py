"""A file that outgrows one invocation: the checkpoint one invocation hands to the next.

When the remaining time runs low, the handler stops between two records and records, in the file's
state item and under its lease, everything the next invocation needs to go on as if nothing happened:
where reading resumes (a byte offset for a ranged GET, the CSV header, the line count), each output's
multipart upload (its id and its parts' ETags) and the bytes written after its last part (the carry),
the encoder's state (the JSON envelope's time, the CSV columns) and the counts so far. The message is
then sent again as a fresh copy, so a continuation is neither a retry nor a receive toward the queue's
``maxReceiveCount``.

Each output is durable up to a record index: records before it are in uploaded parts or in the carry.
A carry is kept only while it fits in the state item (:func:`carry_budget`, compressed); an
output whose carry does not fit falls back to its last part, and the next invocation reads again from
there, skipping for each output the records it already holds. Nothing is written twice, and the
output is byte for byte the one a single invocation writes.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from .readers import ReaderState
from .writers import UploadState

ITEM_BUDGET_BYTES = 360_000
"""What a checkpoint (its document and both carries) may take of the state item. DynamoDB items hold
400 KB (409,600 bytes); the rest of the item needs under 10 KB: its key and the object's, the output and
rejects keys (up to 1 KB each), the last error (1,000 characters), the times and counts."""
BYTES_PER_PART = 40
"""A part's ETag in the checkpoint document (32 hex digits, escaped quotes, separator)."""
FIXED_FIELDS_BYTES = 2_000
"""The document's fields of bounded size: names, upload ids, indexes, counts, sizes, digests, times."""


def carry_budget(reader: ReaderState, encoder_state: dict[str, Any], parts: int) -> int:
    """Compressed carry bytes a checkpoint can keep, both outputs together, beside a document with
    ``parts`` ETags (both outputs'), a reader state like ``reader`` for each output (a CSV header can
    be long) and ``encoder_state``."""
    document = (
        2 * len(json.dumps(reader.to_item()))
        + len(json.dumps(encoder_state))
        + BYTES_PER_PART * parts
        + FIXED_FIELDS_BYTES
    )
    return max(0, ITEM_BUDGET_BYTES - document)


@dataclass(slots=True)
class DurablePoint:
    """How far one output is safe: through record ``index`` (exclusive), with the reader state there."""

    reader: ReaderState
    index: int
    records: int
    """Output records it holds (written records for the output, rejected ones for the rejects)."""
    upload: UploadState

    @property
    def pristine(self) -> bool:
        """Nothing of the output exists yet (not even the JSON envelope's head): it starts afresh."""
        return self.records == 0 and not self.upload.etags and not self.upload.carry

    def to_item(self) -> dict[str, Any]:
        return {
            "reader": self.reader.to_item(),
            "index": self.index,
            "records": self.records,
            "upload_id": self.upload.upload_id,
            "etags": self.upload.etags,
            "size": self.upload.size,
            "carry": carry_digest(self.upload.carry),
        }

    @classmethod
    def from_item(cls, item: dict[str, Any], carry: bytes, verify: bool = True) -> DurablePoint:
        """The point an item describes; raises :class:`CheckpointMismatchError` if ``carry`` (kept in
        its own attribute) is not the carry the document was written with, unless not ``verify``."""
        expected = item.get("carry")
        if verify and expected is not None and expected != carry_digest(carry):
            raise CheckpointMismatchError(
                f"the carry holds {len(carry)} bytes (digest {carry_digest(carry)}), the checkpoint"
                f" was written with {expected}"
            )
        return cls(
            reader=ReaderState.from_item(item["reader"]),
            index=int(item["index"]),
            records=int(item["records"]),
            upload=UploadState(
                item.get("upload_id"),
                [str(etag) for etag in item.get("etags", [])],
                carry,
                int(item.get("size", 0)),
            ),
        )


class CheckpointMismatchError(ValueError):
    """A checkpoint's parts of the state item disagree: resuming from it would write a wrong output."""


def carry_digest(carry: bytes) -> str:
    """The carry's length and CRC-32, recorded in the checkpoint document next to the part list.

    The carry is kept in its own binary attribute of the same item and written by the same UpdateItem,
    which DynamoDB applies whole or not at all; the digest makes a resume verify that, rather than trust
    it, because a carry from another checkpoint would put bytes of an earlier offset into the output."""
    return f"{len(carry)}:{zlib.crc32(carry):08x}"


@dataclass(slots=True)
class Checkpoint:
    """Everything one invocation hands to the next for one object version."""

    version: str
    """The version token it belongs to: a checkpoint of another version is abandoned, never resumed."""
    output: DurablePoint
    rejects: DurablePoint | None
    encoder: dict[str, Any]
    started_at: float
    """When the first invocation started on the file (the outcome's duration spans every one)."""
    continuations: int

    @property
    def resume(self) -> DurablePoint:
        """The point reading starts again from: the least advanced output's."""
        if self.rejects is not None and self.rejects.index < self.output.index:
            return self.rejects
        return self.output

    @property
    def upload_ids(self) -> list[str]:
        points = [self.output] + ([self.rejects] if self.rejects is not None else [])
        return [point.upload.upload_id for point in points if point.upload.upload_id]

    def document(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "output": self.output.to_item(),
                "rejects": self.rejects.to_item() if self.rejects is not None else None,
                "encoder": self.encoder,
                "started_at": self.started_at,
                "continuations": self.continuations,
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, document: str, carry: bytes, rejects_carry: bytes, verify: bool = True) -> Checkpoint:
        """The checkpoint recorded; raises :class:`CheckpointMismatchError` if a carry does not belong
        to the document (``verify=False`` reads it anyway, to abort its uploads)."""
        item = json.loads(document)
        rejects = item.get("rejects")
        return cls(
            version=str(item["version"]),
            output=DurablePoint.from_item(item["output"], carry, verify),
            rejects=DurablePoint.from_item(rejects, rejects_carry, verify) if rejects is not None else None,
            encoder=dict(item.get("encoder") or {}),
            started_at=float(item["started_at"]),
            continuations=int(item.get("continuations", 0)),
        )


def pack_carry(carry: bytes) -> bytes:
    return zlib.compress(carry, 6) if carry else b""


def unpack_carry(packed: bytes) -> bytes:
    return zlib.decompress(packed) if packed else b""
