"""The FileProcessingPipeline graph under Pulumi mocks: resources, properties, wiring."""

import asyncio
import json

import pytest

from filepipe import (
    Encryption,
    FileProcessingPipeline,
    NotificationMode,
    PipelineConfigError,
)
from filepipe.handler.settings import EnvVar, FileFormat, HandlerSettings, OutputFormat
from filepipe.policies import wildcard_findings
from tests.components.conftest import RecordingMocks, build, pipeline_args, policy
from tests.conftest import ACCOUNT_ID


def _pipeline(**overrides):
    args = {"input_prefix": "incoming/orders/", "alert_emails": ["ops@example.com", "oncall@example.com"]}
    return lambda: FileProcessingPipeline("orders", pipeline_args({**args, **overrides}))


def test_a_pipeline_creates_the_whole_graph_every_child_named_and_parented(mocks):
    build(_pipeline())

    types = sorted(r.typ.split(":")[-1] for r in mocks.resources)
    assert types == sorted(
        ["FileProcessingPipeline", "PipelineBucket", "Bucket", "BucketVersioning", "BucketLifecycleConfiguration",
         "BucketServerSideEncryptionConfiguration", "BucketPublicAccessBlock", "BucketPolicy",
         "Queue", "Queue", "QueuePolicy", "BucketNotification", "Table", "LogGroup", "Role", "RolePolicy",
         "LayerVersion", "Function", "EventSourceMapping", "Topic", "TopicSubscription", "TopicSubscription",
         "MetricAlarm", "MetricAlarm", "MetricAlarm", "MetricAlarm", "Dashboard"]
    )  # fmt: skip
    for resource in mocks.resources:
        if resource.typ != "filepipe:index:FileProcessingPipeline":
            assert resource.name.startswith("orders-"), resource.name
            assert mocks.parent_of(resource) in {"orders", "orders-bucket"}, resource.name


