"""The doctor's checks against in-process moto, with the function, mapping and role made here.

Each test builds one pipeline the way the component wires it (its own policy documents), breaks one thing
and reads the verdicts of :func:`filepipe.cli.ops.doctor.diagnose`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto import mock_aws

from filepipe import defaults
from filepipe.cli.ops import doctor
from filepipe.cli.ops.doctor import (
    PipelineProbe,
    Verdict,
    check_event_delivery,
    check_queue_policy,
    diagnose,
    event_pattern_matches,
    object_created_event,
    s3_filter_matches,
)
from filepipe.cli.ops.stack import Pipeline, Stack
from filepipe.notifications import OBJECT_CREATED
from filepipe.pipeline import eventbridge_pattern
from filepipe.policies import (
    eventbridge_to_queue_policy,
    function_role_policy,
    lambda_assume_role_policy,
    s3_to_queue_policy,
    s3_to_topic_policy,
    sns_to_queue_policy,
)
from filepipe.routing import Route, configuration_id, filter_policy
from tests.conftest import ACCOUNT_ID, REGION

BUCKET = "data-bucket"
INPUT_PREFIX = "incoming/transactions/"
OUTPUT_PREFIX = "processed/incoming/transactions/"
TIMEOUT = 60
HANDLER_ENVIRONMENT = {
    "FILEPIPE_PIPELINE_NAME": "transactions",
    "FILEPIPE_INPUT_PREFIX": INPUT_PREFIX,
    "FILEPIPE_OUTPUT_PREFIX": OUTPUT_PREFIX,
    "FILEPIPE_INPUT_FORMAT": "json",
    "FILEPIPE_OUTPUT_FORMAT": "json",
    "FILEPIPE_INPUT_COMPRESSION": "auto",
    "FILEPIPE_OUTPUT_COMPRESSION": "none",
    "FILEPIPE_MAX_FILE_BYTES": str(defaults.MAX_FILE_BYTES),
}
"""The function's settings as the component writes them (the names and values the handler parses)."""


@dataclass
class World:
    stack: Stack
    pipeline: Pipeline
    role: str

    def client(self, service: str) -> Any:
        return self.stack.client(service)

    def verdicts(self) -> dict[str, Verdict]:
        return {result.name: result.verdict for result in diagnose(self.stack, self.pipeline)}

    def result(self, name: str) -> Any:
        return next(result for result in diagnose(self.stack, self.pipeline) if result.name == name)

    def failing(self) -> list[str]:
        return [name for name, verdict in self.verdicts().items() if verdict is Verdict.FAIL]


def set_queue_attributes(world: World, url: str, **attributes: str) -> None:
    """SetQueueAttributes that keeps the queue's policy: moto drops it when a call does not repeat it
    (AWS leaves attributes a call does not name alone)."""
    sqs = world.client("sqs")
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={**policy, **attributes})


def _untyped(session: boto3.session.Session, service: str) -> Any:
    """A client without its stubs' literal types: the fixture passes plain strings and dicts."""
    return session.client(service)  # type: ignore[call-overload]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@pytest.fixture
