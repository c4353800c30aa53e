"""The stack program (``__main__.py``) with the dev stack's real config, under mocks."""

import json
import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest

from filepipe import PipelineConfigError
from filepipe.handler.settings import (
    FileFormat,
    HandlerSettings,
    InputCompression,
    OutputCompression,
    OutputFormat,
    ParquetCompression,
)
from filepipe.local.capture import CaptureError, load_stack_config
from filepipe.stack_config import stack_config_from_mapping
from tests.components.conftest import build

REPO = Path(__file__).resolve().parents[2]


def _run_stack_program(config):
    pulumi.runtime.set_all_config(config)
    exports: dict[str, Any] = {}

    def program():
        runpy.run_path(str(REPO / "__main__.py"))
        stack_outputs = pulumi.runtime.get_root_resource().outputs  # type: ignore[union-attr]
        return pulumi.Output.from_input(dict(stack_outputs)).apply(exports.update)

    build(program)
    return exports


def test_dev_stack_creates_two_pipelines_on_one_bucket(mocks, monkeypatch):
    # GIVEN the dev stack's config, read as the Pulumi CLI would hand it to the program
    monkeypatch.chdir(REPO)
    _, _, config = load_stack_config(REPO, "dev", local_overrides=False)

    # WHEN the stack program runs
    exports = _run_stack_program(config)

    # THEN one bucket, one notification with both pipelines' filters, and every output exported
    assert len(mocks.of_type("aws:s3/bucket:Bucket")) == 1
    assert len(mocks.of_type("filepipe:index:FileProcessingPipeline")) == 2
    notification = mocks.one("aws:s3/bucketNotification:BucketNotification").inputs
    assert sorted((q["filterPrefix"], q["filterSuffix"]) for q in notification["queues"]) == [
        ("incoming/invoices/", ".csv"),
        ("incoming/transactions/", ".json"),
    ]
    assert set(exports) == {"transactions", "invoices"}
    bucket = mocks.one("aws:s3/bucket:Bucket").outputs["bucket"]
    for name, outputs in exports.items():
        assert outputs["bucket"] == bucket
        assert outputs["queueUrl"] == mocks.one("aws:sqs/queue:Queue", f"data-{name}-queue").outputs["url"]
        assert outputs["dlqArn"] == mocks.one("aws:sqs/queue:Queue", f"data-{name}-dlq").outputs["arn"]
        assert outputs["functionName"] and outputs["topicArn"] and outputs["tableName"]
        assert len(outputs["alarmNames"]) == 4 and outputs["dashboardName"] == f"filepipe-test-data-{name}"
    functions = {
        f.name: f.inputs["environment"]["variables"] for f in mocks.of_type("aws:lambda/function:Function")
    }
    assert functions["data-invoices-function"]["FILEPIPE_INPUT_FORMAT"] == "csv"
    assert functions["data-invoices-function"]["FILEPIPE_OUTPUT_FORMAT"] == "ndjson"
    assert functions["data-invoices-function"]["FILEPIPE_INPUT_COMPRESSION"] == "auto"
    assert functions["data-invoices-function"]["FILEPIPE_OUTPUT_COMPRESSION"] == "none"
    assert functions["data-transactions-function"]["FILEPIPE_SCHEMA_FILE"] == "filepipe_schema.json"
    subscriptions = {
        s.inputs["endpoint"] for s in mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
    }
    assert subscriptions == {"data-platform-alerts@example.com"}
    assert mocks.one("aws:s3/bucket:Bucket").inputs["tags"] == {"environment": "dev"}


