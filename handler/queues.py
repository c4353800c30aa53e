"""Retry pacing for transient failures: exponential backoff through ChangeMessageVisibility."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .settings import QueueAttribute

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
    )

MAX_VISIBILITY_SECONDS = 12 * 60 * 60
MAX_DELAY_SECONDS = 15 * 60
"""SQS's longest ``DelaySeconds`` for one message."""
_BATCH = 10


def backoff_seconds(receive_count: int, base: int, maximum: int) -> int:
    """``base * 2**(receive_count - 1)``, capped by ``maximum`` and by SQS's 12-hour limit."""
    exponent = min(max(receive_count, 1) - 1, 30)
    return int(min(base * (2**exponent), maximum, MAX_VISIBILITY_SECONDS))


def parse_queue_arn(arn: str) -> tuple[str, str]:
    """``arn:aws:sqs:<region>:<account>:<name>`` -> (name, account)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    return parts[5], parts[4]


class QueueUrls:
    """Queue URL per ARN via ``GetQueueUrl`` (works against any endpoint), cached."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def url(self, sqs: SQSClient, arn: str) -> str:
        with self._lock:
            cached = self._urls.get(arn)
        if cached is not None:
            return cached
        name, account = parse_queue_arn(arn)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        with self._lock:
            self._urls[arn] = url
        return url


@dataclass(frozen=True, slots=True)
class Deferral:
    """A message to hide for ``seconds`` before it is delivered again."""

    queue_arn: str
    receipt_handle: str
    seconds: int


def change_visibility(sqs: SQSClient, urls: QueueUrls, deferrals: list[Deferral]) -> list[str]:
    """Apply the deferrals in batches of ten; return a description of each that failed."""
    problems: list[str] = []
    by_queue: dict[str, list[Deferral]] = {}
    for deferral in deferrals:
        by_queue.setdefault(deferral.queue_arn, []).append(deferral)
    for arn, items in by_queue.items():
        try:
            url = urls.url(sqs, arn)
        except Exception as exc:
            problems.append(f"{arn}: {exc}")
            continue
        for start in range(0, len(items), _BATCH):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(index), "ReceiptHandle": item.receipt_handle, "VisibilityTimeout": item.seconds}
                for index, item in enumerate(items[start : start + _BATCH])
            ]
            try:
                response = sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            except Exception as exc:
                problems.append(f"{arn}: {exc}")
                continue
            problems.extend(
                f"{arn}: {failed.get('Message', failed['Code'])}" for failed in response.get("Failed", [])
            )
    return problems


def requeue(
    sqs: SQSClient,
    urls: QueueUrls,
    queue_arn: str,
    body: str,
    requeues: int,
    delay: int,
    continuation: int | None = None,
) -> str:
    """Send ``body`` again to its own queue as a fresh message (receive count 0), delayed by ``delay``
    seconds (capped by SQS); returns the new message's id. ``requeues`` is carried as the breaker's
    bound; ``continuation`` marks the copy that continues a checkpointed file."""
    attributes: dict[str, MessageAttributeValueTypeDef] = {
        QueueAttribute.REQUEUES.value: {"DataType": "Number", "StringValue": str(requeues)}
    }
    if continuation is not None:
        attributes[QueueAttribute.CONTINUATION.value] = {
            "DataType": "Number",
            "StringValue": str(continuation),
        }
    response = sqs.send_message(
        QueueUrl=urls.url(sqs, queue_arn),
        MessageBody=body,
        DelaySeconds=min(max(delay, 0), MAX_DELAY_SECONDS),
        MessageAttributes=attributes,
    )
    return response["MessageId"]
