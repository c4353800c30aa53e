"""Each rule, on a captured example stack with one thing broken: that rule (and only that rule) fails,
with its message. Resources are found by type and wiring, not by name."""

from __future__ import annotations

import json

import pytest

from filepipe.policy import POLICIES
from tests.policy.engine import as_first_preview, transform, with_copy, with_props, without

QUEUE = "aws:sqs/queue:Queue"
LEVEL_OF = {policy.name: policy.enforcement_level.value for policy in POLICIES if policy.enforcement_level}


def of_type(graph, type_token):
    return sorted((n for n in graph.nodes if n.type == type_token), key=lambda n: n.urn)


def through(graph, node, prop, type_token=None):
    """The resources ``node.prop`` was computed from."""
    urns = set(node.property_dependencies.get(prop, ()))
    return [n for n in graph.nodes if n.urn in urns and type_token in (None, n.type)]


def path(graph):
    """The first consumed queue's data path: mapping, queue, function, dead-letter queue."""
    mapping = of_type(graph, "aws:lambda/eventSourceMapping:EventSourceMapping")[0]
    queue = through(graph, mapping, "eventSourceArn")[0]
    function = through(graph, mapping, "functionName")[0]
    dlq = through(graph, queue, "redrivePolicy", QUEUE)[0]
    return mapping, queue, function, dlq


def dlq_depth_alarm(graph):
    _, _, _, dlq = path(graph)
    return next(
        alarm
        for alarm in of_type(graph, "aws:cloudwatch/metricAlarm:MetricAlarm")
        if dlq in through(graph, alarm, "dimensions")
        and alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    )


def policy_document(**statement_changes):
    def change(props):
        document = json.loads(props["policy"])
        document["Statement"][0].update(statement_changes)
        props["policy"] = json.dumps(document)

    return change


def edit(type_token, change, pick=lambda graph, nodes: nodes[0]):
    def mutate(graph):
        return transform(graph, pick(graph, of_type(graph, type_token)).name, change)

    return mutate


def on_path(role, **changes):
    index = ("mapping", "queue", "function", "dlq").index(role)
    return lambda graph: with_props(graph, path(graph)[index].name, **changes)


def remove(type_token):
    return lambda graph: without(graph, of_type(graph, type_token)[0].name)


def source_queue_policy(graph, policies):
    _, queue, _, _ = path(graph)
    return next(p for p in policies if queue in through(graph, p, "queueUrl"))


def drop_condition(key):
    def change(props):
        document = json.loads(props["policy"])
        for clause in document["Statement"][0]["Condition"].values():
            clause.pop(key, None)
        props["policy"] = json.dumps(document)

    return change


def add_role_statement(props):
    document = json.loads(props["policy"])
    document["Statement"].append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    props["policy"] = json.dumps(document)


def drop_key_statement(sid):
    def change(props):
        document = json.loads(props["policy"])
        document["Statement"] = [s for s in document["Statement"] if s.get("Sid") != sid]
        props["policy"] = json.dumps(document)

    return change


def drop_noncurrent_expiration(props):
    for rule in props["rules"]:
        rule.pop("noncurrentVersionExpiration", None)


def redrive_with_max_receive(count):
    def mutate(graph):
        _, queue, _, _ = path(graph)
        redrive = json.loads(queue.inputs["redrivePolicy"])
        return with_props(graph, queue.name, redrivePolicy=json.dumps({**redrive, "maxReceiveCount": count}))

    return mutate


def output_prefix(prefix):
    def change(props):
        props["environment"]["variables"]["FILEPIPE_OUTPUT_PREFIX"] = prefix

    def mutate(graph):
        _, _, function, _ = path(graph)
        return transform(graph, function.name, change)

    return mutate


def with_function_logs(log_format):
    def change(props):
        props["loggingConfig"]["logFormat"] = log_format

    return lambda graph: transform(graph, path(graph)[2].name, change)


def without_function_log_group(graph):
    _, _, function, _ = path(graph)
    return without(graph, through(graph, function, "loggingConfig")[0].name)


def duplicate_notification(graph):
    notification = of_type(graph, "aws:s3/bucketNotification:BucketNotification")[0]
    return with_copy(graph, notification.name, "second-notification")


