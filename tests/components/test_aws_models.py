"""Everything validation accepts, AWS accepts: checked against the service models botocore ships.

A constraint restated by hand (a range, an enum, a name limit) can drift from AWS's; these tests read
AWS's own from the models (metadata, or the parameter documentation where the model has only prose).
"""

import re
from functools import cache
from typing import Any, get_args

import botocore.session
import pytest

from filepipe import Encryption, FileProcessingPipeline, NotificationMode, PipelineArgs, defaults
from filepipe.args import Architecture
from filepipe.naming import auto_name_problem
from filepipe.pipeline import auto_names
from filepipe.resolved import resolve_pipeline
from filepipe.validation import validate_pipeline
from tests.components.conftest import build, use_stack


@cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def _shape(service: str, shape: str) -> dict[str, Any]:
    return dict(_model(service).shape_for(shape).metadata)


def _member(service: str, operation: str, member: str) -> Any:
    return _model(service).operation_model(operation).input_shape.members[member]


def _documented_max_length(service: str, operation: str, member: str) -> int:
    text = _member(service, operation, member).documentation
    found = re.search(r"(?:up to |maximum length is |limited to |between 1 and )(\d+)", text)
    assert found, f"{service} {operation}.{member}: no length in its documentation"
    return int(found.group(1))


@pytest.mark.parametrize(
    ("bounds", "service", "shape"),
    [
        pytest.param(defaults.MEMORY_RANGE, "lambda", "MemorySize", id="memory"),
        pytest.param(defaults.TIMEOUT_RANGE, "lambda", "Timeout", id="timeout"),
        pytest.param(defaults.BATCH_SIZE_RANGE, "lambda", "BatchSize", id="batch-size"),
        pytest.param(defaults.BATCHING_WINDOW_RANGE, "lambda", "MaximumBatchingWindowInSeconds", id="batching-window"),
        pytest.param(defaults.MAXIMUM_CONCURRENCY_RANGE, "lambda", "MaximumConcurrency", id="maximum-concurrency"),
    ],
)  # fmt: skip
def test_accepted_ranges_lie_within_the_models(bounds, service, shape):
    metadata = _shape(service, shape)
    low, high = bounds
    assert metadata.get("min", low) <= low <= high <= metadata.get("max", high)


@pytest.mark.parametrize(
    ("accepted", "service", "shape"),
    [
        pytest.param(get_args(Architecture), "lambda", "Architecture", id="architectures"),
        pytest.param(defaults.SUPPORTED_RUNTIMES, "lambda", "Runtime", id="runtimes"),
        pytest.param({lam for lam, _ in defaults.LOG_LEVELS.values()}, "lambda", "ApplicationLogLevel", id="application-log-levels"),
        pytest.param({defaults.SYSTEM_LOG_LEVEL}, "lambda", "SystemLogLevel", id="system-log-level"),
        pytest.param(defaults.TRANSITION_STORAGE_CLASSES, "s3", "TransitionStorageClass", id="transition-storage-classes"),
    ],
)  # fmt: skip
def test_accepted_choices_are_in_the_models_enums(accepted, service, shape):
    assert set(accepted) <= set(_shape(service, shape)["enum"])


def test_log_retention_choices_are_exactly_the_documented_values():
    text = _member("logs", "PutRetentionPolicy", "retentionInDays").documentation
    documented = re.search(r"Possible values are: ([\d, and]+)\.", text).group(1)  # type: ignore[union-attr]
    assert tuple(int(v) for v in re.findall(r"\d+", documented)) == defaults.LOG_RETENTION_CHOICES


def _model_limits() -> dict[str, tuple[int, str | None]]:
    """Kind -> (maximum length, pattern) as AWS states it."""
    role = _shape("iam", "roleNameType")
    rule = _shape("events", "RuleName")
    table = _shape("dynamodb", "TableName")
    log_group = _shape("logs", "LogGroupName")
    alias = _shape("kms", "AliasNameType")
    alarm = _shape("cloudwatch", "AlarmName")
    layer = _shape("lambda", "LayerName")
    return {
        "lambda function": (_documented_max_length("lambda", "CreateFunction", "FunctionName"), r"[a-zA-Z0-9-_]+"),
        "IAM role": (role["max"], role["pattern"]),
        "EventBridge rule": (rule["max"], rule["pattern"]),
        "SQS queue": (_documented_max_length("sqs", "CreateQueue", "QueueName"), r"[A-Za-z0-9_-]+"),
        "SNS topic": (_documented_max_length("sns", "CreateTopic", "Name"), r"[A-Za-z0-9_-]+"),
        "DynamoDB table": (table["max"], table["pattern"]),
        "CloudWatch alarm": (alarm["max"], None),
        "CloudWatch dashboard": (_documented_max_length("cloudwatch", "PutDashboard", "DashboardName"), r"[A-Za-z0-9_-]+"),
        "lambda layer": (layer["max"], layer["pattern"]),
        "log group": (log_group["max"], log_group["pattern"]),
        "KMS alias": (alias["max"], alias["pattern"]),
        "S3 bucket": (63, r"[a-z0-9.-]+"),  # the S3 model states no bucket-name rule; the user guide: 3-63
    }  # fmt: skip


