"""A moto account with one pipeline's resources: bucket, source queue, DLQ, state table."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from filepipe.handler.app import build_handler
from filepipe.handler.batch import BatchHandler
from filepipe.handler.clients import Clients
from filepipe.handler.settings import ATTENTION_INDEX, HandlerSettings, StateAttribute
from filepipe.local import dynamodb_fidelity, s3_fidelity
from tests.conftest import REGION

BUCKET = "filepipe-test"
PLAIN_BUCKET = "filepipe-plain"
"""An unversioned bucket: events carry only the ETag."""
STATE_TABLE = "filepipe-state"
NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})
_SEQUENCERS = (f"{n:018X}" for n in itertools.count(0x0055AED6DCD90281E6))
"""Increasing, like S3's sequencers for later uploads of one key."""


class FakeContext:
    """A Lambda context whose remaining time is scripted: one value per call, the last one repeats."""

    def __init__(self, *remaining_ms: int) -> None:
        self._remaining = list(remaining_ms) or [900_000]
        self.function_name = "filepipe-test"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:filepipe-test"
        self.aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining.pop(0) if len(self._remaining) > 1 else self._remaining[0]


def failures(*message_ids: str) -> dict[str, Any]:
    """The exact partial-batch response that reports ``message_ids``."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


def ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def dlq_attributes(message: dict[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}


@dataclass
class Faults:
    """Client errors injected through botocore's event hooks (no network, no retries)."""

    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def fail(
        self,
        client: Any,
        operation: str,
        code: str = "SlowDown",
        status: int = 503,
        times: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        remaining = [times]
        service = client.meta.service_model.service_name

        def hook(params: dict[str, Any], **_: Any) -> None:
            if when is not None and not when(params):
                return
            if remaining[0] is not None:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            error: Any = {"Error": {"Code": code, "Message": f"injected {code}"}}
            error["ResponseMetadata"] = {"HTTPStatusCode": status}
            raise ClientError(error, operation)

        client.meta.events.register(f"before-parameter-build.{service}.{operation}", hook)

    def record(self, client: Any, operation: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        service = client.meta.service_model.service_name

        def hook(params: dict[str, Any], **_: Any) -> None:
            seen.append(dict(params))

        client.meta.events.register(f"before-parameter-build.{service}.{operation}", hook)
        return seen


@dataclass
class Aws:
    """The pipeline's resources and helpers to drive the handler like the SQS event source mapping."""

    clients: Clients
    queue_url: str
    queue_arn: str
    dlq_url: str
    settings: HandlerSettings
    faults: Faults = field(default_factory=Faults)

    @property
    def s3(self) -> Any:
        return self.clients.s3

    @property
    def sqs(self) -> Any:
        return self.clients.sqs

    @property
    def dynamodb(self) -> Any:
        return self.clients.dynamodb

    def handler(self, **overrides: Any) -> BatchHandler:
        return build_handler(replace(self.settings, **overrides), self.clients)

    def put(self, key: str, body: bytes | str, bucket: str = BUCKET) -> dict[str, Any]:
        """Upload ``body``; the result also carries what S3's event for it would: size and sequencer."""
        data = body.encode() if isinstance(body, str) else body
        response = dict(self.s3.put_object(Bucket=bucket, Key=key, Body=data))
        response["size"] = len(data)
        response["sequencer"] = next(_SEQUENCERS)
        return response

    def batch(self, *bodies: str) -> dict[str, Any]:
        """Send ``bodies`` to the source queue and receive them as one Lambda SQS event."""
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        messages: list[dict[str, Any]] = []
        while len(messages) < len(bodies):
            received = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            assert received, "messages vanished from the source queue"
            messages.extend(received)
        return {"Records": [self._lambda_record(m) for m in messages]}

    def redeliver(self, event: dict[str, Any]) -> dict[str, Any]:
        """The same messages delivered again (same ids and bodies, one more receive), as after a
        visibility timeout."""
        copied: dict[str, Any] = json.loads(json.dumps(event))
        for record in copied["Records"]:
            attributes = record.setdefault("attributes", {})
            attributes["ApproximateReceiveCount"] = str(
                int(attributes.get("ApproximateReceiveCount", "1")) + 1
            )
        return copied

    def _lambda_record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": REGION,
        }

    def dlq_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def state_items(self) -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]
        return [{name: next(iter(value.values())) for name, value in item.items()} for item in items]

    def keys(self, prefix: str, bucket: str = BUCKET) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return sorted(obj["Key"] for obj in listed)

    def versions(self, key: str, bucket: str = BUCKET) -> int:
        listed = self.s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        return sum(1 for version in listed if version["Key"] == key)

    def read(self, key: str, bucket: str = BUCKET) -> bytes:
        body: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


@pytest.fixture
def aws() -> Iterator[Aws]:
    # moto enforces none of S3's key and metadata limits, and its UpdateItem is neither atomic nor sized
    # as DynamoDB's; the local runtime's patches make it behave as S3 and DynamoDB do, here too.
    s3_fidelity.apply()
    dynamodb_fidelity.apply()
    with mock_aws():
        clients = Clients(
            s3=boto3.client("s3", region_name=REGION, config=NO_RETRIES),
            sqs=boto3.client("sqs", region_name=REGION, config=NO_RETRIES),
            dynamodb=boto3.client("dynamodb", region_name=REGION, config=NO_RETRIES),
        )
        location: Any = {"LocationConstraint": REGION}
        clients.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration=location)
        clients.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        clients.s3.create_bucket(Bucket=PLAIN_BUCKET, CreateBucketConfiguration=location)
        dlq_url = clients.sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
        queue_url = clients.sqs.create_queue(QueueName="orders")["QueueUrl"]
        queue_arn = clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        clients.dynamodb.create_table(
            TableName=STATE_TABLE,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": StateAttribute.PK.value, "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"}
                for name in (StateAttribute.PK, StateAttribute.ATTENTION, StateAttribute.UPDATED_AT)
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": ATTENTION_INDEX,
                    "KeySchema": [
                        {"AttributeName": StateAttribute.ATTENTION.value, "KeyType": "HASH"},
                        {"AttributeName": StateAttribute.UPDATED_AT.value, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        settings = HandlerSettings(
            pipeline_name="orders",
            input_prefix="in/",
            output_prefix="out/",
            state_table=STATE_TABLE,
            dlq_url=dlq_url,
            backoff_base_seconds=30,
            backoff_max_seconds=900,
            log_level="WARNING",
        )
        yield Aws(clients, queue_url, queue_arn, dlq_url, settings)


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()
