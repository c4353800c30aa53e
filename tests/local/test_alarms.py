from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from filepipe.local.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmEvaluator,
    LocalAlarm,
    UnsupportedAlarmError,
    next_state,
    notification,
)
from filepipe.local.alerts import AlertSubscriber, parse_sns_envelope
from filepipe.local.apply import METRIC_ALARM
from filepipe.local.metrics import LocalMetrics, MetricQuery, aggregate, embedded_queue_gauges
from tests.conftest import ACCOUNT_ID, REGION
from tests.local.conftest import captured, wait_until


def _alarm(**overrides: Any) -> LocalAlarm:
    fields: dict[str, Any] = {
        "name": "dlq-depth",
        "arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:dlq-depth",
        "namespace": "AWS/SQS",
        "metric_name": "ApproximateNumberOfMessagesVisible",
        "dimensions": {"QueueName": "work-dlq"},
        "statistic": "Maximum",
        "period_seconds": 60,
        "evaluation_periods": 1,
        "threshold": 1,
        "comparison_operator": "GreaterThanOrEqualToThreshold",
        "treat_missing_data": "notBreaching",
    }
    fields.update(overrides)
    return LocalAlarm(**fields)


@pytest.mark.parametrize(
    ("overrides", "datapoints", "current", "expected"),
    [
        pytest.param({}, [0.0], INSUFFICIENT_DATA, OK, id="below-threshold"),
        pytest.param({}, [1.0], OK, ALARM, id="at-threshold"),
        pytest.param({}, [None], ALARM, OK, id="missing-not-breaching"),
        pytest.param({"treat_missing_data": "missing"}, [None], OK, INSUFFICIENT_DATA, id="missing-missing"),
        pytest.param({"treat_missing_data": "breaching"}, [None], OK, ALARM, id="missing-breaching"),
        pytest.param({"treat_missing_data": "ignore"}, [None], ALARM, ALARM, id="missing-ignored"),
        pytest.param({"evaluation_periods": 3}, [5.0, 0.0, 5.0], OK, OK, id="two-of-three-needs-three"),
        pytest.param(
            {"evaluation_periods": 3, "datapoints_to_alarm": 2}, [5.0, 0.0, 5.0], OK, ALARM, id="m-of-n"
        ),
        pytest.param(
            {"comparison_operator": "LessThanThreshold", "threshold": 2}, [1.0], OK, ALARM, id="less-than"
        ),
    ],
)
def test_next_state_follows_cloudwatch_rules(
    overrides: dict[str, Any], datapoints: list[float | None], current: str, expected: str
) -> None:
    state, reason = next_state(_alarm(**overrides), datapoints, current)
    assert state == expected
    assert reason


def test_a_captured_alarm_is_read_with_cloudwatchs_defaults_for_what_it_leaves_unset() -> None:
    # GIVEN a captured alarm that sets only what CloudWatch requires, numbers as the engine passes them
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:alerts"
    resource = captured(
        METRIC_ALARM.token,
        "orders-errors",
        namespace="AWS/Lambda",
        metricName="Errors",
        comparisonOperator="GreaterThanThreshold",
        evaluationPeriods=3.0,
        alarmActions=[topic],
    )
    # WHEN the evaluator's alarm is read from it
    alarm = LocalAlarm.from_resource(resource)
    # THEN what it sets is kept and the rest is CloudWatch's default
    assert (alarm.name, alarm.arn) == ("orders-errors", resource.get("arn"))
    assert (alarm.evaluation_periods, alarm.alarm_actions, alarm.ok_actions) == (3, (topic,), ())
    assert (alarm.statistic, alarm.period_seconds, alarm.threshold) == ("Average", 60, 0)
    assert (alarm.treat_missing_data, alarm.actions_enabled, alarm.dimensions) == ("missing", True, {})


def test_unsupported_comparison_is_rejected() -> None:
    with pytest.raises(UnsupportedAlarmError, match="not emulated"):
        _alarm(comparison_operator="LessThanLowerOrGreaterThanUpperThreshold")