def alarm_metric(metric=None, **changes):
    def mutate(graph):
        alarm = dlq_depth_alarm(graph)
        if metric is not None:
            changes["metricName"] = metric
        return with_props(graph, alarm.name, **changes)

    return mutate


def without_dlq_alarm(graph):
    return without(graph, dlq_depth_alarm(graph).name)


SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"


def sqs_subscription(graph, subscriptions):
    return next(s for s in subscriptions if s.inputs.get("protocol") == "sqs")


def handler_variable(name, value):
    """The first consumed queue's function with ``FILEPIPE_<NAME>`` set to ``value``."""

    def change(props):
        props["environment"]["variables"][f"FILEPIPE_{name}"] = value

    return lambda graph: transform(graph, path(graph)[2].name, change)


def file_processor_function(graph):
    return next(
        f
        for f in of_type(graph, "aws:lambda/function:Function")
        if "FILEPIPE_FILE_PROCESSOR" in f.inputs["environment"]["variables"]
    )


def file_processor_may_write(resource):
    """The whole-file processor's role policy with object writes on ``resource`` (formatted with the
    bucket's name) as well."""

    def mutate(graph):
        function = file_processor_function(graph)
        role = through(graph, function, "role", "aws:iam/role:Role")[0]
        policy = next(
            p for p in of_type(graph, "aws:iam/rolePolicy:RolePolicy") if role in through(graph, p, "role")
        )
        bucket = of_type(graph, "aws:s3/bucket:Bucket")[0].outputs["bucket"]

        def change(props):
            document = json.loads(props["policy"])
            document["Statement"].append(
                {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": resource.format(bucket=bucket)}
            )
            props["policy"] = json.dumps(document)

        return transform(graph, policy.name, change)

    return mutate


def function_of_pipeline(pipeline, **variables):
    def mutate(graph):
        function = next(
            f for f in of_type(graph, "aws:lambda/function:Function") if f.name == f"data-{pipeline}-function"
        )

        def change(props):
            props["environment"]["variables"].update(variables)

        return transform(graph, function.name, change)

    return mutate


PUBLIC = {"Principal": "*", "Condition": None}
CASES = [
    pytest.param(
        "sqs-queue-encrypted",
        "dev",
        on_path("queue", sqsManagedSseEnabled=None),
        "sets neither sqsManagedSseEnabled=true nor kmsMasterKeyId",
        id="queue-unencrypted",
    ),
    pytest.param(
        "sns-topic-encrypted",
        "kms",
        lambda graph: with_props(graph, of_type(graph, "aws:sns/topic:Topic")[0].name, kmsMasterKeyId=None),
        "the topic is not encrypted at rest",
        id="topic-unencrypted",
    ),
    pytest.param(
        "queue-topic-policy-not-public",
        "dev",
        edit("aws:sqs/queuePolicy:QueuePolicy", policy_document(**PUBLIC), source_queue_policy),
        'allows Principal "*" without an aws:SourceAccount',
        id="queue-policy-public",
    ),
    pytest.param(
        "queue-topic-policy-source-conditions",
        "dev",
        edit("aws:sqs/queuePolicy:QueuePolicy", drop_condition("aws:SourceAccount"), source_queue_policy),
        "admits s3.amazonaws.com without aws:SourceAccount",
        id="queue-policy-no-source-account",
    ),
    pytest.param(
        "queue-topic-policy-source-conditions",
        "eventbridge",
        edit("aws:sqs/queuePolicy:QueuePolicy", drop_condition("aws:SourceArn")),
        "admits events.amazonaws.com without aws:SourceArn",
        id="eventbridge-queue-policy-no-source-arn",
    ),
    pytest.param(
        "iam-no-wildcards",
        "dev",
        edit("aws:iam/rolePolicy:RolePolicy", add_role_statement),
        'allows action s3:*, resource "*"',
        id="role-policy-wildcards",
    ),
    pytest.param(
        "iam-no-wildcards",
        "dev",
        lambda graph: with_props(
            graph,
            of_type(graph, "aws:iam/role:Role")[0].name,
            assumeRolePolicy=json.dumps(
                {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
            ),
        ),
        "lets any principal assume the role",
        id="role-trusts-everyone",
    ),
    pytest.param(
        "log-group-retention",
        "dev",
        lambda graph: with_props(
            graph, of_type(graph, "aws:cloudwatch/logGroup:LogGroup")[0].name, retentionInDays=None
        ),
        "keeps its events forever",
        id="log-group-without-retention",
    ),
    pytest.param(
        "kms-key-rotation",
        "kms",
        lambda graph: with_props(graph, of_type(graph, "aws:kms/key:Key")[0].name, enableKeyRotation=False),
        "automatic key rotation is off",
        id="key-not-rotated",
    ),
    pytest.param(
        "dynamodb-point-in-time-recovery",
        "dev",
        lambda graph: with_props(
            graph, of_type(graph, "aws:dynamodb/table:Table")[0].name, pointInTimeRecovery=None
        ),
        "point-in-time recovery is off",
        id="table-without-pitr",
    ),
    pytest.param(
        "dynamodb-encryption",
        "dev",
        lambda graph: with_props(
            graph,
            of_type(graph, "aws:dynamodb/table:Table")[0].name,
            serverSideEncryption={"enabled": False, "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k"},
        ),
        "names kmsKeyArn but enabled is not true",
        id="table-key-not-enabled",
    ),
    pytest.param(
        "lambda-json-logs",
        "dev",
        with_function_logs("Text"),
        "logs are not JSON (loggingConfig.logFormat is Text)",
        id="function-text-logs",
    ),
    pytest.param(
        "s3-public-access-block",
        "dev",
        lambda graph: with_props(
            graph,
            of_type(graph, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[0].name,
            blockPublicPolicy=False,
        ),
        "blockPublicPolicy not true",
        id="public-access-block-partial",
    ),
    pytest.param(
        "s3-public-access-block",
        "dev",
        remove("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"),
        "no BucketPublicAccessBlock",
        id="public-access-block-missing",
    ),
    pytest.param(
        "s3-tls-only",
        "dev",
        remove("aws:s3/bucketPolicy:BucketPolicy"),
        "denies requests without TLS",
        id="no-tls",
    ),
    pytest.param(
        "s3-versioning",
        "dev",
        edit(
            "aws:s3/bucketVersioning:BucketVersioning",
            lambda props: props["versioningConfiguration"].update(status="Suspended"),
        ),
        "versioning is not enabled",
        id="versioning-suspended",
    ),
    pytest.param(
        "s3-encryption",
        "dev",
        remove("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"),
        "no default encryption configuration",
        id="bucket-unencrypted",
    ),
    pytest.param(
        "s3-lifecycle",
        "dev",
        remove("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"),
        "no enabled lifecycle rule",
        id="no-lifecycle",
    ),
    pytest.param(
        "s3-noncurrent-versions-expire",
        "dev",
        edit("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", drop_noncurrent_expiration),
        "no lifecycle rule expires noncurrent versions",
        id="noncurrent-versions-kept",
    ),
    pytest.param(
        "lambda-log-group-retention",
        "dev",
        without_function_log_group,
        "is not declared in the stack, so Lambda creates it",
        id="function-log-group-undeclared",
    ),
    pytest.param(
        "no-aws-managed-key-for-service-writers",
        "dev",
        on_path("queue", sqsManagedSseEnabled=None, kmsMasterKeyId="alias/aws/sqs"),
        "encrypted with alias/aws/sqs, whose key policy cannot be changed, but s3.amazonaws.com writes to it",
        id="queue-under-aws-managed-key",
    ),
    pytest.param(
        "no-aws-managed-key-for-service-writers",
        "dev",
        lambda graph: with_props(
            graph, of_type(graph, "aws:sns/topic:Topic")[0].name, kmsMasterKeyId="alias/aws/sns"
        ),
        "encrypted with alias/aws/sns, whose key policy cannot be changed, but cloudwatch.amazonaws.com",
        id="topic-under-aws-managed-key",
    ),
    pytest.param(
        "kms-key-admits-writers",
        "kms",
        edit("aws:kms/key:Key", drop_key_statement("AllowS3")),
        "which s3.amazonaws.com writes to, but its key policy does not allow",
        id="key-without-s3",
    ),
    pytest.param(
        "kms-key-admits-writers",
        "kms-eventbridge",
        edit("aws:kms/key:Key", drop_key_statement("AllowEventBridge")),
        "which events.amazonaws.com writes to, but its key policy does not allow",
        id="key-without-eventbridge",
    ),
    pytest.param(
        "kms-key-admits-writers",
        "kms",
        edit("aws:kms/key:Key", drop_key_statement("AllowCloudWatch")),
        "which cloudwatch.amazonaws.com writes to, but its key policy does not allow",
        id="key-without-cloudwatch",
    ),
    pytest.param(
        "sqs-consumer-redrive",
        "dev",
        on_path("queue", redrivePolicy=None),
        "has no redrive policy",
        id="queue-without-redrive",
    ),
    pytest.param("dlq-depth-alarm", "dev", without_dlq_alarm, "nothing alarms on it", id="dlq-without-alarm"),
    pytest.param(
        "dlq-depth-alarm",
        "dev",
        alarm_metric(alarmActions=[]),
        "its depth alarm has no (enabled) alarm actions",
        id="dlq-alarm-without-actions",
    ),
    pytest.param(
        "dlq-depth-alarm",
        "dev",
        alarm_metric("NumberOfMessagesSent"),
        "alarmed only on NumberOfMessagesSent, which a redrive does not move",
        id="dlq-alarm-on-sent",
    ),
    pytest.param(
        "sqs-visibility-timeout",
        "dev",
        on_path("queue", visibilityTimeoutSeconds=30),
        "visibility timeout 30s is shorter than the timeout of",
        id="visibility-below-timeout",
    ),
    pytest.param(
        "sqs-visibility-timeout-recommended",
        "dev",
        on_path("queue", visibilityTimeoutSeconds=120),
        "visibility timeout 120s is below 6 x the timeout",
        id="visibility-below-six-times",
    ),
    pytest.param(
        "sqs-max-receive-count",
        "dev",
        redrive_with_max_receive(3),
        "maxReceiveCount 3 is below 5",
        id="max-receive-count-3",
    ),
    pytest.param(
        "dlq-retention-exceeds-source",
        "dev",
        on_path("dlq", messageRetentionSeconds=345600),
        "not longer than its source",
        id="dlq-retention-equal",
    ),
    pytest.param(
        "sqs-mapping-partial-batch-responses",
        "dev",
        on_path("mapping", functionResponseTypes=None),
        "does not report batch item failures",
        id="mapping-without-partial-batch",
    ),
    pytest.param(
        "output-prefix-outside-notification-filters",
        "dev",
        output_prefix("incoming/invoices/results/"),
        "which data-notification",
        id="output-into-other-pipelines-input",
    ),
    pytest.param(
        "output-prefix-outside-notification-filters",
        "eventbridge",
        output_prefix("incoming/orders/out/"),
        "(EventBridge) watches (prefix 'incoming/orders/')",
        id="output-into-own-eventbridge-rule",
    ),
    pytest.param(
        "output-prefix-outside-notification-filters",
        "routing",
        output_prefix("incoming/out/"),
        "watches (prefix 'incoming/')",
        id="output-into-the-routing-topics-notification",
    ),
    pytest.param(
        "sns-subscription-redrive",
        "routing",
        edit(SUBSCRIPTION, lambda props: props.pop("redrivePolicy"), pick=sqs_subscription),
        "an SNS -> SQS subscription without a redrive policy",
        id="subscription-without-redrive",
    ),
    pytest.param(
        "kms-key-admits-writers",
        "kms-sns",
        edit("aws:kms/key:Key", drop_key_statement("AllowSNS")),
        "which sns.amazonaws.com writes to",
        id="queue-key-refuses-the-routing-topic",
    ),
    pytest.param(
        "one-notification-per-bucket",
        "dev",
        duplicate_notification,
        "a second notification configuration for bucket",
        id="two-notifications",
    ),
    pytest.param(
        "filepipe-handler-settings",
        "dev",
        handler_variable("INPUT_COMPRESSION", "gz"),
        "the filepipe handler refuses its environment: FILEPIPE_INPUT_COMPRESSION must be one of auto, none, "
        "gzip, zstd; got 'gz'",
        id="invalid-input-compression",
    ),
    pytest.param(
        "filepipe-handler-settings",
        "dev",
        handler_variable("OUTPUT_COMPRESSION", "brotli"),
        "FILEPIPE_OUTPUT_COMPRESSION must be one of none, gzip, zstd; got 'brotli'",
        id="invalid-output-compression",
    ),
    pytest.param(
        "compressed-input-suffixes",
        "dev",
        handler_variable("INPUT_COMPRESSION", "gzip"),
        "reads every file as gzip (FILEPIPE_INPUT_COMPRESSION), but data-notification sends it every file "
        "ending '.csv'",
        id="gzip-input-for-csv-files",
    ),
    pytest.param(
        "compressed-input-suffixes",
        "formats",
        function_of_pipeline("events", FILEPIPE_INPUT_COMPRESSION="zstd"),
        "every file ending '.ndjson': a plain one fails as corrupt",
        id="zstd-input-with-a-plain-suffix-too",
    ),
    pytest.param(
        "file-processor-writes-only-its-outputs",
        "formats",
        file_processor_may_write("arn:aws:s3:::{bucket}/*"),
        "runs the whole-file processor zip_members:zip_of_csvs with s3:PutObject on arn:aws:s3:::",
        id="file-processor-writes-the-whole-bucket",
    ),
    pytest.param(
        "file-processor-writes-only-its-outputs",
        "formats",
        file_processor_may_write("arn:aws:s3:::{bucket}/processed/*"),
        "beyond its output prefix 'processed/incoming/archives/'",
        id="file-processor-writes-every-pipelines-outputs",
    ),
]


def graphs(dev_graph, variant_graphs, routing_graph, formats_graph):
    return {"dev": dev_graph, "routing": routing_graph, "formats": formats_graph, **variant_graphs}


@pytest.mark.parametrize(("rule", "stack", "mutate", "message"), CASES)
def test_a_broken_graph_fails_exactly_its_rule(
    pack, dev_graph, variant_graphs, routing_graph, formats_graph, rule, stack, mutate, message
):
    # GIVEN an example stack that passes, and the same stack with one thing broken
    graph = graphs(dev_graph, variant_graphs, routing_graph, formats_graph)[stack]
    before = {(v.policy, v.urn, v.message) for v in pack.evaluate(graph)}

    # WHEN the pack judges the broken one
    after = [v for v in pack.evaluate(mutate(graph)) if (v.policy, v.urn, v.message) not in before]

    # THEN that rule, at its level, is the only new finding, and it says what is wrong
    assert {v.policy for v in after} == {rule}, [f"{v.policy}: {v.message}" for v in after]
    assert {v.level for v in after} == {LEVEL_OF[rule]}
    assert any(message in v.message for v in after), [v.message for v in after]


def test_every_rule_has_a_failing_case():
    assert {param.values[0] for param in CASES} == {policy.name for policy in POLICIES}


@pytest.mark.parametrize(
    ("rule", "mutate"),
    [
        pytest.param(
            "sqs-mapping-partial-batch-responses",
            on_path("mapping", functionResponseTypes=None),
            id="mapping-without-partial-batch",
        ),
        pytest.param(
            "sqs-consumer-redrive", on_path("queue", redrivePolicy=None), id="queue-without-redrive"
        ),
        pytest.param("dlq-depth-alarm", without_dlq_alarm, id="dlq-without-alarm"),
        pytest.param(
            "sqs-queue-encrypted", on_path("queue", sqsManagedSseEnabled=None), id="queue-unencrypted"
        ),
    ],
)
def test_wiring_is_judged_in_a_first_preview(pack, dev_graph, rule, mutate):
    # GIVEN a first preview: every ARN and URL the wiring carries is still unknown
    graph = as_first_preview(mutate(dev_graph))

    # WHEN the pack runs THEN the rule still finds the resources through the engine's property dependencies
    assert rule in {v.policy for v in pack.evaluate(graph) if v.level == "mandatory"}
