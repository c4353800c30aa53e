"""Capture and apply without an endpoint: names, config, the per-type table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from filepipe.handler.settings import EnvVar
from filepipe.local.apply import (
    RESOURCE_TYPES,
    ApplyError,
    Handling,
    check_types,
    existing_buckets,
    local_bucket_policy,
    mapping_spec,
)
from filepipe.local.capture import (
    CapturedResource,
    CapturedStack,
    CaptureError,
    capture_stack,
    load_stack_config,
    mock_outputs,
    physical_name,
)
from filepipe.local.emf import EmfCapture, record_emf
from filepipe.local.endpoint import EndpointAddress
from filepipe.local.metrics import LocalMetrics, MetricQuery
from filepipe.local.runtime import LocalTuning, _tuned

PROJECT_DIR = Path(__file__).resolve().parents[2]
ADDRESS = EndpointAddress("http://127.0.0.1:4566")


def _resource(type_token: str, logical: str, **inputs: object) -> CapturedResource:
    resource_id, outputs = mock_outputs(type_token, logical, inputs, ADDRESS)
    return CapturedResource(type_token, logical, resource_id, inputs, outputs, custom=True)


@pytest.mark.parametrize(
    ("type_token", "logical", "expected"),
    [
        pytest.param("aws:s3/bucket:Bucket", "Data_Bucket!", "data-bucket", id="bucket-lowercase"),
        pytest.param("aws:sqs/queue:Queue", "orders.dlq", "orders-dlq", id="queue-no-dots"),
        pytest.param("aws:iam/role:Role", "r" * 70, "r" * 64, id="role-64"),
        pytest.param("aws:dynamodb/table:Table", "state.v1", "state.v1", id="table-dots-ok"),
    ],
)
def test_physical_names_are_valid_for_the_service(type_token: str, logical: str, expected: str) -> None:
    assert physical_name(type_token, logical) == expected


def test_queue_outputs_match_what_the_endpoint_serves() -> None:
    queue = _resource("aws:sqs/queue:Queue", "p-dlq")
    assert queue.resource_id == "http://127.0.0.1:4566/123456789012/p-dlq"
    assert queue.get("arn") == "arn:aws:sqs:eu-west-1:123456789012:p-dlq"
    named = _resource("aws:sqs/queue:Queue", "p-queue", name="explicit", fifoQueue=True)
    assert named.get("name") == "explicit.fifo"


def test_every_emitted_type_has_a_decision_and_appliers_where_applied() -> None:
    for token, rule in RESOURCE_TYPES.items():
        assert rule.note, token
        assert (rule.apply is not None) == (
            rule.handling in {Handling.APPLIED, Handling.APPLIED_AND_EMULATED}
        )


def test_an_unknown_type_is_an_error_before_anything_is_created() -> None:
    stack = CapturedStack("p", "s", [_resource("aws:ec2/instance:Instance", "vm")])
    with pytest.raises(ApplyError, match="aws:ec2/instance:Instance"):
        check_types(stack)


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
    created = _resource("aws:s3/bucket:Bucket", "data-bucket")
    stack = CapturedStack(
        "p",
        "s",
        [
            created,
            _resource("aws:s3/bucketNotification:BucketNotification", "a", bucket=created.get("bucket")),
            _resource("aws:s3/bucketNotification:BucketNotification", "b", bucket="landing"),
            _resource("aws:s3/bucketPolicy:BucketPolicy", "c", bucket="landing", policy="{}"),
        ],
    )
    assert existing_buckets(stack) == ["landing"]


def test_a_mapping_on_a_foreign_source_is_rejected() -> None:
    mapping = _resource(
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        "m",
        eventSourceArn="arn:aws:kinesis:eu-west-1:123456789012:stream/s",
        functionName="f",
    )
    with pytest.raises(ApplyError, match="only SQS"):
        mapping_spec(mapping, CapturedStack("p", "s", [mapping]))


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
    assert types.count("aws:lambda/function:Function") == len(stack.outputs) == 2
    order = {resource.name: index for index, resource in enumerate(stack.resources)}
    notification = next(
        r for r in stack.resources if r.type == "aws:s3/bucketNotification:BucketNotification"
    )
    for policy in stack.of_type("aws:sqs/queuePolicy:QueuePolicy"):
        assert order[policy.name] < order[notification.name]
    check_types(stack)
    function = stack.of_type("aws:lambda/function:Function")[0]
    variables = function.inputs["environment"]["variables"]
    dlq_urls = {queue.get("url") for queue in stack.of_type("aws:sqs/queue:Queue")}
    assert variables["FILEPIPE_DLQ_URL"] in dlq_urls
    assert stack.outputs["transactions"]["queueUrl"].startswith(ADDRESS.url)


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


def _mapped_stack(*, visibility: int, timeout: float, **mapping: object) -> CapturedStack:
    queue = _resource("aws:sqs/queue:Queue", "work", visibilityTimeoutSeconds=visibility)
    dlq = _resource("aws:sqs/queue:Queue", "work-dlq")
    function = _resource("aws:lambda/function:Function", "fn", timeout=timeout)
    esm = _resource(
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        "work-esm",
        eventSourceArn=queue.get("arn"),
        functionName=function.get("name"),
        **mapping,
    )
    return CapturedStack("p", "s", [queue, dlq, function, esm])


def _esm(stack: CapturedStack) -> CapturedResource:
    return stack.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")[0]


def test_a_function_timeout_above_the_visibility_timeout_is_rejected_naming_the_mapping() -> None:
    stack = _mapped_stack(visibility=30, timeout=60)
    with pytest.raises(ApplyError, match="work-esm: .*visibility timeout \\(30 s\\) is below"):
        mapping_spec(_esm(stack), stack)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        pytest.param({"batchSize": 100}, "without a batching window", id="batch-100-no-window"),
        pytest.param(
            {"scalingConfig": {"maximumConcurrency": 1}}, "maximumConcurrency 1", id="concurrency-1"
        ),
    ],
)
def test_mapping_settings_lambda_refuses_are_rejected(mapping: dict[str, object], message: str) -> None:
    stack = _mapped_stack(visibility=60, timeout=30, **mapping)
    with pytest.raises(ApplyError, match=f"work-esm: .*{message}"):
        mapping_spec(_esm(stack), stack)


@pytest.mark.parametrize(
    "tuning",
    [
        pytest.param(LocalTuning.fast(), id="fast"),
        pytest.param(LocalTuning.fast(function_timeout_seconds=10.0), id="fast-long-function"),
        pytest.param(LocalTuning(visibility_timeout_seconds=2), id="visibility-only"),
    ],
)
def test_tuning_never_leaves_the_visibility_timeout_below_the_function_timeout(tuning: LocalTuning) -> None:
    stack = _tuned(_mapped_stack(visibility=360, timeout=300), tuning)
    spec = mapping_spec(_esm(stack), stack)  # accepted
    function = stack.of_type("aws:lambda/function:Function")[0]
    assert spec.visibility_timeout_seconds is not None
    assert spec.visibility_timeout_seconds >= float(function.inputs["timeout"])
    if tuning.function_timeout_seconds is not None:
        assert function.inputs["timeout"] == tuning.function_timeout_seconds
        assert spec.visibility_timeout_seconds == max(
            tuning.visibility_timeout_seconds or 0, math.ceil(tuning.function_timeout_seconds)
        )
    dlq = next(q for q in stack.of_type("aws:sqs/queue:Queue") if q.name == "work-dlq")
    assert "visibilityTimeoutSeconds" not in dlq.inputs


def test_fast_tuning_function_timeout_fits_its_visibility_timeout() -> None:
    tuning = LocalTuning.fast()
    assert tuning.function_timeout_seconds is not None and tuning.visibility_timeout_seconds is not None
    assert tuning.function_timeout_seconds <= tuning.visibility_timeout_seconds


def test_fast_tuning_lease_outlives_the_function_timeout() -> None:
    # A live invocation must never lose its lease to a duplicate, however slow the machine.
    tuning = LocalTuning.fast()
    assert tuning.function_timeout_seconds is not None
    assert int(tuning.environment[EnvVar.LEASE_SECONDS]) > tuning.function_timeout_seconds