def world() -> Iterator[World]:
    """One S3-notified pipeline, wired as the component wires it."""
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        sqs, s3, iam, lam, sns, cloudwatch = (
            _untyped(session, service) for service in ("sqs", "s3", "iam", "lambda", "sns", "cloudwatch")
        )

        dlq_url, dlq_arn = _queue(sqs, "dlq", {"MessageRetentionPeriod": str(defaults.DLQ_RETENTION_SECONDS)})
        queue_url, queue_arn = _queue(
            sqs,
            "queue",
            {
                "VisibilityTimeout": str(defaults.VISIBILITY_TIMEOUT_FACTOR * TIMEOUT),
                "MessageRetentionPeriod": str(defaults.MESSAGE_RETENTION_SECONDS),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": defaults.MAX_RECEIVE_COUNT}
                ),
            },
        )
        sqs.set_queue_attributes(
            QueueUrl=queue_url,
            Attributes={
                "Policy": json.dumps(s3_to_queue_policy(queue_arn, f"arn:aws:s3:::{BUCKET}", ACCOUNT_ID))
            },
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": [OBJECT_CREATED],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "prefix", "Value": INPUT_PREFIX},
                                    {"Name": "suffix", "Value": ".json"},
                                ]
                            }
                        },
                    }
                ]
            },
        )
        role_arn = iam.create_role(
            RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(lambda_assume_role_policy())
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName="fn-role",
            PolicyName="fn-policy",
            PolicyDocument=json.dumps(
                function_role_policy(
                    partition="aws",
                    bucket=BUCKET,
                    input_prefix=INPUT_PREFIX,
                    output_prefix=OUTPUT_PREFIX,
                    queue_arn=queue_arn,
                    dlq_arn=dlq_arn,
                    log_group_arn=f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/fn",
                    table_arn=None,
                    kms_key_arn=None,
                )
            ),
        )
        lam.create_function(
            FunctionName="fn",
            Runtime=defaults.PYTHON_RUNTIME,
            Role=role_arn,
            Handler="app.handler",
            Code={"ZipFile": _zip()},
            Timeout=TIMEOUT,
            Environment={"Variables": dict(HANDLER_ENVIRONMENT)},
        )
        mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="fn", BatchSize=10)
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        _, inbox_arn = _queue(sqs, "inbox", {})
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
        cloudwatch.put_metric_alarm(
            AlarmName="dlq-depth",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": "dlq"}],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            AlarmActions=[topic],
        )
        pipeline = Pipeline(
            name="transactions",
            bucket=BUCKET,
            input_prefix=INPUT_PREFIX,
            input_suffixes=(".json",),
            output_prefix=OUTPUT_PREFIX,
            queue_url=queue_url,
            queue_arn=queue_arn,
            dlq_url=dlq_url,
            dlq_arn=dlq_arn,
            function_name="fn",
            log_group_name="/aws/lambda/fn",
            event_source_mapping_id=mapping["UUID"],
            topic_arn=topic,
            table_name="",
            alarm_names=("dlq-depth",),
        )
        yield World(Stack("unit", "moto", {"transactions": pipeline}), pipeline, "fn-role")


def test_a_pipeline_wired_as_the_component_wires_it_passes_every_check(world: World) -> None:
    assert set(world.verdicts().values()) == {Verdict.PASS}


def test_a_disabled_mapping_fails_with_the_resume_command(world: World) -> None:
    world.client("lambda").update_event_source_mapping(
        UUID=world.pipeline.event_source_mapping_id, Enabled=False
    )

    assert world.failing() == ["mapping-enabled"]
    assert world.result("mapping-enabled").hint == "filepipe resume transactions"


def test_a_mapping_that_reads_another_queue_fails(world: World) -> None:
    sqs, lam = world.client("sqs"), world.client("lambda")
    _, other_arn = _queue(sqs, "other", {"VisibilityTimeout": "360"})
    lam.delete_event_source_mapping(UUID=world.pipeline.event_source_mapping_id)
    other = lam.create_event_source_mapping(EventSourceArn=other_arn, FunctionName="fn")
    world.pipeline = replace(world.pipeline, event_source_mapping_id=other["UUID"])

    assert world.failing() == ["mapping-enabled"]
    assert "not the pipeline's queue" in world.result("mapping-enabled").detail


