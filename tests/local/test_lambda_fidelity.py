"""moto's Lambda made to answer as Lambda: mappings it never runs, states from the runner, listing, logging."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from filepipe.local import lambda_fidelity
from filepipe.local.endpoint import DEFAULT_ACCOUNT_ID
from tests.conftest import REGION

ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


class Follower:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, int | None]] = []
        self.state = "Disabling"

    def follow(self, enabled: bool, maximum_concurrency: int | None) -> None:
        self.calls.append((enabled, maximum_concurrency))


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context): pass\n")
    return buffer.getvalue()


@pytest.fixture
def lambda_(aws: None) -> Any:
    lambda_fidelity.apply()
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(ROLE_POLICY)
    )["Role"]["Arn"]
    client = boto3.client("lambda", region_name=REGION)
    client.create_function(
        FunctionName="fn",
        Role=role,
        Runtime="python3.13",
        Handler="index.handler",
        Code={"ZipFile": _zip()},
        LoggingConfig={"LogFormat": "JSON", "LogGroup": "/custom/fn"},
    )
    client.create_function(
        FunctionName="plain",
        Role=role,
        Runtime="python3.13",
        Handler="index.handler",
        Code={"ZipFile": _zip()},
    )
    return client


@pytest.fixture
def queue_arn(aws: None) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def test_logging_config_is_stored_with_lambdas_defaults(lambda_: Any) -> None:
    assert lambda_.get_function_configuration(FunctionName="fn")["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": "/custom/fn",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "INFO",
    }
    assert lambda_.get_function_configuration(FunctionName="plain")["LoggingConfig"] == {
        "LogFormat": "Text",
        "LogGroup": "/aws/lambda/plain",
    }


def test_a_mapping_is_never_registered_where_moto_would_run_it(lambda_: Any, queue_arn: str) -> None:
    from moto.sqs.models import sqs_backends

    # WHEN a mapping is created (by function ARN, as the component does)
    function_arn = lambda_.get_function_configuration(FunctionName="fn")["FunctionArn"]
    mapping = lambda_.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=function_arn)
    # THEN moto's SQS has no mapping to invoke on a new message
    queue = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues["work"]
    assert queue.lambda_event_source_mappings == {}
    # AND it is listed by the function's name or ARN, as Lambda lists it
    for reference in ("fn", function_arn):
        listed = lambda_.list_event_source_mappings(FunctionName=reference)["EventSourceMappings"]
        assert [m["UUID"] for m in listed] == [mapping["UUID"]]
    assert lambda_.list_event_source_mappings(FunctionName="plain")["EventSourceMappings"] == []


def test_a_mapping_is_rekeyed_and_reports_its_followers_state(lambda_: Any, queue_arn: str) -> None:
    # GIVEN a mapping given another UUID, run by a follower
    created = lambda_.create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName="fn", ScalingConfig={"MaximumConcurrency": 5}
    )["UUID"]
    wanted = "bfb613f4-8b24-5e7a-a121-47cbe2a1d85b"
    lambda_fidelity.rekey_event_source_mapping(DEFAULT_ACCOUNT_ID, REGION, created, wanted)
    follower = Follower()
    lambda_fidelity.attach(DEFAULT_ACCOUNT_ID, REGION, wanted, follower)
    try:
        # WHEN it is disabled and its concurrency changed
        response = lambda_.update_event_source_mapping(
            UUID=wanted, Enabled=False, ScalingConfig={"MaximumConcurrency": 3}
        )
        # THEN the follower was told before the call returned, and the state is the follower's
        assert follower.calls == [(False, 3)]
        assert response["State"] == "Disabling"
        got = lambda_.get_event_source_mapping(UUID=wanted)
        assert got["UUID"] == wanted and got["EventSourceMappingArn"].endswith(wanted)
        follower.state = "Disabled"
        assert lambda_.get_event_source_mapping(UUID=wanted)["State"] == "Disabled"
        with pytest.raises(ClientError):
            lambda_.get_event_source_mapping(UUID=created)
        # AND a deleted mapping stops its follower
        lambda_.delete_event_source_mapping(UUID=wanted)
        assert follower.calls[-1] == (False, 3)
    finally:
        lambda_fidelity.detach(DEFAULT_ACCOUNT_ID, REGION, wanted)


@pytest.mark.parametrize("concurrency", [pytest.param(1001, id="above-1000")])
def test_a_maximum_concurrency_lambda_refuses_is_refused(
    lambda_: Any, queue_arn: str, concurrency: int
) -> None:
    with pytest.raises(ClientError, match="MaximumConcurrency"):
        lambda_.create_event_source_mapping(
            EventSourceArn=queue_arn, FunctionName="fn", ScalingConfig={"MaximumConcurrency": concurrency}
        )
