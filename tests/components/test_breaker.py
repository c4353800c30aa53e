"""The circuit breaker's graph under Pulumi mocks: resources, wiring, scoped permissions, the trip metric."""

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from filepipe import CircuitBreakerArgs, Encryption, FileProcessingPipeline, PipelineArgs, PipelineConfigError
from filepipe.handler.app import build_handler
from filepipe.handler.clients import Clients
from filepipe.handler.settings import BreakerAttribute, EnvVar, HandlerSettings
from filepipe.policies import wildcard_findings
from filepipe.stack_config import stack_config_from_mapping
from tests.components.conftest import build, pipeline_args, policy
from tests.conftest import ACCOUNT_ID, REGION
from tests.handler.events import s3_body

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def _pipeline(breaker: CircuitBreakerArgs | None = None, **overrides: Any) -> Any:
    args = {"input_prefix": "incoming/orders/", "circuit_breaker": breaker or CircuitBreakerArgs()}
    return lambda: FileProcessingPipeline("orders", pipeline_args({**args, **overrides}))


def _statements(resource: Any) -> dict[str, dict[str, Any]]:
    return {statement["Sid"]: statement for statement in policy(resource)["Statement"]}


def test_the_breaker_adds_its_table_alarms_timer_and_function(mocks):
    # GIVEN a pipeline with the default breaker and a configured concurrency
    build(_pipeline(maximum_concurrency=50))

    # THEN its state table is recoverable, keyed like the breaker's item
    table = mocks.one("aws:dynamodb/table:Table", "orders-breaker-state").inputs
    assert table["hashKey"] == BreakerAttribute.PK
    assert table["pointInTimeRecovery"] == {"enabled": True}
    # AND the breaker function runs handler.breaker with what it switches and where it alerts
    function = mocks.one(FUNCTION, "orders-breaker")
    env = function.inputs["environment"]["variables"]
    mapping = mocks.one("aws:lambda/eventSourceMapping:EventSourceMapping")
    topic = mocks.one("aws:sns/topic:Topic")
    assert function.inputs["handler"] == "handler.breaker.lambda_handler"
    assert env[EnvVar.MAPPING_UUID] == mapping.outputs["uuid"]
    assert env[EnvVar.TOPIC_ARN] == topic.outputs["arn"]
    assert env[EnvVar.CLOSED_CONCURRENCY] == "50"
    assert env[EnvVar.PROBE_CONCURRENCY] == "2"
    assert env[EnvVar.BREAKER_TABLE] == mocks.by_name("orders-breaker-state").outputs["name"]
    # AND both alarms invoke the function, which lets only them (and the timer) invoke it
    trip = mocks.one(ALARM, "orders-breaker-trip").inputs
    probe = mocks.one(ALARM, "orders-breaker-probe").inputs
    assert trip["name"] == env[EnvVar.TRIP_ALARM] and probe["name"] == env[EnvVar.PROBE_ALARM]
    assert trip["alarmActions"] == probe["alarmActions"] == [function.outputs["arn"]]
    assert (trip["threshold"], trip["evaluationPeriods"]) == (10, 2)
    assert (probe["threshold"], probe["evaluationPeriods"]) == (3, 1)
    rule = mocks.one("aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs["scheduleExpression"] == "rate(1 minute)"
    assert mocks.one("aws:cloudwatch/eventTarget:EventTarget").inputs["arn"] == function.outputs["arn"]
    permissions = {(p.inputs["principal"], p.inputs["sourceArn"]) for p in mocks.of_type(PERMISSION)}
    assert permissions == {
        ("lambda.alarms.cloudwatch.amazonaws.com", mocks.by_name("orders-breaker-trip").outputs["arn"]),
        ("lambda.alarms.cloudwatch.amazonaws.com", mocks.by_name("orders-breaker-probe").outputs["arn"]),
        ("events.amazonaws.com", rule.outputs["arn"]),
    }
    # AND the breaker has its own log group with retention, and JSON logs
    assert function.inputs["loggingConfig"]["logFormat"] == "JSON"
    group = mocks.one("aws:cloudwatch/logGroup:LogGroup", "orders-breaker-logs").inputs
    assert function.inputs["loggingConfig"]["logGroup"] == group["name"] and group["retentionInDays"] == 30
    # AND the stack outputs name the breaker for the ops commands
    outputs = mocks.component_outputs["orders"]
    assert outputs["breakerTableName"] == env[EnvVar.BREAKER_TABLE]
    assert outputs["breakerFunctionName"] == function.outputs["name"]


def test_the_breaker_may_switch_only_its_own_mapping_and_publish_only_to_its_topic(mocks):
    build(_pipeline(encryption=Encryption.KMS))

    role_policy = mocks.one(ROLE_POLICY, "orders-brk-role-policy")
    statements = _statements(role_policy)
    mapping = mocks.one("aws:lambda/eventSourceMapping:EventSourceMapping").outputs
    assert wildcard_findings(policy(role_policy)) == []
    assert statements["SwitchOwnMapping"] == {
        "Sid": "SwitchOwnMapping",
        "Effect": "Allow",
        "Action": ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
        "Resource": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:event-source-mapping:{mapping['uuid']}",
    }
    assert statements["Alert"]["Action"] == "sns:Publish"
    assert statements["Alert"]["Resource"] == mocks.one("aws:sns/topic:Topic").outputs["arn"]
    assert statements["KeepState"]["Resource"] == mocks.by_name("orders-breaker-state").outputs["arn"]
    assert statements["ReadOwnAlarms"]["Resource"] == [
        mocks.by_name("orders-breaker-trip").outputs["arn"],
        mocks.by_name("orders-breaker-probe").outputs["arn"],
    ]
    assert statements["UseKey"]["Resource"] == mocks.one("aws:kms/key:Key").outputs["arn"]
    assert set(statements) == {
        "SwitchOwnMapping",
        "Alert",
        "KeepState",
        "ReadOwnAlarms",
        "WriteLogs",
        "UseKey",
    }
    # AND the handler may read the breaker's state and re-send to its own queue, nothing more
    handler = _statements(mocks.one(ROLE_POLICY, "orders-role-policy"))
    assert handler["ReadBreakerState"]["Action"] == "dynamodb:GetItem"
    assert handler["ReadBreakerState"]["Resource"] == statements["KeepState"]["Resource"]
    assert handler["RequeueWhileBreakerOpen"]["Resource"] == mocks.by_name("orders-queue").outputs["arn"]


def test_without_a_breaker_nothing_of_it_is_created(mocks):
    build(lambda: FileProcessingPipeline("orders", PipelineArgs(input_prefix="incoming/orders/")))

    assert [f.name for f in mocks.of_type(FUNCTION)] == ["orders-function"]
    assert mocks.of_type(PERMISSION) == []
    env = mocks.one(FUNCTION).inputs["environment"]["variables"]
    assert EnvVar.BREAKER_TABLE not in env
    assert "RequeueWhileBreakerOpen" not in _statements(mocks.one(ROLE_POLICY))


def test_the_trip_metric_is_one_the_handler_really_emits(mocks, capsys):
    # GIVEN the pipeline's handler, built from the environment the component gives it
    build(_pipeline(pipeline_name="orders-eu"))
    env = mocks.by_name("orders-function").inputs["environment"]["variables"]
    trip = mocks.one(ALARM, "orders-breaker-trip").inputs
    probe = mocks.one(ALARM, "orders-breaker-probe").inputs
    with mock_aws():
        clients = Clients(
            s3=boto3.client("s3", region_name=REGION),
            sqs=boto3.client("sqs", region_name=REGION),
            dynamodb=boto3.client("dynamodb", region_name=REGION),
        )
        clients.s3.create_bucket(Bucket="bucket-b", CreateBucketConfiguration={"LocationConstraint": REGION})  # type: ignore[typeddict-item]
        settings = HandlerSettings.from_env({**env, EnvVar.STATE_TABLE: "", EnvVar.BREAKER_TABLE: ""})
        handler = build_handler(settings, clients)

        def outage(**_: Any) -> None:
            from botocore.exceptions import ClientError

            error: Any = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(error, "GetObject")

        clients.s3.meta.events.register("before-parameter-build.s3.GetObject", outage)
        capsys.readouterr()

        # WHEN a file fails transiently (a downstream outage)
        put = dict(clients.s3.put_object(Bucket="bucket-b", Key="incoming/orders/a.json", Body=b"[1]"))
        body = s3_body(key="incoming/orders/a.json", bucket="bucket-b", put={**put, "size": 3})
        response = handler(
            {
                "Records": [
                    {
                        "messageId": "m1",
                        "body": body,
                        "attributes": {"ApproximateReceiveCount": "1"},
                    }
                ]
            },
            None,
        )

    # THEN the EMF line it prints carries both alarms' metric, namespace and exact dimension set
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    out = capsys.readouterr().out
    emitted = set()
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple(sorted((name, document[name]) for name in dimension_set))
                for metric in directive["Metrics"]:
                    emitted.add((directive["Namespace"], metric["Name"], dimensions))
    for alarm in (trip, probe):
        assert (
            alarm["namespace"],
            alarm["metricName"],
            tuple(sorted(alarm["dimensions"].items())),
        ) in emitted


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"message_retention_seconds": 3600},
            "must exceed the breaker's longest cool-down",
            id="retention-shorter-than-the-longest-cool-down",
        ),
        pytest.param(
            {"maximum_concurrency": 5, "circuit_breaker": CircuitBreakerArgs(probe_concurrency=10)},
            "probe_concurrency=10 must be 2..5",
            id="probes-above-the-pipelines-concurrency",
        ),
        pytest.param(
            {"circuit_breaker": CircuitBreakerArgs(probe_concurrency=1)},
            "probe_concurrency=1 must be 2..1000",
            id="probes-below-lambdas-minimum",
        ),
        pytest.param(
            {"circuit_breaker": CircuitBreakerArgs(cool_down_seconds=10)},
            "cool_down_seconds=10 must be at least 60",
            id="cool-down-shorter-than-the-timer",
        ),
        pytest.param(
            {"circuit_breaker": CircuitBreakerArgs(failure_threshold=0)},
            "failure_threshold=0 must be at least 1",
            id="no-threshold",
        ),
    ],
)
def test_bad_breaker_settings_are_refused_before_anything_is_registered(mocks, overrides, message):
    with pytest.raises(PipelineConfigError, match=message):
        _pipeline(**overrides)()
    assert mocks.resources == []


def test_stack_config_turns_the_breaker_on_with_defaults_or_settings():
    config = stack_config_from_mapping(
        {
            "defaults": {"circuitBreaker": True},
            "pipelines": [
                {"name": "a", "inputPrefix": "a/"},
                {
                    "name": "b",
                    "inputPrefix": "b/",
                    "circuitBreaker": {"failureThreshold": 4, "coolDownSeconds": 120},
                },
                {"name": "c", "inputPrefix": "c/", "circuitBreaker": False},
            ],
        }
    )
    pipelines = config.groups["data"]["pipelines"]
    assert pipelines["a"].get("circuit_breaker") == CircuitBreakerArgs()
    assert pipelines["b"].get("circuit_breaker") == CircuitBreakerArgs(
        failure_threshold=4, cool_down_seconds=120
    )
    assert pipelines["c"].get("circuit_breaker") is None
    with pytest.raises(PipelineConfigError, match="unknown circuitBreaker setting 'threshold'"):
        stack_config_from_mapping(
            {"pipelines": [{"name": "a", "inputPrefix": "a/", "circuitBreaker": {"threshold": 1}}]}
        )
