"""The circuit breaker's state machine (handler.breaker) on moto, and the handler's fresh copy on a last
delivery while the breaker is not closed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from filepipe.handler.breaker import Breaker, BreakerSettings, read_status
from filepipe.handler.settings import BreakerAttribute, BreakerState, QueueAttribute
from tests.conftest import REGION
from tests.handler.conftest import Aws, FakeContext
from tests.handler.events import s3_body

BREAKER_TABLE = "orders-breaker"


class FakeMapping:
    """Lambda's mapping API as the breaker sees it: a change settles only after a few polls, like AWS."""

    def __init__(self, settle_after: int = 2) -> None:
        self.state = "Enabled"
        self.concurrency: int | None = 50
        self.updates: list[dict[str, Any]] = []
        self._settle_after = settle_after
        self._pending: str | None = None
        self._polls = 0

    def get_event_source_mapping(self, UUID: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        if self._pending is not None:
            self._polls += 1
            if self._polls >= self._settle_after:
                self.state, self._pending = self._pending, None
        scaling = {"MaximumConcurrency": self.concurrency} if self.concurrency is not None else {}
        return {"UUID": UUID, "State": self.state, "ScalingConfig": scaling}

    def update_event_source_mapping(self, **kwargs: Any) -> dict[str, Any]:
        self.updates.append(kwargs)
        if "ScalingConfig" in kwargs:
            self.concurrency = kwargs["ScalingConfig"].get("MaximumConcurrency")
        enabled = kwargs.get("Enabled")
        if enabled is not None:
            self.state = "Enabling" if enabled else "Disabling"
            self._pending, self._polls = ("Enabled" if enabled else "Disabled"), 0
        return {"State": self.state}


@dataclass
class World:
    breaker: Breaker
    mapping: FakeMapping
    clock: list[float]
    alerts_url: str
    cloudwatch: Any
    dynamodb: Any
    sleeps: list[float] = field(default_factory=list)

    def alerts(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        found = []
        while messages := sqs.receive_message(QueueUrl=self.alerts_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append({"subject": envelope.get("Subject"), **json.loads(envelope["Message"])})
                sqs.delete_message(QueueUrl=self.alerts_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def alarm(self, name: str, state: str) -> None:
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def create_breaker_table(dynamodb: Any, name: str = BREAKER_TABLE) -> None:
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": BreakerAttribute.PK.value, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": BreakerAttribute.PK.value, "AttributeType": "S"}],
    )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        create_breaker_table(dynamodb)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        alerts_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=alerts_arn)
        for alarm in ("trip", "probe"):
            cloudwatch.put_metric_alarm(
                AlarmName=alarm,
                Namespace="filepipe",
                MetricName="FilesRetried",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )
        settings = BreakerSettings(
            pipeline_name="orders",
            table=BREAKER_TABLE,
            mapping_uuid="uuid-1",
            topic_arn=topic,
            closed_concurrency=50,
            probe_concurrency=2,
            cool_down_seconds=300,
            max_cool_down_seconds=1000,
            probe_window_seconds=300,
            trip_alarm="trip",
            probe_alarm="probe",
        )
        mapping = FakeMapping()
        clock = [1_800_000_000.0]
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            clock[0] += seconds

        breaker = Breaker(
            settings,
            lambda_client=mapping,  # type: ignore[arg-type]
            dynamodb=dynamodb,
            sns=sns,
            cloudwatch=cloudwatch,
            clock=lambda: clock[0],
            sleep=sleep,
        )
        yield World(breaker, mapping, clock, alerts_url, cloudwatch, dynamodb, sleeps)


def _alarm_event(name: str, value: str = "ALARM") -> dict[str, Any]:
    """What CloudWatch sends a Lambda alarm action."""
    return {
        "source": "aws.cloudwatch",
        "alarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}",
        "alarmData": {"alarmName": name, "state": {"value": value, "reason": "Threshold Crossed: 12 >= 10"}},
    }


def test_the_trip_alarm_opens_the_breaker_and_waits_until_the_mapping_is_disabled(world: World) -> None:
    # WHEN the trip alarm invokes the breaker
    result = world.breaker.handle(_alarm_event("trip"))

    # THEN the mapping was disabled and the breaker waited for Disabled before alerting
    assert world.mapping.updates == [{"UUID": "uuid-1", "Enabled": False}]
    assert world.mapping.state == "Disabled" and world.sleeps
    assert result["state"] == "OPEN"
    (alert,) = world.alerts()
    assert alert["breaker"] == "OPEN" and alert["previous"] == "CLOSED"
    assert "trip: Threshold Crossed" in alert["reason"] and "mapping Disabled" in alert["reason"]
    assert alert["subject"] == "filepipe orders: circuit breaker OPEN"
    status = read_status(world.dynamodb, BREAKER_TABLE)
    assert [(h["from"], h["to"]) for h in status.history] == [("CLOSED", "OPEN")]