def test_routing_stack_routes_five_pipelines_through_one_topic(mocks, monkeypatch):
    # GIVEN the routing stack's config (mode and size bounds are pipeline keys like any other)
    monkeypatch.chdir(REPO)
    _, _, config = load_stack_config(REPO, "routing", local_overrides=False)

    # WHEN the stack program runs
    exports = _run_stack_program(config)

    # THEN one bucket notifies one topic, and each pipeline's queue subscribes with its own route
    assert {"json", "large-json", "csv", "archive-json", "archive-csv"} <= set(exports)
    topic = mocks.one("aws:sns/topic:Topic", "data-routes")
    notification = mocks.one("aws:s3/bucketNotification:BucketNotification").inputs
    assert not notification.get("queues")
    assert {(t["filterPrefix"], t["filterSuffix"], t["topicArn"]) for t in notification["topics"]} == {
        ("incoming/", ".json", topic.outputs["arn"]),
        ("incoming/", ".csv", topic.outputs["arn"]),
    }
    routes = {
        s.name: json.loads(s.inputs["filterPolicy"])["Records"]["s3"]["object"]
        for s in mocks.of_type("aws:sns/topicSubscription:TopicSubscription")
        if s.inputs["protocol"] == "sqs"
    }
    assert len(routes) == 5
    assert routes["data-json-subscription"]["size"] == [{"numeric": ["<", 16 * 1024 * 1024]}]
    assert routes["data-large-json-subscription"]["size"] == [{"numeric": [">=", 16 * 1024 * 1024]}]
    assert "size" not in routes["data-archive-json-subscription"]
    memory = {f.name: f.inputs["memorySize"] for f in mocks.of_type("aws:lambda/function:Function")}
    assert memory["data-large-json-function"] == 3008 and memory["data-json-function"] == 512


def test_formats_stack_builds_one_pipeline_per_format_capability(mocks, monkeypatch):
    # GIVEN the formats stack's config
    monkeypatch.chdir(REPO)
    _, _, config = load_stack_config(REPO, "formats", local_overrides=False)

    # WHEN the stack program runs
    exports = _run_stack_program(config)

    # THEN each pipeline's function carries the handler settings of its capability
    assert {"orders", "orders-gzip", "events", "archives", "readings"} <= set(exports)
    env = {
        f.name.removeprefix("data-").removesuffix("-function"): f.inputs["environment"]["variables"]
        for f in mocks.of_type("aws:lambda/function:Function")
    }
    settings = {name: HandlerSettings.from_env(variables) for name, variables in env.items()}
    gzip_in, gzip_out, zstd, archives = (settings[n] for n in ("orders", "orders-gzip", "events", "archives"))
    assert (gzip_in.input_format, gzip_in.input_compression, gzip_in.output_compression) == (
        FileFormat.CSV,
        InputCompression.AUTO,
        OutputCompression.NONE,
    )
    assert gzip_in.max_file_bytes == 256 * 1024 * 1024
    assert (gzip_out.output_format, gzip_out.output_compression) == (
        OutputFormat.NDJSON,
        OutputCompression.GZIP,
    )
    assert (zstd.input_format, zstd.output_compression) == (FileFormat.NDJSON, OutputCompression.ZSTD)
    assert archives.file_processor == "zip_members:zip_of_csvs"
    assert archives.input_compression is InputCompression.NONE
    assert archives.processor is None and archives.schema_file is None
    readings = settings["readings"]
    assert (readings.output_format, readings.parquet_compression) == (
        OutputFormat.PARQUET,
        ParquetCompression.ZSTD,
    )
    assert readings.schema_file is not None
    # AND only the Parquet pipeline carries pyarrow: its layers are the others' plus its own
    layers = {f.name: f.inputs.get("layers", []) for f in mocks.of_type("aws:lambda/function:Function")}
    assert len(layers["data-readings-function"]) == len(layers["data-orders-function"]) + 1
    # AND the bucket notifies each pipeline of exactly its suffixes, compressed forms included
    notification = mocks.one("aws:s3/bucketNotification:BucketNotification").inputs
    assert sorted((q["filterPrefix"], q["filterSuffix"]) for q in notification["queues"]) == [
        ("incoming/archives/", ".zip"),
        ("incoming/events/", ".ndjson"),
        ("incoming/events/", ".ndjson.zst"),
        ("incoming/orders-gzip/", ".csv"),  # its default suffixes: plain and compressed CSV
        ("incoming/orders-gzip/", ".csv.gz"),
        ("incoming/orders-gzip/", ".csv.zst"),
        ("incoming/orders/", ".csv"),
        ("incoming/orders/", ".csv.gz"),
        ("incoming/readings/", ".ndjson"),
        ("incoming/readings/", ".ndjson.gz"),
    ]
    assert exports["orders"]["inputSuffixes"] == [".csv", ".csv.gz"]
    # AND the whole-file processor's module is in its function's code archive, at the archive root
    archive = mocks.one("aws:lambda/function:Function", "data-archives-function").inputs["code"]
    assert "zip_members.py" in archive.assets
    loaded = runpy.run_path(archive.assets["zip_members.py"].path)
    assert callable(loaded["zip_of_csvs"])


