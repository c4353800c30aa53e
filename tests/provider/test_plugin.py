"""The plugin as the engine runs it: started like the language host starts it, spoken to over gRPC.

``GetPluginInfo`` and ``GetSchema`` are what ``pulumi package add`` asks; ``Construct`` is what the engine
sends when a program in any language declares one of the components. The resource monitor is the
project's Pulumi mocks served over gRPC, so every child the component registers is recorded.
"""

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
import yaml
from google.protobuf import empty_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import provider_pb2

from filepipe import plugin as filepipe_plugin
from filepipe.local.capture import StackMocks
from tests.provider.engine import Plugin, construct, engine, mock_monitor, run_plugin

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "filepipe:index:FileProcessingPipeline"
GROUP = "filepipe:index:PipelineGroup"
BUCKET = "filepipe:index:PipelineBucket"
OFFLINE = {"bundleDependencies": False}
"""No dependency layer: the plugin would run pip against the package index to build it."""


@pytest.fixture(scope="module")
def plugin(e2e_tier: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plugin]:
    stderr_path = tmp_path_factory.mktemp("plugin") / "stderr.log"
    with (
        stderr_path.open("wb") as stderr,
        engine() as (engine_address, _),
        run_plugin(sys.executable, REPO / "provider", engine_address, stderr) as running,
    ):
        yield running


def _parents(mocks: StackMocks) -> dict[tuple[str, str], tuple[str, str]]:
    """Each registration's ``(type, name)`` -> its parent's (``("", "")`` for the stack's children)."""
    by_urn = {resource.urn: (resource.type, resource.name) for resource in mocks.registrations}
    return {(r.type, r.name): by_urn.get(r.parent or "", ("", "")) for r in mocks.registrations}


def test_the_plugin_reports_filepipes_version(plugin):
    info = plugin.stub.GetPluginInfo(empty_pb2.Empty())

    assert info.version == filepipe_plugin.version()


def test_the_plugin_serves_the_schema_the_analyzer_infers(plugin):
    response = plugin.stub.GetSchema(provider_pb2.GetSchemaRequest(version=0))

    assert json.loads(response.schema) == filepipe_plugin.schema()


def test_a_pipeline_is_constructed_with_its_children_parented_and_its_outputs_returned(plugin):
    with mock_monitor() as (address, mocks):
        # WHEN a program (here: the engine's request for it) declares a pipeline, integers as floats
        outputs = construct(
            plugin,
            address,
            PIPELINE,
            "orders",
            {"inputPrefix": "incoming/orders/", "memoryMb": 1024, **OFFLINE},
        )

    # THEN the component and its children were registered, each child under the pipeline
    types = {resource.name: resource.type for resource in mocks.registrations}
    assert types["orders"] == PIPELINE
    assert types["orders-queue"] == "aws:sqs/queue:Queue" and types["orders-dlq"] == "aws:sqs/queue:Queue"
    assert types["orders-function"] == "aws:lambda/function:Function"
    parents = _parents(mocks)
    assert parents[PIPELINE, "orders"] == ("", "")  # the stack's child, as the request asked
    pipeline = (PIPELINE, "orders")
    assert (
        parents["aws:sqs/queue:Queue", "orders-queue"]
        == parents["aws:sqs/queue:Queue", "orders-dlq"]
        == pipeline
    )
    assert parents["aws:lambda/function:Function", "orders-function"] == pipeline
    assert parents[BUCKET, "orders-bucket"] == pipeline
    assert parents["aws:s3/bucket:Bucket", "orders-bucket"] == (BUCKET, "orders-bucket")
    function = next(r for r in mocks.registrations if r.name == "orders-function")
    assert function.inputs["memorySize"] == 1024 and function.inputs["layers"]
    # AND the outputs the schema promises came back, with the mocks' values
    queue = next(r for r in mocks.registrations if r.name == "orders-queue")
    assert outputs["urn"].endswith("filepipe:index:FileProcessingPipeline::orders")
    assert outputs["queueUrl"] == queue.outputs["url"]
    assert outputs["functionName"] == function.outputs["name"]
    assert (
        outputs["inputSuffixes"] == [".json", ".json.gz", ".json.zst"]
        and outputs["outputPrefix"] == "processed/incoming/orders/"
    )
    assert len(outputs["alarmNames"]) == 4
    assert "breakerTableName" not in outputs


