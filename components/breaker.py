"""The optional circuit breaker of a pipeline: alarms on the handler's transient failures, a timer, and a
small function that switches the pipeline's own event source mapping (``handler/breaker.py``).

Built from AWS parts only:

- a state table (one item: state, timers, history), created before the handler so the handler's
  environment and role can name it (the handler reads it on a message's last delivery);
- two alarms on the handler's ``FilesRetried`` metric (its exact EMF dimensions): *trip* opens a closed
  breaker, *probe* (a lower threshold, one period) opens a half-open one again. Transient failures only:
  Lambda ``Errors`` stays near zero under partial batch responses, and poison files are the file's fault;
- a one-minute EventBridge schedule for the timers (cool-down, probe window) and reconciliation;
- the breaker function, invoked by the alarms (Lambda alarm actions) and the schedule, whose role may
  only read and update this pipeline's mapping, publish to its topic, keep its own item and read its
  own alarms.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import pulumi
import pulumi_aws as aws

from . import defaults
from .handler.settings import METRICS_NAMESPACE, BreakerAttribute, EnvVar, Metric
from .lambda_code import BREAKER_ENTRY_POINT, code_archive
from .monitoring import handler_dimensions
from .naming import scoped
from .policies import breaker_role_policy, lambda_assume_role_policy
from .resolved import BreakerSettings

ALARMS_PRINCIPAL = "lambda.alarms.cloudwatch.amazonaws.com"
"""The service principal CloudWatch invokes a Lambda alarm action as."""


class CircuitBreaker(NamedTuple):
    """The breaker's resources the component keeps."""

    table: aws.dynamodb.Table
    function: aws.lambda_.Function
    trip_alarm: aws.cloudwatch.MetricAlarm
    probe_alarm: aws.cloudwatch.MetricAlarm
    timer: aws.cloudwatch.EventRule


def auto_names(name: str) -> list[tuple[str, str]]:
    """``(kind, logical name)`` of the breaker's auto-named children (suffixes no longer than the
    handler's ``-function``, so a pipeline name that fits the handler fits these)."""
    return [
        ("lambda function", f"{name}-breaker"),
        ("IAM role", f"{name}-brk-role"),
        ("EventBridge rule", f"{name}-brk-tick"),
        ("DynamoDB table", f"{name}-breaker-state"),
    ]


def breaker_table(
    name: str,
    kms_key_arn: pulumi.Output[str] | None,
    tags: dict[str, pulumi.Input[str]],
    opts: pulumi.ResourceOptions,
) -> aws.dynamodb.Table:
    """The breaker's state: a single item, so on-demand costs next to nothing."""
    return aws.dynamodb.Table(
        f"{name}-breaker-state",
        billing_mode="PAY_PER_REQUEST",
        hash_key=BreakerAttribute.PK.value,
        attributes=[{"name": BreakerAttribute.PK.value, "type": "S"}],
        point_in_time_recovery={"enabled": True},
        server_side_encryption=(
            {"enabled": True, "kms_key_arn": kms_key_arn} if kms_key_arn is not None else None
        ),
        tags=tags,
        opts=opts,
    )


def handler_environment(breaker: BreakerSettings, table: aws.dynamodb.Table) -> dict[str, pulumi.Input[str]]:
    """What the handler needs to re-send (instead of park) while the breaker is not closed."""
    return {EnvVar.BREAKER_TABLE: table.name, EnvVar.MAX_REQUEUES: str(breaker.max_requeues)}


