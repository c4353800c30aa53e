"""Fixtures for the local-runtime tests: moto in-process (no network) for unit tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto import mock_aws

from filepipe.local.apply import mock_outputs
from filepipe.local.capture import CapturedResource
from filepipe.local.endpoint import EndpointAddress
from tests.conftest import REGION

PROJECT_DIR = Path(__file__).resolve().parents[2]
"""The project root: ``Pulumi.yaml``, the dev stack and the stack program."""
ADDRESS = EndpointAddress("http://127.0.0.1:4566")
"""Where captured identifiers point in tests that start no endpoint."""


def captured(type_token: str, logical: str, **inputs: object) -> CapturedResource:
    """A registration as the capture records it, with the outputs the mocks answer at :data:`ADDRESS`."""
    resource_id, outputs = mock_outputs(type_token, logical, inputs, ADDRESS)
    return CapturedResource(type_token, logical, resource_id, inputs, outputs, custom=True)


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


def visible_messages(sqs: Any, url: str) -> int:
    """Messages a receive would return now (not in flight, not delayed)."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (no timed assertions: a generous deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def s3_error_response(request: Any, status: int = 503, code: str = "ServiceUnavailable") -> AWSResponse:
    """The response S3 gives for ``request`` when it refuses it (a botocore ``before-send`` hook returns
    it instead of sending)."""
    body = f"<Error><Code>{code}</Code><Message>injected {code}</Message></Error>".encode()

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    headers = HTTPHeaders()
    headers["Content-Type"] = "application/xml"
    return AWSResponse(request.url, status, headers, Raw())
