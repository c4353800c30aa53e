"""What only `pulumi up` (or a deployed pipeline) would reveal: dimensions, log levels, names, layers."""

import json
import logging
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.shared.constants import LAMBDA_ADVANCED_LOGGING_LEVELS

from filepipe import (
    Encryption,
    FileProcessingPipeline,
    PipelineArgs,
    PipelineConfigError,
    PipelineGroup,
    PipelineGroupArgs,
)
from filepipe.handler.settings import METRICS_NAMESPACE, EnvVar, HandlerSettings, Metric
from tests.components.conftest import build, pipeline_args, policy, use_stack

FUNCTION = "aws:lambda/function:Function"


def _pipeline(name="orders", **overrides):
    args = {"input_prefix": "incoming/orders/"}
    return lambda: FileProcessingPipeline(name, pipeline_args({**args, **overrides}))


def _function_env(mocks):
    return mocks.one(FUNCTION).inputs["environment"]["variables"]


def _emitted_dimensions(settings: HandlerSettings) -> tuple[str, dict[str, str]]:
    """Namespace and dimensions of a metric emitted the way the handler emits it (handler/batch.py)."""
    from filepipe.handler.settings import PIPELINE_DIMENSION

    metrics = EphemeralMetrics(
        namespace=settings.metrics_namespace, service=settings.service_name or settings.pipeline_name
    )
    metrics.add_dimension(PIPELINE_DIMENSION, settings.pipeline_name)
    metrics.add_metric(name=Metric.FILES_PROCESSED.value, unit=MetricUnit.Count, value=1)
    emf: dict[str, Any] = dict(metrics.serialize_metric_set())
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    (dimension_set,) = directive["Dimensions"]
    return directive["Namespace"], {name: emf[name] for name in dimension_set}