def test_a_role_without_put_object_on_the_output_prefix_fails_naming_the_grant(world: World) -> None:
    iam = world.client("iam")
    policy = iam.get_role_policy(RoleName=world.role, PolicyName="fn-policy")["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "WriteOutput"]
    iam.put_role_policy(RoleName=world.role, PolicyName="fn-policy", PolicyDocument=json.dumps(policy))

    assert world.failing() == ["function-role"]
    detail = world.result("function-role").detail
    assert (
        f"s3:PutObject on arn:aws:s3:::{BUCKET}/{OUTPUT_PREFIX}filepipe-doctor-probe (WriteOutput): not allowed"
        in detail
    )
    assert "s3:AbortMultipartUpload" in detail
    assert "GetObject" not in detail


def test_an_attached_policy_counts_and_an_attached_deny_wins(world: World) -> None:
    iam = world.client("iam")
    deny = iam.create_policy(
        PolicyName="no-output",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Sid": "Freeze", "Effect": "Deny", "Action": "s3:Put*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=world.role, PolicyArn=deny)

    assert world.failing() == ["function-role"]
    assert "denied by statement 'Freeze'" in world.result("function-role").detail


def test_a_denied_policy_read_is_a_warning_naming_the_permission(world: World) -> None:
    def access_denied(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return (
            AWSResponse("", 403, HTTPHeaders(), None),
            {
                "Error": {"Code": "AccessDenied", "Message": "not authorized"},
                "ResponseMetadata": {"HTTPStatusCode": 403},
            },
        )

    world.client("iam").meta.events.register("before-call.iam.GetRolePolicy", access_denied)

    result = world.result("function-role")

    assert result.verdict is Verdict.WARN
    assert result.detail == "cannot be evaluated: iam:GetRolePolicy was denied"
    assert "iam:GetRolePolicy" in result.hint


def test_a_queue_policy_for_another_bucket_fails(world: World) -> None:
    sqs = world.client("sqs")
    policy = s3_to_queue_policy(world.pipeline.queue_arn, "arn:aws:s3:::another-bucket", ACCOUNT_ID)
    sqs.set_queue_attributes(QueueUrl=world.pipeline.queue_url, Attributes={"Policy": json.dumps(policy)})

    assert world.failing() == ["queue-policy"]
    assert f"S3 notification of bucket {BUCKET}" in world.result("queue-policy").detail


def test_a_bucket_without_the_queues_notification_fails_event_delivery(world: World) -> None:
    world.client("s3").put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={})

    assert world.failing() == ["event-delivery"]
    assert world.verdicts()["queue-policy"] is Verdict.WARN


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        pytest.param(
            [{"Name": "suffix", "Value": ".json"}], "outputs under", id="whole-bucket-catches-outputs"
        ),
        pytest.param(
            [{"Name": "prefix", "Value": INPUT_PREFIX}, {"Name": "suffix", "Value": ".csv"}],
            "filepipe-doctor-probe.json is not sent",
            id="wrong-suffix",
        ),
    ],
)
def test_a_notification_with_the_wrong_filter_fails_event_delivery(
    world: World, rules: list[dict[str, str]], problem: str
) -> None:
    world.client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": world.pipeline.queue_arn,
                    "Events": [OBJECT_CREATED],
                    "Filter": {"Key": {"FilterRules": rules}},
                }
            ]
        },
    )

    assert world.failing() == ["event-delivery"]
    assert problem in world.result("event-delivery").detail


def _eventbridge_route(world: World) -> str:
    """Replace the S3 notification by the component's EventBridge rule and queue policy; the rule's ARN."""
    events, sqs = world.client("events"), world.client("sqs")
    pattern = eventbridge_pattern(BUCKET, INPUT_PREFIX, (".json",))
    rule_arn = events.put_rule(Name="rule", EventPattern=json.dumps(pattern))["RuleArn"]
    events.put_targets(Rule="rule", Targets=[{"Id": "queue", "Arn": world.pipeline.queue_arn}])
    policy = eventbridge_to_queue_policy(world.pipeline.queue_arn, rule_arn, ACCOUNT_ID)
    sqs.set_queue_attributes(QueueUrl=world.pipeline.queue_url, Attributes={"Policy": json.dumps(policy)})
    world.client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return str(rule_arn)