def test_created_bucket_is_versioned_encrypted_private_and_tls_only(mocks):
    build(_pipeline())

    assert mocks.one("aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"] == {
        "status": "Enabled"
    }
    encryption = mocks.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert encryption.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    block = mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k]
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    tls = mocks.one("aws:s3/bucketPolicy:BucketPolicy")
    assert policy(tls)["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert "orders-bucket-public-access-block" in mocks.dependencies_of(tls)


def test_queues_use_sse_sqs_redrive_and_retention_defaults(mocks):
    build(_pipeline())

    queue = mocks.one("aws:sqs/queue:Queue", "orders-queue").inputs
    dlq = mocks.one("aws:sqs/queue:Queue", "orders-dlq")
    assert queue["visibilityTimeoutSeconds"] == 360  # 6 x 60 s
    assert queue["messageRetentionSeconds"] == 4 * 24 * 3600
    assert dlq.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert json.loads(queue["redrivePolicy"]) == {
        "deadLetterTargetArn": dlq.outputs["arn"],
        "maxReceiveCount": 5,
    }
    assert queue["sqsManagedSseEnabled"] is True and dlq.inputs["sqsManagedSseEnabled"] is True
    assert "kmsMasterKeyId" not in queue


def test_notification_targets_the_queue_after_its_policy(mocks):
    build(_pipeline(input_suffixes=[".json", ".json.gz"]))

    notification = mocks.one("aws:s3/bucketNotification:BucketNotification")
    queue_arn = mocks.one("aws:sqs/queue:Queue", "orders-queue").outputs["arn"]
    assert [
        (q["filterPrefix"], q["filterSuffix"], q["events"], q["queueArn"])
        for q in notification.inputs["queues"]
    ] == [
        ("incoming/orders/", ".json", ["s3:ObjectCreated:*"], queue_arn),
        ("incoming/orders/", ".json.gz", ["s3:ObjectCreated:*"], queue_arn),
    ]
    assert notification.inputs.get("eventbridge") is False
    assert "orders-queue-policy" in mocks.dependencies_of(notification)
    statement = policy(mocks.one("aws:sqs/queuePolicy:QueuePolicy"))["Statement"][0]
    bucket_arn = mocks.one("aws:s3/bucket:Bucket").outputs["arn"]
    assert statement["Condition"] == {
        "ArnLike": {"aws:SourceArn": bucket_arn},
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
    }


def test_function_configuration_and_environment(mocks):
    build(_pipeline(schema_document={"type": "object"}, processor="transforms:normalise"))

    function = mocks.one("aws:lambda/function:Function").inputs
    assert function["runtime"] == "python3.13"
    assert function["architectures"] == ["arm64"]
    assert function["handler"] == "handler.app.lambda_handler"
    assert function["timeout"] == 60 and function["memorySize"] == 512
    assert function["loggingConfig"]["logFormat"] == "JSON"
    log_group = mocks.one("aws:cloudwatch/logGroup:LogGroup")
    assert function["loggingConfig"]["logGroup"] == log_group.inputs["name"]
    assert log_group.inputs["retentionInDays"] == 30
    env = function["environment"]["variables"]
    assert env[EnvVar.PIPELINE_NAME] == "orders"
    assert env[EnvVar.INPUT_PREFIX] == "incoming/orders/"
    assert env[EnvVar.OUTPUT_PREFIX] == "processed/incoming/orders/"
    assert env[EnvVar.DLQ_URL] == mocks.one("aws:sqs/queue:Queue", "orders-dlq").outputs["url"]
    assert env[EnvVar.STATE_TABLE] == mocks.one("aws:dynamodb/table:Table").outputs["name"]
    assert env[EnvVar.SCHEMA_FILE] == "filepipe_schema.json"
    assert env[EnvVar.PROCESSOR] == "transforms:normalise"
    assert set(mocks.dependencies_of(mocks.one("aws:lambda/function:Function"))) >= {
        "orders-logs",
        "orders-role-policy",
    }


def test_function_layers_are_powertools_and_the_bundled_dependencies(mocks, fake_pip):
    build(_pipeline())

    layers = mocks.one("aws:lambda/function:Function").inputs["layers"]
    dependencies = mocks.one("aws:lambda/layerVersion:LayerVersion")
    assert (
        layers[0]
        == "arn:aws:lambda:eu-west-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
    )
    assert layers[1] == dependencies.outputs["arn"]
    assert dependencies.inputs["compatibleArchitectures"] == ["arm64"]
    assert dependencies.inputs["compatibleRuntimes"] == ["python3.13"]
    (pip_call,) = fake_pip
    assert "manylinux2014_aarch64" in pip_call and pip_call[pip_call.index("--python-version") + 1] == "3.13"


def test_without_bundling_no_layer_is_built(mocks, fake_pip):
    build(_pipeline(bundle_dependencies=False, extra_layers=["arn:aws:lambda:eu-west-1:1:layer:mine:3"]))

    assert mocks.of_type("aws:lambda/layerVersion:LayerVersion") == []
    assert fake_pip == []
    assert (
        mocks.one("aws:lambda/function:Function").inputs["layers"][1]
        == "arn:aws:lambda:eu-west-1:1:layer:mine:3"
    )


def test_role_is_least_privilege_without_wildcards(mocks):
    build(_pipeline())

    document = policy(mocks.one("aws:iam/rolePolicy:RolePolicy"))
    bucket = mocks.one("aws:s3/bucket:Bucket").outputs["bucket"]
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["ReadInput"]["Resource"] == f"arn:aws:s3:::{bucket}/incoming/orders/*"
    assert statements["WriteOutput"]["Resource"] == f"arn:aws:s3:::{bucket}/processed/incoming/orders/*"
    assert statements["TrackState"]["Resource"] == mocks.one("aws:dynamodb/table:Table").outputs["arn"]
    assert statements["WriteLogs"]["Resource"].endswith(":log-stream:*")
    assert wildcard_findings(document) == []
    assume = policy(mocks.one("aws:iam/role:Role"), "assumeRolePolicy")
    assert assume["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_event_source_mapping_reports_batch_item_failures(mocks):
    build(_pipeline(batch_size=100, batching_window_seconds=5, maximum_concurrency=4))

    mapping = mocks.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["batchSize"] == 100 and mapping["maximumBatchingWindowInSeconds"] == 5
    assert mapping["scalingConfig"] == {"maximumConcurrency": 4}
    assert mapping["eventSourceArn"] == mocks.one("aws:sqs/queue:Queue", "orders-queue").outputs["arn"]
    assert mapping["enabled"] is True
    assert mocks.one("aws:sqs/queue:Queue", "orders-queue").inputs["visibilityTimeoutSeconds"] == 6 * 60 + 5


def test_state_table_is_on_demand_recoverable_and_expiring(mocks):
    build(_pipeline())

    table = mocks.one("aws:dynamodb/table:Table").inputs
    assert table["billingMode"] == "PAY_PER_REQUEST"
    assert table["hashKey"] == "pk" and "rangeKey" not in table
    assert table["pointInTimeRecovery"] == {"enabled": True}
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}
    # a sparse index: only items that carry `attention` are in it
    assert table["globalSecondaryIndexes"] == [
        {
            "name": "needs-attention",
            "hashKey": "attention",
            "rangeKey": "updated_at",
            "projectionType": "ALL",
        }
    ]


def test_state_table_can_be_turned_off(mocks):
    build(_pipeline(state_table=False))

    assert mocks.of_type("aws:dynamodb/table:Table") == []
    env = mocks.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    assert EnvVar.STATE_TABLE not in env


def test_alarms_watch_dlq_depth_age_errors_and_throttles(mocks):
    build(_pipeline())

    topic_arn = mocks.one("aws:sns/topic:Topic").outputs["arn"]
    alarms = {a.name: a.inputs for a in mocks.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    dlq = mocks.one("aws:sqs/queue:Queue", "orders-dlq").outputs["name"]
    queue = mocks.one("aws:sqs/queue:Queue", "orders-queue").outputs["name"]
    function = mocks.one("aws:lambda/function:Function").outputs["name"]
    expected = {
        "orders-dlq-depth": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            1,
            {"QueueName": dlq},
        ),
        "orders-queue-age": (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "Maximum",
            900,
            {"QueueName": queue},
        ),
        "orders-function-errors": ("AWS/Lambda", "Errors", "Sum", 1, {"FunctionName": function}),
        "orders-function-throttles": ("AWS/Lambda", "Throttles", "Sum", 1, {"FunctionName": function}),
    }
    assert set(alarms) == set(expected)
    for name, (namespace, metric, statistic, threshold, dimensions) in expected.items():
        alarm = alarms[name]
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == (namespace, metric, statistic)
        assert alarm["threshold"] == threshold and alarm["dimensions"] == dimensions
        assert alarm["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["treatMissingData"] == "notBreaching"
        assert alarm["alarmActions"] == [topic_arn] and alarm["okActions"] == [topic_arn]
    emails = sorted(
        s.inputs["endpoint"] for s in mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
    )
    assert emails == ["ops@example.com", "oncall@example.com"][::-1]


def test_dashboard_plots_the_pipelines_queues_and_function(mocks):
    build(_pipeline())

    dashboard = mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs
    body = json.loads(dashboard["dashboardBody"])
    assert dashboard["dashboardName"] == "filepipe-test-orders"
    metrics = [metric for widget in body["widgets"] for metric in widget["properties"]["metrics"]]
    dlq = mocks.one("aws:sqs/queue:Queue", "orders-dlq").outputs["name"]
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq] in metrics
    assert ["filepipe", "FilesProcessed", "pipeline", "orders", "service", "orders"] in metrics


def test_an_existing_topic_replaces_the_created_one(mocks):
    build(_pipeline(alert_topic_arn="arn:aws:sns:eu-west-1:123456789012:shared-alerts", alert_emails=[]))

    assert mocks.of_type("aws:sns/topic:Topic") == []
    alarm = mocks.one("aws:cloudwatch/metricAlarm:MetricAlarm", "orders-dlq-depth").inputs
    assert alarm["alarmActions"] == ["arn:aws:sns:eu-west-1:123456789012:shared-alerts"]


def test_customer_managed_key_encrypts_queues_topic_and_is_granted_to_the_role(mocks):
    build(_pipeline(encryption=Encryption.KMS))

    key = mocks.one("aws:kms/key:Key")
    services = {s["Principal"].get("Service") for s in policy(key)["Statement"]}
    assert {"s3.amazonaws.com", "cloudwatch.amazonaws.com"} <= services
    for queue in mocks.of_type("aws:sqs/queue:Queue"):
        assert queue.inputs["kmsMasterKeyId"] == key.outputs["arn"]
        assert "sqsManagedSseEnabled" not in queue.inputs
    assert mocks.one("aws:sns/topic:Topic").inputs["kmsMasterKeyId"] == key.outputs["arn"]
    statements = {s["Sid"]: s for s in policy(mocks.one("aws:iam/rolePolicy:RolePolicy"))["Statement"]}
    assert statements["UseQueueKey"]["Resource"] == key.outputs["arn"]


def test_eventbridge_mode_routes_through_a_rule(mocks):
    build(_pipeline(notification_mode=NotificationMode.EVENTBRIDGE))

    notification = mocks.one("aws:s3/bucketNotification:BucketNotification").inputs
    rule = mocks.one("aws:cloudwatch/eventRule:EventRule")
    target = mocks.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    queue = mocks.one("aws:sqs/queue:Queue", "orders-queue").outputs
    assert notification["eventbridge"] is True
    assert notification.get("queues", []) == []
    pattern = json.loads(rule.inputs["eventPattern"])
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [
        {"wildcard": f"incoming/orders/*{suffix}"} for suffix in (".json", ".json.gz", ".json.zst")
    ]
    assert target["arn"] == queue["arn"] and target["rule"] == rule.outputs["name"]
    statement = policy(mocks.one("aws:sqs/queuePolicy:QueuePolicy"))["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": rule.outputs["arn"]}


def test_an_existing_bucket_is_used_not_created(mocks):
    build(_pipeline(bucket_name="landing-zone", take_over_bucket_notification=True))

    assert mocks.of_type("aws:s3/bucket:Bucket") == []
    assert mocks.one("aws:s3/bucketNotification:BucketNotification").inputs["bucket"] == "landing-zone"


def test_outputs_are_registered(mocks):
    build(_pipeline())

    outputs = mocks.component_outputs["orders"]
    assert set(outputs) >= {
        "bucket", "queueUrl", "queueArn", "dlqUrl", "dlqArn", "functionName", "functionArn",
        "topicArn", "tableName", "alarmNames", "dashboardName",
    }  # fmt: skip
    assert outputs["queueUrl"] == mocks.one("aws:sqs/queue:Queue", "orders-queue").outputs["url"]
    assert len(outputs["alarmNames"]) == 4


def test_invalid_inputs_register_nothing(mocks):
    with pytest.raises(PipelineConfigError, match="output_prefix"):
        build(_pipeline(output_prefix="incoming/orders/done/"))

    assert mocks.resources == []


def test_the_function_environment_is_what_the_handler_parses(mocks):
    # GIVEN a pipeline with non-default handler settings
    build(
        _pipeline(
            input_format=FileFormat.CSV, output_format="ndjson", max_file_bytes=1024, timeout_seconds=30
        )
    )

    # WHEN the handler reads the environment the component set
    env = mocks.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    settings = HandlerSettings.from_env(env)

    # THEN both sides agree
    assert settings.pipeline_name == "orders"
    assert (settings.input_format, settings.output_format) == (FileFormat.CSV, OutputFormat.NDJSON)
    assert settings.max_file_bytes == 1024
    assert settings.dlq_url == mocks.one("aws:sqs/queue:Queue", "orders-dlq").outputs["url"]
    assert settings.timeout_margin_ms < 30_000
    assert settings.metrics_namespace == "filepipe"


def test_a_program_declares_under_mocks_after_asyncio_run_left_no_event_loop(fake_pip):
    # GIVEN a thread that asyncio.run() left without a current event loop (another test, a user's code)
    asyncio.run(asyncio.sleep(0))

    # WHEN mocks are installed and a pipeline declared THEN it registers as usual
    recording = RecordingMocks()
    recording.install(project="filepipe", stack="test")
    build(
        lambda: FileProcessingPipeline(
            "orders", pipeline_args({"input_prefix": "in/", "bundle_dependencies": False})
        )
    )

    assert recording.one("aws:lambda/function:Function")