def test_the_name_limits_the_component_applies_are_aws_limits():
    limits = _model_limits()
    for kind, (max_length, allowed) in defaults.NAME_LIMITS.items():
        model_max, pattern = limits[kind]
        assert max_length <= model_max, kind
        if pattern is not None:
            # every character the component lets through must be one AWS accepts
            printable = "".join(chr(c) for c in range(0x20, 0x7F))
            let_through = re.sub(f"[^{allowed}]", "", printable)
            assert re.fullmatch(pattern, let_through), (kind, let_through)


def _names_under(mocks) -> list[tuple[str, str]]:
    """(kind, physical name) of every name the graph sends to AWS (auto-named ones with a suffix)."""
    explicit = {
        "aws:cloudwatch/dashboard:Dashboard": ("CloudWatch dashboard", "dashboardName"),
        "aws:lambda/layerVersion:LayerVersion": ("lambda layer", "layerName"),
        "aws:cloudwatch/logGroup:LogGroup": ("log group", "name"),
        "aws:kms/alias:Alias": ("KMS alias", "name"),
    }
    auto = {
        "aws:lambda/function:Function": "lambda function",
        "aws:iam/role:Role": "IAM role",
        "aws:cloudwatch/eventRule:EventRule": "EventBridge rule",
        "aws:sqs/queue:Queue": "SQS queue",
        "aws:sns/topic:Topic": "SNS topic",
        "aws:dynamodb/table:Table": "DynamoDB table",
        "aws:cloudwatch/metricAlarm:MetricAlarm": "CloudWatch alarm",
        "aws:s3/bucket:Bucket": "S3 bucket",
    }
    names = []
    for resource in mocks.resources:
        if resource.typ in explicit:
            kind, key = explicit[resource.typ]
            names.append((kind, resource.inputs[key]))
        elif resource.typ in auto:
            names.append((auto[resource.typ], resource.name + "-" + "a1b2c3d"))
    return names


def test_every_name_derived_from_extreme_inputs_is_one_aws_accepts(mocks):
    # GIVEN the longest project and stack names Pulumi allows, with dots, and a long pipeline name that still
    # leaves room for Pulumi's suffix in a 64-character function name
    use_stack(mocks, "p." + "r" * 98, "s." + "t" * 98)
    name = "n" * (64 - len("-function") - 8)

    # WHEN a pipeline with every optional resource is built
    build(
        lambda: FileProcessingPipeline(
            name,
            PipelineArgs(
                input_prefix="in/", encryption=Encryption.KMS, notification_mode=NotificationMode.EVENTBRIDGE
            ),
        )
    )

    # THEN every name fits the model's length and pattern
    limits = _model_limits()
    names = _names_under(mocks)
    assert {kind for kind, _ in names} == set(limits)
    for kind, physical in names:
        max_length, pattern = limits[kind]
        assert len(physical) <= max_length, (kind, physical)
        if pattern is not None:
            candidate = physical.lower() if kind == "S3 bucket" else physical
            assert re.fullmatch(pattern, candidate), (kind, physical)


def test_validation_and_the_name_check_agree_on_the_graph():
    # GIVEN arguments validation accepts
    args = resolve_pipeline(
        PipelineArgs(
            input_prefix="in/", encryption=Encryption.KMS, notification_mode=NotificationMode.EVENTBRIDGE
        ),
        "orders",
    )
    validate_pipeline("orders", args)

    # THEN the names the graph derives from a fitting resource name pass the check, and one character
    # more for the function is refused
    fitting = "n" * (64 - len("-function") - 8)
    assert all(auto_name_problem(kind, logical) is None for kind, logical in auto_names(fitting, args))
    assert any(auto_name_problem(kind, logical) for kind, logical in auto_names(fitting + "n", args))
