"""Alarms and the dashboard of one pipeline.

The alarm definitions are data (:class:`AlarmSpec`) so the tests and the local alarm emulator read the
same thresholds the component deploys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from . import defaults
from .handler.settings import METRICS_NAMESPACE, PIPELINE_DIMENSION, Metric
from .naming import scoped


@dataclass(frozen=True)
class AlarmSpec:
    role: str
    """Suffix of the alarm's resource name: ``<pipeline>-<role>``."""
    description: str
    namespace: str
    metric_name: str
    dimension: str
    """``queue``, ``dlq`` or ``function``: which resource's name goes into the alarm's dimensions."""
    statistic: str
    threshold: float
    period: int = defaults.ALARM_PERIOD_SECONDS
    evaluation_periods: int = 1
    comparison: str = "GreaterThanOrEqualToThreshold"
    treat_missing_data: str = "notBreaching"


def alarm_specs(queue_age_alarm_seconds: int) -> list[AlarmSpec]:
    return [
        AlarmSpec(
            role="dlq-depth",
            description="Files were parked in the dead-letter queue: inspect and replay them.",
            namespace="AWS/SQS",
            # Visible messages, not NumberOfMessagesSent: redrive from the source queue is not "sent".
            metric_name="ApproximateNumberOfMessagesVisible",
            dimension="dlq",
            statistic="Maximum",
            threshold=1,
        ),
        AlarmSpec(
            role="queue-age",
            description="The oldest waiting file is too old: processing is stuck or too slow.",
            namespace="AWS/SQS",
            metric_name="ApproximateAgeOfOldestMessage",
            dimension="queue",
            statistic="Maximum",
            threshold=queue_age_alarm_seconds,
        ),
        AlarmSpec(
            role="function-errors",
            description="The handler failed invocations (crashes, timeouts).",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimension="function",
            statistic="Sum",
            threshold=1,
        ),
        AlarmSpec(
            role="function-throttles",
            description="The handler was throttled: raise reserved/maximum concurrency.",
            namespace="AWS/Lambda",
            metric_name="Throttles",
            dimension="function",
            statistic="Sum",
            threshold=1,
        ),
    ]


_DIMENSION_KEYS = {"queue": "QueueName", "dlq": "QueueName", "function": "FunctionName"}


def create_alarms(
    name: str,
    specs: list[AlarmSpec],
    dimension_values: dict[str, pulumi.Output[str]],
    topic_arn: pulumi.Input[str],
    tags: dict[str, pulumi.Input[str]],
    parent: pulumi.Resource,
) -> list[aws.cloudwatch.MetricAlarm]:
    return [
        aws.cloudwatch.MetricAlarm(
            f"{name}-{spec.role}",
            alarm_description=f"[filepipe {name}] {spec.description}",
            namespace=spec.namespace,
            metric_name=spec.metric_name,
            dimensions={_DIMENSION_KEYS[spec.dimension]: dimension_values[spec.dimension]},
            statistic=spec.statistic,
            period=spec.period,
            evaluation_periods=spec.evaluation_periods,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            treat_missing_data=spec.treat_missing_data,
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for spec in specs
    ]


def handler_dimensions(pipeline: str, service: str) -> dict[str, str]:
    """The exact dimension set of the handler's EMF metrics.

    CloudWatch matches a metric only on its exact set of dimensions: a query without ``service`` finds
    nothing, since Powertools adds it to every metric of a ``Metrics(service=...)``.
    """
    return {PIPELINE_DIMENSION: pipeline, "service": service}


def dashboard_body(
    pipeline: str, service: str, region: str, queue: str, dlq: str, function: str
) -> dict[str, Any]:
    """CloudWatch dashboard: queue health, function health and the handler's own metrics."""

    def widget(title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Sum") -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": 60,
                "view": "timeSeries",
                "metrics": metrics,
            },
        }

    dimensions = [part for item in handler_dimensions(pipeline, service).items() for part in item]

    def handler_metric(metric: Metric) -> list[str]:
        return [METRICS_NAMESPACE, metric.value, *dimensions]

    return {
        "widgets": [
            widget(
                "Queue: waiting and in flight",
                [
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue],
                    ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", queue],
                ],
                0,
                0,
                stat="Maximum",
            ),
            widget(
                "Age of oldest waiting file (s) and dead-letter queue depth",
                [
                    ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue],
                    ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq],
                ],
                12,
                0,
                stat="Maximum",
            ),
            widget(
                "Function: invocations, errors, throttles",
                [
                    ["AWS/Lambda", "Invocations", "FunctionName", function],
                    ["AWS/Lambda", "Errors", "FunctionName", function],
                    ["AWS/Lambda", "Throttles", "FunctionName", function],
                ],
                0,
                6,
            ),
            widget(
                "Files and records",
                [
                    handler_metric(metric)
                    for metric in (
                        Metric.FILES_PROCESSED,
                        Metric.FILES_FAILED,
                        Metric.FILES_RETRIED,
                        Metric.RECORDS_PROCESSED,
                        Metric.RECORDS_REJECTED,
                    )
                ],
                12,
                6,
            ),
            widget(
                "End-to-end latency (ms, p90)",
                [handler_metric(Metric.END_TO_END_LATENCY_MS)],
                0,
                12,
                stat="p90",
            ),
        ]
    }


def create_dashboard(
    name: str,
    pipeline: str,
    service: str,
    region: pulumi.Input[str],
    queue: pulumi.Output[str],
    dlq: pulumi.Output[str],
    function: pulumi.Output[str],
    parent: pulumi.Resource,
) -> aws.cloudwatch.Dashboard:
    body = pulumi.Output.all(region, queue, dlq, function).apply(
        lambda values: json.dumps(dashboard_body(pipeline, service, *values))
    )
    return aws.cloudwatch.Dashboard(
        f"{name}-dashboard",
        # Dashboard names are account-wide: project and stack keep dev and prod (of any project) apart.
        dashboard_name=scoped("CloudWatch dashboard", name),
        dashboard_body=body,
        opts=pulumi.ResourceOptions(parent=parent),
    )