def test_a_group_builds_its_pipelines_on_one_bucket(plugin):
    with mock_monitor() as (address, mocks):
        outputs = construct(
            plugin,
            address,
            GROUP,
            "data",
            {
                "pipelines": {
                    "orders": {"inputPrefix": "incoming/orders/", **OFFLINE},
                    "invoices": {"inputPrefix": "incoming/invoices/", "inputFormat": "csv", **OFFLINE},
                }
            },
        )

    parents = _parents(mocks)
    group = (GROUP, "data")
    assert parents[PIPELINE, "data-orders"] == parents[PIPELINE, "data-invoices"] == group
    assert parents[BUCKET, "data-bucket"] == group
    assert parents["aws:sqs/queue:Queue", "data-orders-queue"] == (PIPELINE, "data-orders")
    assert [r.name for r in mocks.registrations if r.type == "aws:s3/bucket:Bucket"] == ["data-bucket"]
    assert [
        r.name for r in mocks.registrations if r.type == "aws:s3/bucketNotification:BucketNotification"
    ] == ["data-notification"]
    assert sorted(outputs["pipelineOutputs"]) == ["invoices", "orders"]
    assert outputs["pipelineOutputs"]["invoices"]["inputSuffixes"] == [".csv", ".csv.gz", ".csv.zst"]
    assert outputs["bucketName"] == next(
        r.outputs["bucket"] for r in mocks.registrations if r.type == "aws:s3/bucket:Bucket"
    )


def test_a_bucket_is_constructed_hardened(plugin):
    with mock_monitor() as (address, mocks):
        outputs = construct(plugin, address, BUCKET, "landing", {"noncurrentVersionExpirationDays": 60})

    parents = _parents(mocks)
    children = {typ for (typ, _), parent in parents.items() if parent == (BUCKET, "landing")}
    assert {
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    } <= children
    bucket = next(r for r in mocks.registrations if r.type == "aws:s3/bucket:Bucket")
    assert outputs["bucketName"] == bucket.outputs["bucket"] and outputs["arn"] == bucket.outputs["arn"]


def _refused(plugin: Plugin, type_token: str, inputs: dict[str, Any]) -> grpc.RpcError:
    with mock_monitor() as (address, mocks), pytest.raises(grpc.RpcError) as error:
        construct(plugin, address, type_token, "orders", inputs)
    assert mocks.registrations == []
    return error.value


@pytest.mark.parametrize(
    ("type_token", "inputs", "field"),
    [
        pytest.param(PIPELINE, {"memoryMb": 1024}, "inputPrefix", id="missing-input-prefix"),
        pytest.param(GROUP, {}, "pipelines", id="missing-pipelines"),
        pytest.param(PIPELINE, {"inputPrefix": "in/", "inputFormat": "xml"}, "inputFormat", id="bad-enum"),
        pytest.param(
            GROUP, {"pipelines": {"a": {"inputPrefix": "in/", "architecture": "sparc"}}}, "pipelines.a.architecture",
            id="bad-enum-in-a-member",
        ),
        pytest.param(PIPELINE, {"inputPrefix": "in/", "circuitBreaker": {}, "notificationMode": "ftp"}, "notificationMode", id="bad-mode"),
    ],
)  # fmt: skip
def test_a_missing_or_bad_input_is_invalid_argument_naming_the_field(plugin, type_token, inputs, field):
    error = _refused(plugin, type_token, inputs)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in f"{error.details()} {error.trailing_metadata()}"


@pytest.mark.parametrize(
    ("inputs", "field", "reason"),
    [
        pytest.param(
            {"memoryMb": 64},
            "memoryMb",
            "pipeline 'orders': memory_mb=64 MB is outside AWS's range 128..10240 MB",
            id="out-of-range",
        ),
        pytest.param(
            {"circuitBreaker": {"probeConcurrency": 0}},
            "circuitBreaker.probeConcurrency",
            "circuit_breaker.probe_concurrency=0",
            id="nested",
        ),
    ],
)
def test_a_value_the_components_validation_refuses_is_invalid_argument_naming_the_field(
    plugin, inputs, field, reason
):
    error = _refused(plugin, PIPELINE, {"inputPrefix": "in/", **inputs, **OFFLINE})

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in (error.details() or "")
    assert field.encode() in dict(error.trailing_metadata() or ())["grpc-status-details-bin"]


def _readme_yaml_program() -> dict[str, Any]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    (program,) = [block for block in blocks if "runtime: yaml" in block]
    document: dict[str, Any] = yaml.safe_load(program)
    return document


def test_the_readmes_yaml_program_constructs_and_has_the_outputs_it_exports(plugin):
    # GIVEN the README's YAML program
    program = _readme_yaml_program()
    assert program["packages"]["filepipe"].endswith(".git/provider@v0.1.0")

    # WHEN the engine constructs each of its resources (without the dependency layer: no pip here)
    with mock_monitor() as (address, _):
        outputs = {
            name: construct(plugin, address, resource["type"], name, _offline(resource["properties"]))
            for name, resource in program["resources"].items()
        }

    # THEN every output it exports exists
    for expression in program["outputs"].values():
        name, output = re.fullmatch(r"\$\{(\w+)\.(\w+)\}", expression).groups()  # type: ignore[union-attr]
        assert output in outputs[name], expression


def _offline(properties: dict[str, Any]) -> dict[str, Any]:
    if "pipelines" in properties:
        return {**properties, "pipelines": {k: {**v, **OFFLINE} for k, v in properties["pipelines"].items()}}
    return {**properties, **OFFLINE}