def test_pipelines_naming_an_existing_bucket_get_their_own_group(mocks, monkeypatch):
    monkeypatch.chdir(REPO)
    config = {
        "filepipe:pipelines": json.dumps(
            [
                {"name": "orders", "inputPrefix": "incoming/orders/"},
                {
                    "name": "legacy",
                    "inputPrefix": "drop/",
                    "bucket": "legacy-landing",
                    "takeOverBucketNotification": True,
                },
            ]
        ),
        "filepipe:bundleDependencies": "false",
    }

    exports = _run_stack_program(config)

    assert exports["legacy"]["bucket"] == "legacy-landing"
    assert len(mocks.of_type("aws:s3/bucketNotification:BucketNotification")) == 2
    assert mocks.of_type("aws:lambda/layerVersion:LayerVersion") == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param({}, "filepipe:pipelines must be a non-empty list", id="no-pipelines"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "timeoutSecs": 5}]}, "unknown setting 'timeoutSecs'", id="typo-in-setting"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "timeoutSeconds": "60"}]}, "timeoutSeconds must be a whole number", id="string-number"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "inputFormat": "xml"}]}, "inputFormat='xml'", id="unknown-format"),
        pytest.param({"pipelines": [{"name": "Bad Name", "inputPrefix": "in/"}]}, "name='Bad Name'", id="bad-name"),
        pytest.param({"pipelines": [{"name": "a"}]}, "inputPrefix is required", id="no-prefix"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/"}], "alertEmail": "x@y"}, "filepipe:alertEmail", id="unknown-stack-key"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/a/"}, {"name": "a", "inputPrefix": "in/b/"}]}, "used twice", id="duplicate-name"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/a/"}, {"name": "a", "inputPrefix": "in/b/", "bucket": "x", "takeOverBucketNotification": True}]}, "unique in the stack", id="same-name-on-two-buckets"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "bucket": "landing"}]}, "takeOverBucketNotification: true", id="existing-bucket-not-taken-over"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "takeOverBucketNotification": True}]}, "applies only to a pipeline with bucket", id="take-over-without-bucket"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/"}], "noncurrentVersionExpirationDays": "30"}, "noncurrentVersionExpirationDays must be a whole number", id="lifecycle-days-string"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "inputExpirationDays": "30"}]}, "inputExpirationDays must be a whole number", id="optional-int-string"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "notificationMode": "sns", "routeMinBytes": "1MB"}]}, "routeMinBytes must be a whole number", id="size-bound-string"),
        pytest.param({"pipelines": [{"name": "a", "inputPrefix": "in/", "routingTopicArn": "arn:aws:sns:eu-west-1:1:t"}]}, "unknown setting 'routingTopicArn'", id="routing-topic-is-the-programs"),
    ],
)  # fmt: skip
def test_bad_stack_config_is_rejected_with_a_clear_message(config, message):
    with pytest.raises(PipelineConfigError) as error:
        stack_config_from_mapping(config)

    assert message in str(error.value)