def test_an_eventbridge_route_passes_when_the_bucket_sends_to_eventbridge(world: World) -> None:
    _eventbridge_route(world)
    probe = PipelineProbe(world.stack, world.pipeline)
    # moto leaves EventBridgeConfiguration out of GetBucketNotificationConfiguration; AWS returns it.
    probe.__dict__["notification"] = {"EventBridgeConfiguration": {}}

    [delivery] = probe.deliveries

    assert delivery.via == "EventBridge rule rule"
    assert delivery.problems == ()
    assert check_event_delivery(probe).verdict is Verdict.PASS
    assert check_queue_policy(probe).verdict is Verdict.PASS


def test_an_eventbridge_rule_without_the_buckets_eventbridge_switch_fails(world: World) -> None:
    _eventbridge_route(world)
    probe = PipelineProbe(world.stack, world.pipeline)
    probe.__dict__["notification"] = {}

    [delivery] = probe.deliveries

    assert delivery.problems == (f"bucket {BUCKET} does not send events to EventBridge",)


def _sns_route(world: World, route: Route | None = None, **attributes: str) -> tuple[str, str]:
    """Replace the S3 notification by the component's routing topic and the queue's filtered subscription
    (``attributes`` override the subscription's); the topic's and the subscription's ARNs."""
    s3, sns = world.client("s3"), world.client("sns")
    pipeline = world.pipeline
    topic = sns.create_topic(Name="routes")["TopicArn"]
    sns.set_topic_attributes(
        TopicArn=topic,
        AttributeName="Policy",
        AttributeValue=json.dumps(s3_to_topic_policy(topic, f"arn:aws:s3:::{BUCKET}", ACCOUNT_ID)),
    )
    for queue_url, queue_arn in (
        (pipeline.queue_url, pipeline.queue_arn),
        (pipeline.dlq_url, pipeline.dlq_arn),
    ):
        policy = sns_to_queue_policy(queue_arn, topic, ACCOUNT_ID)
        set_queue_attributes(world, queue_url, Policy=json.dumps(policy))
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "Id": configuration_id(INPUT_PREFIX, ".json"),
                    "TopicArn": topic,
                    "Events": [OBJECT_CREATED],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": INPUT_PREFIX},
                                {"Name": "suffix", "Value": ".json"},
                            ]
                        }
                    },
                }
            ]
        },
    )
    route = route or Route(pipeline.name, INPUT_PREFIX, (".json",))
    subscription_attributes = {
        "RawMessageDelivery": "true",
        "FilterPolicyScope": "MessageBody",
        "FilterPolicy": json.dumps(filter_policy(route)),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": pipeline.dlq_arn}),
        **attributes,
    }
    subscription = sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=pipeline.queue_arn,
        Attributes={name: value for name, value in subscription_attributes.items() if value},
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    return str(topic), str(subscription)


def test_an_sns_route_as_the_component_wires_it_passes_every_check(world: World) -> None:
    # GIVEN the sns-mode wiring: bucket -> routing topic -> filtered subscription -> queue
    topic, _ = _sns_route(world)

    # WHEN the doctor finds how events reach the queue
    [delivery] = PipelineProbe(world.stack, world.pipeline).deliveries

    # THEN the subscription is the one delivery, admitted and sending exactly the pipeline's files
    assert delivery.via == f"SNS subscription of topic {topic}"
    assert (delivery.service, delivery.source_arn) == ("sns.amazonaws.com", topic)
    assert (delivery.problems, delivery.warnings) == ((), ())
    assert set(world.verdicts().values()) == {Verdict.PASS}


def test_a_size_bounded_route_still_sends_the_pipelines_files(world: World) -> None:
    _sns_route(world, Route("transactions", INPUT_PREFIX, (".json",), min_bytes=1024, max_bytes=4096))

    assert world.verdicts()["event-delivery"] is Verdict.PASS


