"""Fixtures for the local-runtime tests: moto in-process (no network) for unit tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.conftest import REGION


@dataclass
class Queues:
    """A source queue with a redrive policy to its DLQ."""

    url: str
    arn: str
    dlq_url: str
    dlq_arn: str


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def sqs_factory(aws: None) -> Callable[[], Any]:
    return lambda: boto3.client("sqs", region_name=REGION)


def make_queues(
    sqs: Any, name: str = "work", *, visibility_timeout: int = 1, max_receive_count: int = 3
) -> Queues:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queues(url, arn, dlq_url, dlq_arn)


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (no timed assertions: a generous deadline)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