def test_notification_has_cloudwatch_shape() -> None:
    from datetime import UTC, datetime

    subject, message = notification(
        _alarm(),
        old_state=OK,
        new_state=ALARM,
        reason="Threshold Crossed",
        account_id=ACCOUNT_ID,
        region=REGION,
        at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    payload = json.loads(message)
    assert subject == f'ALARM: "dlq-depth" in {REGION}'
    assert payload["AlarmName"] == "dlq-depth"
    assert payload["NewStateValue"] == ALARM
    assert payload["OldStateValue"] == OK
    assert payload["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert payload["Trigger"]["Dimensions"] == [{"value": "work-dlq", "name": "QueueName"}]
    assert payload["StateChangeTime"] == "2026-01-02T03:04:05.000+0000"


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [("Maximum", 3.0), ("Minimum", 1.0), ("Sum", 6.0), ("Average", 2.0), ("SampleCount", 3.0)],
)
def test_aggregate(statistic: str, expected: float) -> None:
    assert aggregate([1.0, 2.0, 3.0], statistic) == expected
    assert aggregate([], statistic) is None


def test_recorded_datapoints_age_out_of_the_window() -> None:
    now = [100.0]
    metrics = LocalMetrics(clock=lambda: now[0])
    metrics.put("filepipe", "FilesFailed", {"pipeline": "p"}, 2)
    query = MetricQuery("filepipe", "FilesFailed", {"pipeline": "p"}, "Sum")
    assert metrics.datapoint(query, 5) == 2
    now[0] = 110.0
    assert metrics.datapoint(query, 5) is None


def test_dlq_alarm_fires_once_notifies_the_topic_and_recovers_after_purge(
    sqs_factory: Callable[[], Any], tmp_path: Path
) -> None:
    # GIVEN a DLQ, an alarm on its depth whose actions go to a topic, and the local subscriber
    sqs = sqs_factory()
    sns_factory: Callable[[], Any] = lambda: boto3.client("sns", region_name=REGION)  # noqa: E731
    topic_arn = sns_factory().create_topic(Name="alerts")["TopicArn"]
    dlq_url = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    log_path = tmp_path / "alerts.log"
    subscriber = AlertSubscriber([topic_arn], sqs_factory, sns_factory, log_path=log_path)
    subscriber.start()
    alarm = _alarm(alarm_actions=(topic_arn,), ok_actions=(topic_arn,))
    sns = sns_factory()
    evaluator = AlarmEvaluator(
        [alarm],
        LocalMetrics(embedded_queue_gauges(ACCOUNT_ID, REGION)),
        lambda arn, subject, message: sns.publish(TopicArn=arn, Subject=subject, Message=message),
        account_id=ACCOUNT_ID,
        region=REGION,
    )
    try:
        # WHEN the DLQ is empty, then gets two messages, then is purged (evaluating period by period)
        evaluator.evaluate_once()
        sqs.send_message(QueueUrl=dlq_url, MessageBody="poison-1")
        sqs.send_message(QueueUrl=dlq_url, MessageBody="poison-2")
        evaluator.evaluate_once()
        evaluator.evaluate_once()
        sqs.purge_queue(QueueUrl=dlq_url)
        evaluator.evaluate_once()
        # THEN the alarm went OK -> ALARM once -> OK, and the subscriber received each notification
        assert [(c.old_state, c.new_state) for c in evaluator.history] == [
            (INSUFFICIENT_DATA, OK),
            (OK, ALARM),
            (ALARM, OK),
        ]
        assert wait_until(lambda: len(subscriber.received()) == 3)
    finally:
        subscriber.stop()
    states = [alert.state for alert in subscriber.received()]
    assert sorted(s or "" for s in states) == [ALARM, OK, OK]
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [entry["alarmName"] for entry in logged] == ["dlq-depth"] * 3


def test_parse_sns_envelope_ignores_other_messages() -> None:
    assert parse_sns_envelope("not json") is None
    assert parse_sns_envelope(json.dumps({"Type": "SubscriptionConfirmation"})) is None
    alert = parse_sns_envelope(json.dumps({"Type": "Notification", "TopicArn": "t", "Message": "hello"}))
    assert alert is not None
    assert alert.alarm is None
    assert alert.message == "hello"