def test_a_filter_policy_for_another_suffix_fails_event_delivery(world: World) -> None:
    _, subscription = _sns_route(world)
    world.client("sns").set_subscription_attributes(
        SubscriptionArn=subscription,
        AttributeName="FilterPolicy",
        AttributeValue=json.dumps(filter_policy(Route("transactions", INPUT_PREFIX, (".csv",)))),
    )

    assert world.failing() == ["event-delivery"]
    assert "filepipe-doctor-probe.json is not sent" in world.result("event-delivery").detail


def test_without_the_local_extra_the_filter_policy_is_a_warning_saying_what_to_install(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a filter policy that misses the pipeline's files, judged where moto (the matcher) is missing
    _, subscription = _sns_route(world)
    world.client("sns").set_subscription_attributes(
        SubscriptionArn=subscription,
        AttributeName="FilterPolicy",
        AttributeValue=json.dumps(filter_policy(Route("transactions", INPUT_PREFIX, (".csv",)))),
    )
    monkeypatch.setattr(doctor, "missing_local_modules", lambda: ["moto"])

    result = world.result("event-delivery")

    # THEN the rest of the check stands, and the unjudged policy is a warning with the one line
    assert result.verdict is Verdict.WARN
    assert (
        "the filter policy was not evaluated: `filepipe doctor` needs `pip install 'filepipe[local]'`"
        in result.detail
    )


def test_a_subscription_without_redrive_fails_event_delivery(world: World) -> None:
    _sns_route(world, RedrivePolicy="")

    assert world.failing() == ["event-delivery"]
    assert "no redrive policy" in world.result("event-delivery").detail


def test_a_subscription_without_raw_delivery_is_a_warning(world: World) -> None:
    _sns_route(world, RawMessageDelivery="false")

    result = world.result("event-delivery")

    assert result.verdict is Verdict.WARN
    assert "raw message delivery is off" in result.detail


def test_a_queue_policy_admitting_only_s3_fails_the_sns_route(world: World) -> None:
    topic, _ = _sns_route(world)
    policy = s3_to_queue_policy(world.pipeline.queue_arn, f"arn:aws:s3:::{BUCKET}", ACCOUNT_ID)
    set_queue_attributes(world, world.pipeline.queue_url, Policy=json.dumps(policy))

    assert world.failing() == ["queue-policy"]
    assert f"SNS subscription of topic {topic} (sns.amazonaws.com)" in world.result("queue-policy").detail


_ALARM_FIELDS = (  # what put_metric_alarm needs again from describe_alarms
    "AlarmName",
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "Period",
    "EvaluationPeriods",
    "Threshold",
    "ComparisonOperator",
)


def test_alarms_on_the_routing_topic_fail_although_queues_subscribe_to_it(world: World) -> None:
    topic, _ = _sns_route(world)
    alarm = world.client("cloudwatch").describe_alarms(AlarmNames=["dlq-depth"])["MetricAlarms"][0]
    world.client("cloudwatch").put_metric_alarm(
        **{name: alarm[name] for name in _ALARM_FIELDS}, AlarmActions=[topic]
    )

    assert world.failing() == ["alert-subscribers"]
    assert "routing topic" in world.result("alert-subscribers").detail


def test_a_visibility_timeout_below_the_function_timeout_fails_and_below_six_times_warns(
    world: World,
) -> None:
    set_queue_attributes(world, world.pipeline.queue_url, VisibilityTimeout=str(TIMEOUT - 1))
    assert world.failing() == ["visibility-timeout"]

    set_queue_attributes(world, world.pipeline.queue_url, VisibilityTimeout=str(TIMEOUT))
    assert world.verdicts()["visibility-timeout"] is Verdict.WARN
    assert world.failing() == []


def test_a_dlq_that_does_not_outlive_the_queue_fails(world: World) -> None:
    world.client("sqs").set_queue_attributes(
        QueueUrl=world.pipeline.dlq_url,
        Attributes={"MessageRetentionPeriod": str(defaults.MESSAGE_RETENTION_SECONDS)},
    )

    assert world.failing() == ["dlq-retention"]


def test_a_queue_redriving_elsewhere_or_nowhere_fails(world: World) -> None:
    _, other_arn = _queue(world.client("sqs"), "other-dlq", {})
    redrive = {"deadLetterTargetArn": other_arn, "maxReceiveCount": defaults.MAX_RECEIVE_COUNT}
    set_queue_attributes(world, world.pipeline.queue_url, RedrivePolicy=json.dumps(redrive))
    assert world.failing() == ["redrive"]
    assert other_arn in world.result("redrive").detail

    set_queue_attributes(world, world.pipeline.queue_url, RedrivePolicy="")
    assert world.failing() == ["redrive"]
    assert world.result("redrive").detail.startswith("the queue has no redrive policy")


def test_a_dlq_alarm_without_actions_and_a_topic_without_subscribers_fail(world: World) -> None:
    cloudwatch, sns = world.client("cloudwatch"), world.client("sns")
    cloudwatch.disable_alarm_actions(AlarmNames=["dlq-depth"])
    for subscription in sns.list_subscriptions_by_topic(TopicArn=world.pipeline.topic_arn)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])

    assert world.failing() == ["dlq-alarm", "alert-subscribers"]
    assert "no subscription" in world.result("alert-subscribers").detail


