"""``filepipe doctor`` end to end: a healthy stack passes, and each breakage is named by its check.

The stack is shared by the module, so every test that breaks something restores it before it ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from filepipe import defaults
from filepipe.cli.ops.doctor import CHECKS
from filepipe.local.runtime import RunningStack
from tests.ops.conftest import Ops, Result

pytestmark = pytest.mark.e2e

PIPELINE = "transactions"


def verdicts(result: Result, pipeline: str = PIPELINE) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in result.json()["pipelines"][pipeline]["checks"]}


def failing(result: Result, pipeline: str = PIPELINE) -> list[str]:
    return [name for name, check in verdicts(result, pipeline).items() if check["verdict"] == "fail"]


def client(running: RunningStack, service: str) -> Any:
    return running.address.client(service)  # type: ignore[call-overload]


def set_queue_attribute(running: RunningStack, name: str, value: str) -> None:
    """SetQueueAttributes that keeps the queue's policy: moto drops it when a call does not repeat it
    (AWS leaves attributes a call does not name alone)."""
    sqs = client(running, "sqs")
    url = running.pipeline_outputs(PIPELINE)["queueUrl"]
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={**policy, name: value})


@contextmanager
def changed_queue_attribute(running: RunningStack, name: str, value: str) -> Iterator[None]:
    """The pipeline's queue with attribute ``name`` set to ``value`` until the block ends."""
    url = running.pipeline_outputs(PIPELINE)["queueUrl"]
    attributes = client(running, "sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[name])
    original = attributes["Attributes"][name]
    set_queue_attribute(running, name, value)
    try:
        yield
    finally:
        set_queue_attribute(running, name, original)


def test_doctor_passes_a_healthy_stack(ops: Ops) -> None:
    result = ops("doctor --json")

    assert result.exit_code == 0, result.stdout + result.stderr
    report = result.json()
    assert report["ok"] is True
    assert set(report["pipelines"]) == {"transactions", "invoices"}
    for pipeline in report["pipelines"]:
        checks = {name: check["verdict"] for name, check in verdicts(result, pipeline).items()}
        assert list(checks) == [name for name, _ in CHECKS]
        # The fast local tuning shortens the visibility timeout on purpose (retries in seconds), to at
        # least the function timeout but below 6 x: a warning there, never a failure.
        assert checks.pop("visibility-timeout") in {"pass", "warn"}
        assert checks == dict.fromkeys(checks, "pass")


def test_doctor_fails_a_paused_mapping_and_says_how_to_resume(running: RunningStack, ops: Ops) -> None:
    # GIVEN the mapping disabled behind the pipeline's back
    uuid = running.pipeline_outputs(PIPELINE)["eventSourceMappingId"]
    client(running, "lambda").update_event_source_mapping(UUID=uuid, Enabled=False)
    try:
        # WHEN
        result = ops(f"doctor --json {PIPELINE}")
    finally:
        assert ops(f"resume {PIPELINE}").exit_code == 0

    # THEN
    assert result.exit_code == 1
    assert result.json()["ok"] is False
    assert failing(result) == ["mapping-enabled"]
    check = verdicts(result)["mapping-enabled"]
    assert check["detail"].startswith(("the mapping is Disabled", "the mapping is Disabling"))
    assert check["hint"] == f"filepipe resume {PIPELINE}"


def test_doctor_fails_when_the_bucket_no_longer_notifies_the_queue(running: RunningStack, ops: Ops) -> None:
    # GIVEN the bucket's notification configuration rewritten without this pipeline's queue
    outputs = running.pipeline_outputs(PIPELINE)
    s3 = client(running, "s3")
    original = s3.get_bucket_notification_configuration(Bucket=outputs["bucket"])
    original.pop("ResponseMetadata", None)
    others = [c for c in original.get("QueueConfigurations", []) if c["QueueArn"] != outputs["queueArn"]]
    assert others != original.get("QueueConfigurations")
    s3.put_bucket_notification_configuration(
        Bucket=outputs["bucket"], NotificationConfiguration={**original, "QueueConfigurations": others}
    )
    try:
        # WHEN
        result = ops("doctor --json")
    finally:
        s3.put_bucket_notification_configuration(Bucket=outputs["bucket"], NotificationConfiguration=original)

    # THEN only this pipeline is broken, and only its event delivery
    assert result.exit_code == 1
    assert failing(result) == ["event-delivery"]
    assert "no S3 notification of bucket" in verdicts(result)["event-delivery"]["detail"]
    assert failing(result, "invoices") == []


def test_doctor_fails_a_role_that_cannot_write_the_output_prefix(running: RunningStack, ops: Ops) -> None:
    # GIVEN the function's role without s3:PutObject
    outputs = running.pipeline_outputs(PIPELINE)
    role_arn = client(running, "lambda").get_function_configuration(FunctionName=outputs["functionName"])[
        "Role"
    ]
    role = role_arn.rsplit("/", 1)[-1]
    iam = client(running, "iam")
    [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    original = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
    weakened = json.loads(json.dumps(original))
    for statement in weakened["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        statement["Action"] = [action for action in actions if action != "s3:PutObject"] or ["s3:GetObject"]
    iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(weakened))
    try:
        # WHEN
        result = ops(f"doctor --json {PIPELINE}")
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=policy_name, PolicyDocument=json.dumps(original))

    # THEN
    assert result.exit_code == 1
    assert failing(result) == ["function-role"]
    detail = verdicts(result)["function-role"]["detail"]
    assert f"s3:PutObject on arn:aws:s3:::{outputs['bucket']}/{outputs['outputPrefix']}" in detail
    assert "s3:GetObject" not in detail


def test_doctor_fails_a_visibility_timeout_shorter_than_the_function_timeout(
    running: RunningStack, ops: Ops
) -> None:
    outputs = running.pipeline_outputs(PIPELINE)
    timeout = client(running, "lambda").get_function_configuration(FunctionName=outputs["functionName"])[
        "Timeout"
    ]
    with changed_queue_attribute(running, "VisibilityTimeout", str(timeout // 2)):
        result = ops(f"doctor --json {PIPELINE}")

    assert result.exit_code == 1
    assert failing(result) == ["visibility-timeout"]
    check = verdicts(result)["visibility-timeout"]
    assert check["detail"].startswith(f"{timeout // 2} s, shorter than the function timeout ({timeout} s)")
    assert str(6 * timeout) in check["hint"]


def test_doctor_of_an_unknown_pipeline_is_one_clear_line_and_a_failing_exit_code(ops: Ops) -> None:
    result = ops("doctor nosuch")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "filepipe: unknown pipeline nosuch in stack dev (it has: invoices, transactions)"
    ]


def test_doctor_for_people_marks_each_check_and_puts_the_hint_under_a_failure(
    running: RunningStack, ops: Ops
) -> None:
    # A source queue that keeps messages as long as its DLQ (14 days) breaks the DLQ retention rule.
    with changed_queue_attribute(running, "MessageRetentionPeriod", str(defaults.DLQ_RETENTION_SECONDS)):
        result = ops(f"doctor {PIPELINE}")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "stack dev on local endpoint http://127.0.0.1:" in lines[0]
    [failure] = [index for index, line in enumerate(lines) if "✗" in line]
    assert "dlq-retention" in lines[failure]
    hints = [line.strip() for line in lines[failure:] if "→" in line]
    assert hints[0].startswith(f"→ set dlq_retention_seconds to {defaults.DLQ_RETENTION_SECONDS}")
    marks = [line.lstrip()[:1] for line in lines if line.lstrip()[:1] in {"✓", "!", "✗"}]
    assert len(marks) == len(CHECKS)
    assert marks.count("✗") == 1