def test_the_dashboard_queries_exactly_the_dimension_set_the_handler_emits(mocks):
    # GIVEN a pipeline whose name differs from its resource name
    build(_pipeline(pipeline_name="orders-eu"))

    # WHEN Powertools emits a metric with the settings the function gets
    namespace, emitted = _emitted_dimensions(HandlerSettings.from_env(_function_env(mocks)))

    # THEN every handler metric on the dashboard names that namespace and exactly that dimension set
    body = json.loads(mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    queries = [m for w in body["widgets"] for m in w["properties"]["metrics"] if m[0] == METRICS_NAMESPACE]
    assert len(queries) == 6
    for query in queries:
        assert query[0] == namespace
        assert dict(zip(query[2::2], query[3::2], strict=True)) == emitted


@pytest.mark.parametrize(
    ("log_level", "lambda_level", "python_level"),
    [
        pytest.param("debug", "DEBUG", "DEBUG", id="debug-lowercase"),
        pytest.param("INFO", "INFO", "INFO", id="info"),
        pytest.param("WARNING", "WARN", "WARNING", id="python-warning"),
        pytest.param("WARN", "WARN", "WARNING", id="lambda-warn"),
        pytest.param("ERROR", "ERROR", "ERROR", id="error"),
        pytest.param("CRITICAL", "FATAL", "CRITICAL", id="python-critical"),
        pytest.param("FATAL", "FATAL", "CRITICAL", id="lambda-fatal"),
    ],
)
def test_log_level_reaches_lambda_and_powertools_each_in_its_own_names(
    mocks, log_level, lambda_level, python_level
):
    # GIVEN a log level in Python's or Lambda's spelling
    build(_pipeline(log_level=log_level))

    # WHEN the function is configured
    function = mocks.one(FUNCTION).inputs
    configured = function["loggingConfig"]["applicationLogLevel"]
    powertools = function["environment"]["variables"][EnvVar.POWERTOOLS_LOG_LEVEL]

    # THEN Lambda gets its name, Powertools its own, and both mean the same level (Powertools' own table)
    assert (configured, powertools) == (lambda_level, python_level)
    lambda_as_python = str(LAMBDA_ADVANCED_LOGGING_LEVELS[configured])
    assert logging.getLevelName(lambda_as_python) == logging.getLevelName(powertools)


def test_a_log_level_neither_side_knows_is_rejected(mocks):
    with pytest.raises(PipelineConfigError, match="log_level='TRACE'"):
        build(_pipeline(log_level="TRACE"))

    assert mocks.resources == []


@pytest.mark.parametrize(
    ("reserved", "maximum", "expected"),
    [
        pytest.param(5, None, 5, id="derived-from-reservation"),
        pytest.param(3000, None, 1000, id="capped-at-aws-maximum"),
        pytest.param(10, 4, 4, id="explicit-kept"),
        pytest.param(None, None, None, id="unreserved-unlimited"),
    ],
)
def test_the_pollers_never_outnumber_the_reserved_concurrency(mocks, reserved, maximum, expected):
    # GIVEN a reservation, with or without an explicit maximum concurrency
    build(_pipeline(reserved_concurrency=reserved, maximum_concurrency=maximum))

    # THEN the mapping's scaling never exceeds the reservation (throttled receives would park files)
    mapping = mocks.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    assert (mapping.get("scalingConfig") or {}).get("maximumConcurrency") == expected


def test_powertools_layer_comes_from_its_public_ssm_parameter(mocks):
    # GIVEN an x86_64 pipeline on Python 3.12 pinned to a Powertools release
    build(_pipeline(architecture="x86_64", python_runtime="python3.12", powertools_version="3.22.1"))

    # THEN the layer is the value of the documented parameter for that combination
    (parameter,) = [
        args["name"] for token, args in mocks.invokes if token == "aws:ssm/getParameter:getParameter"
    ]
    assert parameter == "/aws/service/powertools/python/x86_64/python3.12/3.22.1"
    assert (
        mocks.one(FUNCTION)
        .inputs["layers"][0]
        .endswith(":layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:27")
    )


def test_outside_the_commercial_partition_the_layer_must_be_given(mocks):
    # GIVEN an account in the China partition, where Powertools publishes no SSM parameter
    mocks.partition = "aws-cn"

    # WHEN a pipeline does not name the layer, THEN preview fails with the fix (the engine reports an error
    # raised while resolving an output as a ValueError that carries the message)
    with pytest.raises(ValueError, match="set powertools_layer_arn"):
        build(_pipeline())


def test_an_explicit_powertools_layer_is_used_as_given(mocks):
    arn = "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:37"
    mocks.partition = "aws-cn"

    build(_pipeline(powertools_layer_arn=arn))

    assert mocks.one(FUNCTION).inputs["layers"][0] == arn
    assert all(token != "aws:ssm/getParameter:getParameter" for token, _ in mocks.invokes)


def test_an_existing_bucket_keeps_its_notifications_unless_taken_over(mocks):
    # GIVEN a pipeline on an existing bucket that did not agree to replace its notification configuration
    with pytest.raises(PipelineConfigError, match="take_over_bucket_notification"):
        build(_pipeline(bucket_name="landing-zone"))

    # THEN nothing is registered; leaving the notification to its owner is fine
    assert mocks.resources == []
    build(_pipeline(bucket_name="landing-zone", manage_bucket_notification=False))
    assert mocks.of_type("aws:s3/bucketNotification:BucketNotification") == []


def test_a_group_on_an_existing_bucket_must_take_over_its_notification(mocks):
    group = PipelineGroupArgs(
        pipelines={"orders": PipelineArgs(input_prefix="in/")}, bucket_name="landing-zone"
    )

    with pytest.raises(PipelineConfigError, match="group 'data'.*take_over_bucket_notification"):
        build(lambda: PipelineGroup("data", group))


def test_the_created_bucket_expires_what_versioning_would_keep_forever(mocks):
    # GIVEN a pipeline that also expires and tiers its inputs
    build(_pipeline(input_expiration_days=400, input_transition_days=30))

    # THEN the bucket's lifecycle aborts stale uploads, expires old versions and handles the inputs
    lifecycle = mocks.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs
    rules = {rule["id"]: rule for rule in lifecycle["rules"]}
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 7
    }
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert rules["inputs-orders"]["filter"] == {"prefix": "incoming/orders/"}
    assert rules["inputs-orders"]["expiration"] == {"days": 400}
    assert rules["inputs-orders"]["transitions"] == [{"days": 30, "storageClass": "STANDARD_IA"}]
    assert all(rule["status"] == "Enabled" for rule in rules.values())
    assert lifecycle["bucket"] == mocks.one("aws:s3/bucket:Bucket").outputs["bucket"]