def test_parked_files_are_a_warning(world: World) -> None:
    world.client("sqs").send_message(QueueUrl=world.pipeline.dlq_url, MessageBody="{}")

    result = world.result("backlog")

    assert result.verdict is Verdict.WARN
    assert "1 parked in the dead-letter queue" in result.detail


def test_the_components_eventbridge_pattern_matches_inputs_and_not_outputs() -> None:
    pattern = eventbridge_pattern(BUCKET, INPUT_PREFIX, (".json", ".jsonl"))

    assert event_pattern_matches(pattern, object_created_event(BUCKET, f"{INPUT_PREFIX}a/b.jsonl"))
    assert not event_pattern_matches(pattern, object_created_event(BUCKET, f"{INPUT_PREFIX}a.csv"))
    assert not event_pattern_matches(pattern, object_created_event(BUCKET, f"{OUTPUT_PREFIX}a.json"))
    assert not event_pattern_matches(pattern, object_created_event("other-bucket", f"{INPUT_PREFIX}a.json"))


def test_an_s3_filter_matches_prefix_and_suffix_of_object_created_events_only() -> None:
    configuration = {
        "Events": ["s3:ObjectCreated:Put"],
        "Filter": {
            "Key": {"FilterRules": [{"Name": "Prefix", "Value": "in/"}, {"Name": "Suffix", "Value": ".json"}]}
        },
    }

    assert s3_filter_matches(configuration, "in/a.json")
    assert not s3_filter_matches(configuration, "in/a.csv")
    assert not s3_filter_matches({**configuration, "Events": ["s3:ObjectRemoved:*"]}, "in/a.json")


def set_environment(world: World, **changes: str | None) -> None:
    """The function's environment with ``FILEPIPE_<NAME>`` changed (``None``: removed)."""
    variables = dict(HANDLER_ENVIRONMENT)
    for name, value in changes.items():
        variables.pop(f"FILEPIPE_{name.upper()}", None)
        if value is not None:
            variables[f"FILEPIPE_{name.upper()}"] = value
    world.client("lambda").update_function_configuration(
        FunctionName="fn", Environment={"Variables": variables}
    )