def create_circuit_breaker(
    name: str,
    *,
    pipeline: str,
    service: str,
    breaker: BreakerSettings,
    table: aws.dynamodb.Table,
    mapping: aws.lambda_.EventSourceMapping,
    closed_concurrency: int | None,
    topic_arn: pulumi.Output[str],
    kms_key_arn: pulumi.Output[str] | None,
    log_retention_days: int,
    tags: dict[str, pulumi.Input[str]],
    partition: pulumi.Output[str],
    region: pulumi.Output[str],
    account_id: pulumi.Output[str],
    parent: pulumi.Resource,
) -> CircuitBreaker:
    opts = pulumi.ResourceOptions(parent=parent)
    # Named explicitly: the function's environment names its alarms and the alarms invoke the function.
    trip_name = scoped("CloudWatch alarm", f"{name}-breaker-trip")
    probe_name = scoped("CloudWatch alarm", f"{name}-breaker-probe")
    mapping_arn = pulumi.Output.all(partition, region, account_id, mapping.uuid).apply(
        lambda values: "arn:{}:lambda:{}:{}:event-source-mapping:{}".format(*values)
    )

    # Logs first, so the function never creates an unmanaged group without retention.
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-breaker-logs",
        name=scoped("log group", name, prefix="/aws/lambda/", suffix="-breaker"),
        retention_in_days=log_retention_days,
        tags=tags,
        opts=opts,
    )
    alarm_arns = pulumi.Output.all(partition, region, account_id).apply(
        lambda values: [
            "arn:{}:cloudwatch:{}:{}:alarm:{}".format(*values, alarm) for alarm in (trip_name, probe_name)
        ]
    )
    role = aws.iam.Role(
        f"{name}-brk-role",
        assume_role_policy=json.dumps(lambda_assume_role_policy()),
        tags=tags,
        opts=opts,
    )
    role_policy = aws.iam.RolePolicy(
        f"{name}-brk-role-policy",
        role=role.id,
        policy=pulumi.Output.all(
            mapping_arn=mapping_arn,
            topic_arn=topic_arn,
            table_arn=table.arn,
            alarm_arns=alarm_arns,
            log_group_arn=log_group.arn,
            kms_key_arn=kms_key_arn,
        ).apply(lambda values: json.dumps(breaker_role_policy(**values))),
        opts=opts,
    )
    environment: dict[str, pulumi.Input[str]] = {
        EnvVar.PIPELINE_NAME: pipeline,
        EnvVar.BREAKER_TABLE: table.name,
        EnvVar.MAPPING_UUID: mapping.uuid,
        EnvVar.TOPIC_ARN: topic_arn,
        EnvVar.CLOSED_CONCURRENCY: "" if closed_concurrency is None else str(closed_concurrency),
        EnvVar.PROBE_CONCURRENCY: str(breaker.probe_concurrency),
        EnvVar.COOL_DOWN_SECONDS: str(breaker.cool_down_seconds),
        EnvVar.MAX_COOL_DOWN_SECONDS: str(breaker.max_cool_down_seconds),
        EnvVar.PROBE_WINDOW_SECONDS: str(breaker.probe_window_seconds),
        EnvVar.TRIP_ALARM: trip_name,
        EnvVar.PROBE_ALARM: probe_name,
    }
    function = aws.lambda_.Function(
        f"{name}-breaker",
        description=f"filepipe {pipeline}: circuit breaker (pauses the event source mapping)",
        role=role.arn,
        runtime=defaults.PYTHON_RUNTIME,
        architectures=[defaults.ARCHITECTURE],
        handler=BREAKER_ENTRY_POINT,
        # The handler package only: the breaker needs boto3 (in the runtime) and the standard library.
        code=code_archive(),
        memory_size=defaults.BREAKER_MEMORY_MB,
        timeout=defaults.BREAKER_TIMEOUT_SECONDS,
        environment={"variables": {str(key): value for key, value in environment.items()}},
        logging_config={"log_format": "JSON", "log_group": log_group.name},
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group, role_policy]),
    )

    dimensions = handler_dimensions(pipeline, service)

    def alarm(role_name: str, alarm_name: str, description: str, threshold: int, periods: int) -> Any:
        alarm_resource = aws.cloudwatch.MetricAlarm(
            f"{name}-breaker-{role_name}",
            name=alarm_name,
            alarm_description=f"[filepipe {name}] {description}",
            namespace=METRICS_NAMESPACE,
            metric_name=Metric.FILES_RETRIED.value,
            dimensions=dimensions,
            statistic="Sum",
            period=defaults.ALARM_PERIOD_SECONDS,
            evaluation_periods=periods,
            threshold=threshold,
            comparison_operator="GreaterThanOrEqualToThreshold",
            # No invocations (an open breaker, an idle pipeline) is no failure.
            treat_missing_data="notBreaching",
            alarm_actions=[function.arn],
            tags=tags,
            opts=opts,
        )
        aws.lambda_.Permission(
            f"{name}-breaker-{role_name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal=ALARMS_PRINCIPAL,
            source_arn=alarm_resource.arn,
            source_account=account_id,
            opts=opts,
        )
        return alarm_resource

    trip_alarm = alarm(
        "trip",
        trip_name,
        "Files keep failing transiently (a downstream outage): the circuit breaker opens.",
        breaker.failure_threshold,
        breaker.evaluation_periods,
    )
    probe_alarm = alarm(
        "probe",
        probe_name,
        "Files still fail transiently while the circuit breaker probes: it opens again.",
        breaker.probe_failure_threshold,
        1,
    )

    timer = aws.cloudwatch.EventRule(
        f"{name}-brk-tick",
        description=f"filepipe {pipeline}: circuit breaker timers (cool-down, probe window)",
        schedule_expression=defaults.BREAKER_TICK_SCHEDULE,
        tags=tags,
        opts=opts,
    )
    invoke_from_timer = aws.lambda_.Permission(
        f"{name}-brk-tick-invoke",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="events.amazonaws.com",
        source_arn=timer.arn,
        opts=opts,
    )
    aws.cloudwatch.EventTarget(
        f"{name}-brk-tick-target",
        rule=timer.name,
        arn=function.arn,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[invoke_from_timer]),
    )
    return CircuitBreaker(table, function, trip_alarm, probe_alarm, timer)