def test_a_group_puts_its_pipelines_input_rules_on_its_bucket(mocks):
    pipelines = {
        "orders": PipelineArgs(input_prefix="in/orders/", input_expiration_days=30),
        "invoices": PipelineArgs(input_prefix="in/invoices/"),
    }

    build(lambda: PipelineGroup("data", PipelineGroupArgs(pipelines=pipelines)))

    lifecycle = mocks.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs
    assert [(r["id"], r["filter"]) for r in lifecycle["rules"] if r["id"].startswith("inputs-")] == [
        ("inputs-orders", {"prefix": "in/orders/"})
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"input_expiration_days": 10}, "input_expiration_days=10 would delete inputs", id="inputs-expire-before-dlq"),
        pytest.param({"input_transition_days": 10}, "input_transition_days=10 is below 30", id="ia-too-early"),
        pytest.param({"input_transition_days": 1, "input_transition_storage_class": "REDUCED"}, "input_transition_storage_class='REDUCED'", id="unknown-class"),
        pytest.param({"input_expiration_days": 40, "input_transition_days": 60}, "must be later than", id="expire-before-transition"),
        pytest.param({"bucket_name": "landing", "take_over_bucket_notification": True, "input_expiration_days": 30}, "need a bucket this pipeline creates", id="existing-bucket"),
    ],
)  # fmt: skip
def test_lifecycle_settings_s3_would_refuse_are_rejected(mocks, overrides, message):
    with pytest.raises(PipelineConfigError, match="pipeline 'orders'") as error:
        build(_pipeline(**overrides))

    assert message in str(error.value)
    assert mocks.resources == []


def test_account_wide_names_carry_project_and_stack_and_survive_a_dotted_stack(mocks):
    # GIVEN a project and a stack name with a '.', which dashboards, layers and key aliases refuse
    use_stack(mocks, "acme", "prod.eu")

    # WHEN a KMS-encrypted pipeline is built
    build(_pipeline(encryption=Encryption.KMS))

    # THEN the names start with project and stack, use only allowed characters and differ from 'prod-eu'
    dashboard = mocks.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardName"]
    layer = mocks.one("aws:lambda/layerVersion:LayerVersion").inputs["layerName"]
    alias = mocks.one("aws:kms/alias:Alias").inputs["name"]
    log_group = mocks.one("aws:cloudwatch/logGroup:LogGroup").inputs["name"]
    assert dashboard.startswith("acme-prod-eu-orders-") and "." not in dashboard
    assert layer.startswith("acme-prod-eu-orders-dependencies") and "." not in layer
    assert alias.startswith("alias/acme/prod-eu/orders") and "." not in alias
    assert log_group == "/aws/lambda/acme-prod.eu-orders"
    use_stack(mocks, "acme", "prod-eu")
    build(_pipeline(name="other"))
    assert (
        mocks.one("aws:cloudwatch/dashboard:Dashboard", "other-dashboard").inputs["dashboardName"]
        != dashboard
    )


def test_a_name_aws_would_refuse_is_an_error_naming_the_pipeline(mocks):
    # GIVEN a pipeline whose resource name leaves no room for Pulumi's suffix in a 64-character function name
    name = "ingest-" + "x" * 50

    # WHEN it is built, THEN it fails before anything registers, naming pipeline, resource and limit
    with pytest.raises(PipelineConfigError, match=f"pipeline '{name}'.*lambda function.*AWS allows 64"):
        build(_pipeline(name=name))
    assert mocks.resources == []


def test_the_table_key_is_usable_by_the_function(mocks):
    # GIVEN a KMS-encrypted pipeline: the state table uses the same customer-managed key
    build(_pipeline(encryption=Encryption.KMS))

    # THEN the role may Decrypt with it: DynamoDB decrypts the table key on behalf of the caller
    key_arn = mocks.one("aws:kms/key:Key").outputs["arn"]
    assert mocks.one("aws:dynamodb/table:Table").inputs["serverSideEncryption"]["kmsKeyArn"] == key_arn
    statements = policy(mocks.one("aws:iam/rolePolicy:RolePolicy"))["Statement"]
    assert any(
        statement["Resource"] == key_arn and "kms:Decrypt" in statement["Action"] for statement in statements
    )
