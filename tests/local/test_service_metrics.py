"""The SQS gauges AWS publishes to CloudWatch by itself are published to the local endpoint too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3

from filepipe.local.service_metrics import QueueMetricsPublisher
from tests.conftest import REGION


def test_queue_gauges_are_readable_from_cloudwatch_as_sqs_publishes_them(aws: None) -> None:
    gauges = {
        "ApproximateNumberOfMessagesVisible": 4.0,
        "ApproximateNumberOfMessagesNotVisible": 1.0,
        "ApproximateNumberOfMessagesDelayed": 0.0,
        "ApproximateAgeOfOldestMessage": 42.0,
    }
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    publisher = QueueMetricsPublisher(
        ["work"],
        lambda queue, metric: gauges[metric] if queue == "work" else None,
        lambda: cloudwatch,
        period_seconds=60,
    )

    publisher.publish_once(cloudwatch)

    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": "work"}],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [point["Maximum"] for point in points] == [42.0]


def test_a_queue_that_is_gone_publishes_nothing(aws: None) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    publisher = QueueMetricsPublisher(
        ["gone"], lambda queue, metric: None, lambda: cloudwatch, period_seconds=60
    )

    publisher.publish_once(cloudwatch)

    assert cloudwatch.list_metrics(Namespace="AWS/SQS")["Metrics"] == []
