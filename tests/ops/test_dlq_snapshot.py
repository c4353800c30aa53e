"""A read of the DLQ is a snapshot: it takes what was parked by its start, ends however fast messages
keep arriving, and keeps what it holds hidden for as long as it holds it (moto, no endpoint)."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from filepipe.cli.ops import parked
from filepipe.cli.ops.parked import SQS_BATCH, DlqReader
from tests.conftest import REGION

BODY = '{"Records": []}'
ARRIVING_PER_RECEIVE = SQS_BATCH
"""As many new messages per receive as a receive returns: a read that waits for an empty answer never
gets one."""
RECEIVE_GUARD = 200


class ParkingWhileReading:
    """An SQS client on which every ReceiveMessage is preceded by new messages parked in the queue."""

    def __init__(self, sqs: Any, url: str) -> None:
        self._sqs = sqs
        self._url = url
        self.receives = 0
        self.parked = 0

    def receive_message(self, **kwargs: Any) -> Any:
        self.receives += 1
        if self.receives > RECEIVE_GUARD:
            raise AssertionError(f"still reading after {RECEIVE_GUARD} receives")
        self._sqs.send_message_batch(
            QueueUrl=self._url,
            Entries=[{"Id": str(i), "MessageBody": BODY} for i in range(ARRIVING_PER_RECEIVE)],
        )
        self.parked += ARRIVING_PER_RECEIVE
        return self._sqs.receive_message(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)


@pytest.fixture
def sqs() -> Any:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def test_a_read_ends_while_messages_keep_arriving_and_takes_only_those_parked_by_its_start(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    before = {sqs.send_message(QueueUrl=url, MessageBody=BODY)["MessageId"] for _ in range(2 * SQS_BATCH + 5)}
    monkeypatch.setattr(parked, "RECEIVE_WAIT_SECONDS", 0)
    client = ParkingWhileReading(sqs, url)
    # The start is taken after the first messages and before the first of the others (SentTimestamp
    # has milliseconds: the bound is the latest of the first ones).
    latest_before = max(int(message["Attributes"]["SentTimestamp"]) for message in _all(sqs, url))
    reader = DlqReader(client, url, parked_by=latest_before)  # type: ignore[arg-type]

    try:
        taken = reader.snapshot()
    finally:
        reader.release()

    assert {message.message_id for message in taken} == before
    assert 0 < reader.parked_since <= client.parked
    assert client.receives < RECEIVE_GUARD


def _all(sqs: Any, url: str) -> list[Any]:
    """Every message of the queue, made visible again (the test's own look, before the read)."""
    found: dict[str, Any] = {}
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=SQS_BATCH, VisibilityTimeout=30, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        found.update({message["MessageId"]: message for message in batch})
    for message in found.values():
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return list(found.values())


def test_messages_held_longer_than_the_renewal_interval_are_hidden_again(
    sqs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    for _ in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=BODY)
    monkeypatch.setattr(parked, "RECEIVE_WAIT_SECONDS", 0)
    reader = DlqReader(sqs, url)
    assert len(reader.snapshot()) == 3
    renewals: list[int] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.ChangeMessageVisibilityBatch",
        lambda params, **_: renewals.extend(entry["VisibilityTimeout"] for entry in params["Entries"]),
    )

    reader.keep_hidden()  # just received: nothing to renew
    reader._held_since = time.monotonic() - parked.RENEW_AFTER_SECONDS - 1  # as if received that long ago
    reader.keep_hidden()  # held past the interval: hidden again, for the whole read visibility
    reader.keep_hidden()  # just renewed

    assert renewals == [parked.READ_VISIBILITY_SECONDS] * 3
    reader.release()
    assert renewals[3:] == [0] * 3
