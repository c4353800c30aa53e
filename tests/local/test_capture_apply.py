"""Capture and apply without an endpoint: the mocks' identifiers, config, the per-type table, emulation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from filepipe.local.apply import (
    BUCKET,
    BUCKET_NOTIFICATION,
    BUCKET_POLICY,
    EVENT_RULE,
    EVENT_SOURCE_MAPPING,
    FUNCTION,
    METRIC_ALARM,
    PIPELINE,
    QUEUE,
    QUEUE_POLICY,
    ROLE,
    TABLE,
    TOPIC_POLICY,
    ApplyError,
    Handling,
    ResourceType,
    apply_stack,
    emulate,
    existing_buckets,
    local_bucket_policy,
)
from filepipe.local.capture import CapturedStack, CaptureError, capture_stack, load_stack_config
from filepipe.local.emf import EmfCapture, record_emf
from filepipe.local.metrics import LocalMetrics, MetricQuery
from filepipe.local.runtime import LocalTuning
from tests.local.conftest import ADDRESS, PROJECT_DIR, captured
from tests.policy.conftest import write_component_program


@pytest.mark.parametrize(
    ("type_token", "logical", "key", "expected"),
    [
        pytest.param(BUCKET.token, "Data_Bucket!", "bucket", "data-bucket", id="bucket-lowercase"),
        pytest.param(QUEUE.token, "orders.dlq", "name", "orders-dlq", id="queue-no-dots"),
        pytest.param(ROLE.token, "r" * 70, "name", "r" * 64, id="role-64"),
        pytest.param(TABLE.token, "state.v1", "name", "state.v1", id="table-dots-ok"),
    ],
)
def test_names_derived_from_logical_names_are_valid_for_the_service(
    type_token: str, logical: str, key: str, expected: str
) -> None:
    assert captured(type_token, logical).get(key) == expected


def test_queue_outputs_match_what_the_endpoint_serves() -> None:
    queue = captured(QUEUE.token, "p-dlq")
    assert queue.resource_id == "http://127.0.0.1:4566/123456789012/p-dlq"
    assert queue.get("arn") == "arn:aws:sqs:eu-west-1:123456789012:p-dlq"
    named = captured(QUEUE.token, "p-queue", name="explicit", fifoQueue=True)
    assert named.get("name") == "explicit.fifo"


def test_an_applied_type_without_an_applier_is_refused_when_the_table_is_built() -> None:
    with pytest.raises(ValueError, match="aws:x/y:Z: an applier is needed"):
        ResourceType("aws:x/y:Z", Handling.APPLIED, "CreateZ")
    with pytest.raises(ValueError, match="aws:x/y:Z: an applier is needed"):
        ResourceType("aws:x/y:Z", Handling.EMULATED, "in-process", apply=lambda resource, ctx: None)


def test_an_unknown_type_is_an_error_before_anything_is_created() -> None:
    # GIVEN a stack with a type the table does not know, and no endpoint at the address
    stack = CapturedStack(
        "p", "s", [captured(BUCKET.token, "data"), captured("aws:ec2/instance:Instance", "vm")]
    )
    # WHEN it is applied, THEN the type is named before any call to the (absent) endpoint
    with pytest.raises(ApplyError, match="aws:ec2/instance:Instance"):
        apply_stack(stack, ADDRESS)
    with pytest.raises(ApplyError, match="aws:ec2/instance:Instance"):
        emulate(stack)


def test_the_tls_only_deny_is_dropped_for_the_plain_http_endpoint() -> None:
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    allow = {"Effect": "Allow", "Principal": {"AWS": "x"}, "Action": "s3:GetObject", "Resource": "*"}
    assert local_bucket_policy(json.dumps({"Version": "2012-10-17", "Statement": [deny]})) is None
    kept = local_bucket_policy(json.dumps({"Version": "2012-10-17", "Statement": [deny, allow]}))
    assert kept is not None
    assert json.loads(kept)["Statement"] == [allow]


def test_buckets_used_but_not_created_are_stood_in_for() -> None:
    created = captured(BUCKET.token, "data-bucket")
    stack = CapturedStack(
        "p",
        "s",
        [
            created,
            captured(BUCKET_NOTIFICATION.token, "a", bucket=created.get("bucket")),
            captured(BUCKET_NOTIFICATION.token, "b", bucket="landing"),
            captured(BUCKET_POLICY.token, "c", bucket="landing", policy="{}"),
            captured(QUEUE_POLICY.token, "d", queueUrl="u", policy="{}"),
        ],
    )
    assert existing_buckets(stack) == ["landing"]


def test_stack_config_is_read_as_pulumi_hands_it_to_programs() -> None:
    project, program, config = load_stack_config(PROJECT_DIR, "dev")
    assert project == "filepipe"
    assert program == PROJECT_DIR / "__main__.py"
    assert config["aws:region"] == "eu-west-1"
    assert isinstance(json.loads(config["filepipe:pipelines"]), list)
    assert config["filepipe:bundleDependencies"] == "false"


def test_an_unknown_stack_names_the_available_ones() -> None:
    with pytest.raises(CaptureError, match="dev"):
        load_stack_config(PROJECT_DIR, "nope")


def test_capture_runs_the_real_stack_program_under_mocks() -> None:
    # WHEN the dev stack program runs under the local mocks
    stack = capture_stack(PROJECT_DIR, "dev", ADDRESS)
    # THEN it registered the pipelines' resources with local identifiers, in a creation order
    types = [resource.type for resource in stack.resources]
    # (a handler and a circuit breaker per pipeline)
    assert types.count(FUNCTION.token) == 2 * len(stack.outputs) == 4
    order = {resource.name: index for index, resource in enumerate(stack.resources)}
    notification = stack.of_type(BUCKET_NOTIFICATION.token)[0]
    for policy in stack.of_type(QUEUE_POLICY.token):
        assert order[policy.name] < order[notification.name]
    function = stack.of_type(FUNCTION.token)[0]
    variables = function.inputs["environment"]["variables"]
    dlq_urls = {queue.get("url") for queue in stack.of_type(QUEUE.token)}
    assert variables["FILEPIPE_DLQ_URL"] in dlq_urls
    assert stack.outputs["transactions"]["queueUrl"].startswith(ADDRESS.url)
    # AND each registration carries what the engine knows of it: its parent and what it depends on
    urns = {resource.urn: resource for resource in stack.resources}
    assert urns[function.parent or ""].type == PIPELINE.token
    assert {urns[urn].type for urn in notification.dependencies} >= {QUEUE_POLICY.token}
    assert all(resource.parent in {*urns, stack.urn} for resource in stack.resources)


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param('encryption="kms", notification_mode="eventbridge"', id="kms-eventbridge"),
        pytest.param('bucket_name="landing", take_over_bucket_notification=True', id="existing-bucket"),
        pytest.param('encryption="kms", notification_mode="sns"', id="kms-sns"),
    ],
)
def test_every_resource_of_the_component_is_run_locally(tmp_path: Path, arguments: str) -> None:
    # GIVEN the component with its optional resources, captured from a program
    stack = capture_stack(write_component_program(tmp_path / "project", arguments), "test", ADDRESS)
    # WHEN its emulation is read, THEN every type is known and the pipeline runs in-process (a routing
    # topic routes files: only the alert topic is listened to)
    emulation = emulate(stack)
    (function,) = emulation.functions.values()
    (mapping,) = emulation.mappings
    assert mapping.function_name == function.name == stack.outputs["orders"]["functionName"]
    assert mapping.queue_url == stack.outputs["orders"]["queueUrl"]
    assert sorted(alarm.name for alarm in emulation.alarms) == sorted(stack.outputs["orders"]["alarmNames"])
    assert emulation.alert_topics == [stack.outputs["orders"]["topicArn"]]
    if "eventbridge" in arguments:
        assert stack.of_type(EVENT_RULE.token)
    elif "sns" in arguments:
        assert len(stack.of_type(TOPIC_POLICY.token)) == 1
    else:
        assert existing_buckets(stack) == ["landing"]


def test_emf_lines_become_local_metrics_and_other_lines_pass_through(tmp_path: Path) -> None:
    metrics = LocalMetrics()
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 0,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "filepipe",
                        "Dimensions": [["pipeline"]],
                        "Metrics": [{"Name": "FilesFailed"}],
                    }
                ],
            },
            "pipeline": "p",
            "FilesFailed": [1.0, 2.0],
        }
    )
    assert record_emf(line, metrics)
    assert not record_emf('{"level": "INFO"}', metrics)
    query = MetricQuery("filepipe", "FilesFailed", {"pipeline": "p"}, "Sum")
    assert metrics.datapoint(query, 60) == 3.0
    with (tmp_path / "out.txt").open("w") as target:
        capture = EmfCapture(target, metrics)
        capture.write("hello ")
        capture.write("world\n" + line + "\n")
    assert (tmp_path / "out.txt").read_text() == "hello world\n"
    assert metrics.datapoint(query, 60) == 6.0


def _mapped_stack(
    *, visibility: int, timeout: float, reference: str = "name", **mapping: Any
) -> CapturedStack:
    queue = captured(QUEUE.token, "work", visibilityTimeoutSeconds=visibility)
    dlq = captured(QUEUE.token, "work-dlq")
    function = captured(FUNCTION.token, "fn", timeout=timeout)
    esm = captured(
        EVENT_SOURCE_MAPPING.token,
        "work-esm",
        eventSourceArn=queue.get("arn"),
        functionName=function.get(reference),
        **mapping,
    )
    return CapturedStack("p", "s", [queue, dlq, function, esm])


@pytest.mark.parametrize("reference", ["name", "arn", "qualifiedArn"])
def test_a_mapping_runs_the_function_it_names_by_name_or_arn(reference: str) -> None:
    emulation = emulate(_mapped_stack(visibility=60, timeout=30, reference=reference))
    (mapping,) = emulation.mappings
    assert mapping.function_name == "fn" and "fn" in emulation.functions
    assert (mapping.queue_url, mapping.visibility_timeout_seconds) == (f"{ADDRESS.url}/123456789012/work", 60)


def test_a_mapping_on_a_foreign_source_is_rejected() -> None:
    mapping = captured(
        EVENT_SOURCE_MAPPING.token,
        "m",
        eventSourceArn="arn:aws:kinesis:eu-west-1:123456789012:stream/s",
        functionName="f",
    )
    with pytest.raises(ApplyError, match="only SQS"):
        emulate(CapturedStack("p", "s", [mapping]))


def test_a_mapping_to_a_function_outside_the_stack_is_rejected() -> None:
    stack = _mapped_stack(visibility=60, timeout=30)
    stack.resources.remove(stack.of_type(FUNCTION.token)[0])
    with pytest.raises(ApplyError, match="work-esm: function 'fn' is not in this stack"):
        emulate(stack)


def test_two_mappings_on_one_function_are_an_error_naming_both() -> None:
    stack = _mapped_stack(visibility=60, timeout=30)
    first = stack.of_type(EVENT_SOURCE_MAPPING.token)[0]
    second = captured(EVENT_SOURCE_MAPPING.token, "second-esm", **first.inputs)
    stack.resources.append(second)
    with pytest.raises(ApplyError, match="second-esm: function fn already has a mapping \\(work-esm\\)"):
        emulate(stack)


def test_a_function_timeout_above_the_visibility_timeout_is_rejected_naming_the_mapping() -> None:
    stack = _mapped_stack(visibility=30, timeout=60)
    with pytest.raises(ApplyError, match="work-esm: .*visibility timeout \\(30 s\\) is below"):
        emulate(stack)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        pytest.param({"batchSize": 100}, "without a batching window", id="batch-100-no-window"),
        pytest.param(
            {"scalingConfig": {"maximumConcurrency": 1}}, "maximumConcurrency 1", id="concurrency-1"
        ),
    ],
)
def test_mapping_settings_lambda_refuses_are_rejected(mapping: dict[str, Any], message: str) -> None:
    stack = _mapped_stack(visibility=60, timeout=30, **mapping)
    with pytest.raises(ApplyError, match=f"work-esm: .*{message}"):
        emulate(stack)


def test_an_alarm_the_evaluator_cannot_run_is_an_error_naming_it() -> None:
    alarm = captured(
        METRIC_ALARM.token, "orders-dlq-depth", comparisonOperator="GreaterThanThreshold", metricQueries=[{}]
    )
    with pytest.raises(ApplyError, match="orders-dlq-depth: alarms with metricQueries are not emulated"):
        emulate(CapturedStack("p", "s", [alarm]))


@pytest.mark.parametrize(
    "tuning",
    [
        pytest.param(LocalTuning.fast(), id="fast"),
        pytest.param(LocalTuning.fast(function_timeout_seconds=10.0), id="fast-long-function"),
        pytest.param(LocalTuning(visibility_timeout_seconds=2), id="visibility-only"),
    ],
)
def test_tuning_never_leaves_the_visibility_timeout_below_the_function_timeout(tuning: LocalTuning) -> None:
    stack = tuning.applied_to(_mapped_stack(visibility=360, timeout=300))
    (mapping,) = emulate(stack).mappings  # accepted
    function = stack.of_type(FUNCTION.token)[0]
    assert mapping.visibility_timeout_seconds is not None
    assert mapping.visibility_timeout_seconds >= float(function.inputs["timeout"])
    if tuning.function_timeout_seconds is not None:
        assert function.inputs["timeout"] == tuning.function_timeout_seconds
        assert mapping.visibility_timeout_seconds == max(
            tuning.visibility_timeout_seconds or 0, math.ceil(tuning.function_timeout_seconds)
        )
    dlq = next(q for q in stack.of_type(QUEUE.token) if q.name == "work-dlq")
    assert "visibilityTimeoutSeconds" not in dlq.inputs