def test_the_handler_settings_are_shown_when_they_parse(world: World) -> None:
    result = world.result("handler-settings")

    assert result.verdict is Verdict.PASS
    assert result.detail == (
        f"json -> json; compressed inputs by suffix or Content-Encoding; size cap {defaults.MAX_FILE_BYTES} bytes"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"input_compression": "gz"},
            "FILEPIPE_INPUT_COMPRESSION must be one of auto, none, gzip, zstd; got 'gz'",
            id="input-compression",
        ),
        pytest.param(
            {"output_compression": "brotli"},
            "FILEPIPE_OUTPUT_COMPRESSION must be one of none, gzip, zstd; got 'brotli'",
            id="output-compression",
        ),
        pytest.param(
            {"max_file_bytes": "1GB"}, "FILEPIPE_MAX_FILE_BYTES must be an integer, got '1GB'", id="size-cap"
        ),
        pytest.param(
            {"pipeline_name": None}, "environment variable FILEPIPE_PIPELINE_NAME is required", id="no-name"
        ),
    ],
)
def test_settings_the_handler_refuses_fail_with_its_own_words(
    world: World, changes: dict[str, str | None], message: str
) -> None:
    set_environment(world, **changes)

    result = world.result("handler-settings")

    assert result.verdict is Verdict.FAIL
    assert result.detail == f"the handler cannot start: {message}; every file it is sent fails"
    assert "function's environment (fn)" in result.hint


def test_gzip_input_with_a_suffix_without_gz_fails(world: World) -> None:
    # GIVEN every file read as gzip, but the notification sends .json files
    set_environment(world, input_compression="gzip")

    result = world.result("handler-settings")

    assert result.verdict is Verdict.FAIL
    assert "files ending .json are read as gzip (input_compression gzip)" in result.detail
    assert "CorruptCompressionError" in result.detail


def test_compressed_suffixes_read_as_plain_records_are_a_warning(world: World) -> None:
    world.pipeline = replace(world.pipeline, input_suffixes=(".json", ".json.zst"))
    set_environment(world, input_compression="none")

    result = world.result("handler-settings")

    assert result.verdict is Verdict.WARN
    assert "files ending .json.zst are read as plain json (input_compression none)" in result.detail


def test_prefixes_that_differ_from_the_stack_outputs_fail(world: World) -> None:
    set_environment(world, output_prefix="elsewhere/")

    result = world.result("handler-settings")

    assert result.verdict is Verdict.FAIL
    assert f"FILEPIPE_OUTPUT_PREFIX is 'elsewhere/', the stack outputs say {OUTPUT_PREFIX!r}" in result.detail


def test_a_whole_file_processor_is_shown_with_its_output_folder(world: World) -> None:
    set_environment(world, file_processor="zip_members:zip_of_csvs", output_compression="zstd")

    result = world.result("handler-settings")

    assert result.verdict is Verdict.PASS
    assert result.detail.startswith(
        f"whole-file processor zip_members:zip_of_csvs, outputs in {OUTPUT_PREFIX}<input path>/;"
    )
    assert "outputs zstd (.zst)" in result.detail


def test_a_notification_that_catches_a_whole_file_processors_outputs_fails_event_delivery(
    world: World,
) -> None:
    # GIVEN a whole-file processor whose outputs go under its own input prefix, which the bucket watches
    nested = f"{INPUT_PREFIX}out/"
    world.pipeline = replace(world.pipeline, output_prefix=nested)
    set_environment(world, file_processor="zip_members:zip_of_csvs", output_prefix=nested)

    result = world.result("event-delivery")

    # THEN the outputs in each file's folder would be sent back to the queue
    assert result.verdict is Verdict.FAIL
    assert f"outputs under {nested} are sent too" in result.detail


def test_outputs_the_notification_does_not_match_are_judged_by_the_handlers_output_key(world: World) -> None:
    # GIVEN outputs under the watched input prefix, but gzip-compressed: written as .json.gz, which the
    # .json notification does not send (the handler's key rule, not the input's name)
    nested = f"{INPUT_PREFIX}out/"
    world.pipeline = replace(world.pipeline, output_prefix=nested)
    set_environment(world, output_compression="gzip", output_prefix=nested)

    assert world.result("event-delivery").verdict is Verdict.PASS

    # WHEN the outputs are written uncompressed THEN they would be sent back: a loop
    set_environment(world, output_prefix=nested)
    result = world.result("event-delivery")
    assert result.verdict is Verdict.FAIL and f"outputs under {nested} are sent too" in result.detail