def test_ok_and_unrelated_alarm_actions_change_nothing(world: World) -> None:
    world.breaker.handle(_alarm_event("trip", "OK"))
    world.breaker.handle(_alarm_event("probe"))  # the probe alarm matters only while half-open

    assert world.breaker.status().state is BreakerState.CLOSED
    assert world.mapping.updates == [] and world.alerts() == []


def test_after_the_cool_down_it_probes_then_closes_when_failures_stay_low(world: World) -> None:
    # GIVEN an open breaker
    world.breaker.handle(_alarm_event("trip"))
    world.alerts()

    # WHEN the timer ticks before and after the cool-down
    world.clock[0] += 100
    world.breaker.handle({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert world.breaker.status().state is BreakerState.OPEN
    world.clock[0] += 200
    world.breaker.handle({"source": "aws.events", "detail-type": "Scheduled Event"})

    # THEN it is half-open: enabled at Lambda's minimum concurrency
    assert world.breaker.status().state is BreakerState.HALF_OPEN
    assert world.mapping.updates[-1] == {
        "UUID": "uuid-1",
        "Enabled": True,
        "ScalingConfig": {"MaximumConcurrency": 2},
    }

    # WHEN the probe window passes with the probe alarm OK
    world.alarm("probe", "OK")
    world.clock[0] += 300
    world.breaker.tick()

    # THEN it is closed at the configured concurrency, and every transition was alerted and kept
    assert world.breaker.status().state is BreakerState.CLOSED
    assert world.mapping.updates[-1] == {
        "UUID": "uuid-1",
        "Enabled": True,
        "ScalingConfig": {"MaximumConcurrency": 50},
    }
    assert [a["breaker"] for a in world.alerts()] == ["HALF_OPEN", "CLOSED"]
    history = world.breaker.status().history
    assert [(h["from"], h["to"]) for h in history] == [
        ("CLOSED", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "CLOSED"),
    ]


def test_failed_probes_open_it_again_with_a_longer_capped_cool_down(world: World) -> None:
    world.breaker.handle(_alarm_event("trip"))
    cool_downs = []
    for _ in range(3):
        world.clock[0] += world.breaker.status().cool_down_seconds
        world.breaker.tick()
        assert world.breaker.status().state is BreakerState.HALF_OPEN
        # WHEN the probes fail
        world.breaker.handle(_alarm_event("probe"))
        status = world.breaker.status()
        assert status.state is BreakerState.OPEN and world.mapping.state == "Disabled"
        cool_downs.append(status.cool_down_seconds)

    # THEN each failed probe doubled the cool-down, up to the maximum
    assert cool_downs == [600, 1000, 1000]


def test_the_timer_reopens_a_half_open_breaker_whose_probe_alarm_is_already_in_alarm(world: World) -> None:
    # GIVEN a half-open breaker and a probe alarm that went to ALARM without an action reaching it
    world.breaker.handle(_alarm_event("trip"))
    world.clock[0] += 300
    world.breaker.tick()
    world.alarm("probe", "ALARM")

    # WHEN the timer ticks
    world.breaker.tick()

    # THEN it is open again
    assert world.breaker.status().state is BreakerState.OPEN


def test_opened_by_hand_it_stays_open_until_closed_by_hand(world: World) -> None:
    world.breaker.handle({"command": "open", "reason": "planned maintenance"})
    world.clock[0] += 10_000
    world.breaker.tick()
    assert world.breaker.status().state is BreakerState.OPEN and world.breaker.status().held

    world.breaker.handle({"command": "close"})

    assert world.breaker.status().state is BreakerState.CLOSED
    assert world.mapping.updates[-1] == {
        "UUID": "uuid-1",
        "Enabled": True,
        "ScalingConfig": {"MaximumConcurrency": 50},
    }


def test_closing_without_a_configured_concurrency_removes_the_limit(world: World) -> None:
    breaker = Breaker(
        replace(world.breaker.settings, closed_concurrency=None),
        lambda_client=world.mapping,  # type: ignore[arg-type]
        dynamodb=world.dynamodb,
        sns=boto3.client("sns", region_name=REGION),
        cloudwatch=world.cloudwatch,
    )
    breaker.open("test")
    breaker.close("test")

    assert world.mapping.updates[-1]["ScalingConfig"] == {}


def test_a_write_from_a_stale_read_loses_and_changes_nothing(world: World) -> None:
    # GIVEN two invocations that read the same closed state
    stale = world.breaker.status()
    world.breaker.open("first")

    # WHEN the second writes from its stale read
    lost = world.breaker._write(stale, BreakerState.OPEN, "second", cool_down=1)

    # THEN it lost: the first transition stands, once
    assert lost is None
    assert [h["reason"] for h in world.breaker.status().history] == ["first"]


def test_the_timer_closes_nothing_and_reopens_when_the_trip_alarm_is_still_in_alarm(world: World) -> None:
    world.breaker.tick()
    assert world.mapping.updates == []

    world.alarm("trip", "ALARM")
    world.breaker.tick()

    assert world.breaker.status().state is BreakerState.OPEN


# -- the handler on a last delivery ------------------------------------------------------------------


def _set_breaker(aws: Aws, state: BreakerState) -> None:
    aws.dynamodb.put_item(
        TableName=BREAKER_TABLE,
        Item={
            BreakerAttribute.PK: {"S": "breaker"},
            BreakerAttribute.STATE: {"S": state.value},
            BreakerAttribute.REVISION: {"N": "1"},
        },
    )


def _last_delivery(aws: Aws, body: str, requeues: int = 0) -> dict[str, Any]:
    event = aws.batch(body)
    for record in event["Records"]:
        record["attributes"]["ApproximateReceiveCount"] = str(aws.settings.max_receive_count)
        if requeues:
            record["messageAttributes"] = {
                QueueAttribute.REQUEUES.value: {"stringValue": str(requeues), "dataType": "Number"}
            }
    return event


def _queued(aws: Aws) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = aws.sqs.receive_message(
        QueueUrl=aws.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    return messages


@pytest.fixture
def with_breaker(aws: Aws) -> Aws:
    create_breaker_table(aws.dynamodb)
    aws.settings = replace(
        aws.settings, breaker_table=BREAKER_TABLE, backoff_base_seconds=0, backoff_max_seconds=0
    )
    return aws


def test_a_last_delivery_failing_while_the_breaker_is_open_is_resent_not_parked(
    with_breaker: Aws, context: FakeContext
) -> None:
    aws = with_breaker
    # GIVEN an open breaker, a downstream outage and a message on its last delivery
    _set_breaker(aws, BreakerState.OPEN)
    put = aws.put("in/a.json", "[1]")
    aws.faults.fail(aws.s3, "GetObject")
    event = _last_delivery(aws, s3_body(key="in/a.json", put=put))

    # WHEN the handler runs
    response = aws.handler()(event, context)

    # THEN the message is acknowledged, a fresh copy is back in the queue and nothing is parked
    assert response == {"batchItemFailures": []}
    assert aws.dlq_messages() == []
    (copy,) = _queued(aws)
    assert copy["Body"] == event["Records"][0]["body"]
    assert copy["MessageAttributes"][QueueAttribute.REQUEUES.value]["StringValue"] == "1"


@pytest.mark.parametrize(
    ("state", "requeues"),
    [
        pytest.param(BreakerState.CLOSED, 0, id="breaker-closed"),
        pytest.param(BreakerState.HALF_OPEN, 3, id="bound-reached"),
    ],
)
def test_a_last_delivery_is_parked_when_the_breaker_is_closed_or_the_bound_is_reached(
    with_breaker: Aws, context: FakeContext, state: BreakerState, requeues: int
) -> None:
    aws = with_breaker
    _set_breaker(aws, state)
    put = aws.put("in/a.json", "[1]")
    aws.faults.fail(aws.s3, "GetObject")

    response = aws.handler()(_last_delivery(aws, s3_body(key="in/a.json", put=put), requeues), context)

    assert response == {"batchItemFailures": []}
    (parked,) = aws.dlq_messages()
    assert parked["MessageAttributes"]["filepipe-error-type"]["StringValue"] == "RetriesExhaustedError"
    assert _queued(aws) == []


def test_a_poison_file_is_parked_once_even_while_the_breaker_is_open(
    with_breaker: Aws, context: FakeContext
) -> None:
    aws = with_breaker
    _set_breaker(aws, BreakerState.OPEN)
    put = aws.put("in/bad.json", "{not json")

    response = aws.handler()(aws.batch(s3_body(key="in/bad.json", put=put)), context)

    assert response == {"batchItemFailures": []}
    assert len(aws.dlq_messages()) == 1
    assert _queued(aws) == []