def test_a_schema_in_the_config_is_a_path_or_the_document_itself():
    config = stack_config_from_mapping(
        {
            "pipelines": [
                {"name": "a", "inputPrefix": "in/a/", "schema": "schemas/transaction.schema.json"},
                {"name": "b", "inputPrefix": "in/b/", "schema": {"type": "object", "required": ["id"]}},
            ]
        }
    )

    pipelines = config.groups["data"]["pipelines"]
    assert pipelines["a"].get("schema") == "schemas/transaction.schema.json"
    assert "schema_document" not in pipelines["a"]
    assert pipelines["b"].get("schema_document") == {"type": "object", "required": ["id"]}
    assert "schema" not in pipelines["b"]


def test_defaults_apply_to_every_pipeline_unless_overridden():
    config = stack_config_from_mapping(
        {
            "defaults": {"timeoutSeconds": 120, "memoryMb": 1024},
            "pipelines": [
                {"name": "a", "inputPrefix": "in/a/"},
                {"name": "b", "inputPrefix": "in/b/", "timeoutSeconds": 30},
            ],
            "alertEmails": ["ops@example.com"],
        }
    )

    pipelines = config.groups["data"]["pipelines"]
    assert (pipelines["a"]["timeout_seconds"], pipelines["a"]["memory_mb"]) == (120, 1024)
    assert (pipelines["b"]["timeout_seconds"], pipelines["b"]["memory_mb"]) == (30, 1024)
    assert pipelines["b"]["alert_emails"] == ("ops@example.com",)


def test_secrets_in_a_stack_file_are_refused(tmp_path):
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  filepipe:token:\n    secure: AAAB\n")

    (tmp_path / "Pulumi.yaml").write_text("name: filepipe\nruntime: python\n")

    with pytest.raises(CaptureError, match="secret"):
        load_stack_config(tmp_path, "prod")


def test_the_longest_pipeline_name_on_the_longest_bucket_name_fits_every_aws_limit(mocks, monkeypatch):
    # GIVEN the longest pipeline name the stack config accepts, on an existing bucket with a 63-character name
    monkeypatch.chdir(REPO)
    name = "p" + "x" * 39
    bucket = "b" * 63
    config = {
        "filepipe:pipelines": json.dumps(
            [
                {"name": name, "inputPrefix": "in/", "bucket": bucket, "takeOverBucketNotification": True},
                {"name": "a" + "y" * 39, "inputPrefix": "in/", "notificationMode": "eventbridge"},
            ]
        ),
        "filepipe:bundleDependencies": "false",
    }

    # WHEN the stack program runs (it validates every name AWS derives from the logical names)
    exports = _run_stack_program(config)

    # THEN both pipelines deploy: the existing bucket's group has a short stable name
    assert exports[name]["bucket"] == bucket
    functions = [f.name for f in mocks.of_type("aws:lambda/function:Function")]
    assert all(len(function) + 8 <= 64 for function in functions), functions


def test_the_created_buckets_lifecycle_is_stack_config(mocks, monkeypatch):
    monkeypatch.chdir(REPO)
    config = {
        "filepipe:pipelines": json.dumps([{"name": "a", "inputPrefix": "in/a/", "inputExpirationDays": 90}]),
        "filepipe:abortIncompleteMultipartUploadDays": "2",
        "filepipe:noncurrentVersionExpirationDays": "null",
        "filepipe:bundleDependencies": "false",
    }

    _run_stack_program(config)

    lifecycle = mocks.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs
    rules = {rule["id"]: rule for rule in lifecycle["rules"]}
    assert set(rules) == {"abort-incomplete-multipart-uploads", "inputs-a"}
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {
        "daysAfterInitiation": 2
    }
    assert rules["inputs-a"]["expiration"] == {"days": 90}
