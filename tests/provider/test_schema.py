"""The package schema other languages' SDKs are generated from: valid, exact, and as committed.

Pulumi's analyzer infers it from the components' annotations; ``pulumi package add`` reads it from the
running plugin (``tests/provider/test_plugin.py`` checks that path). No Pulumi CLI is involved.
"""

import importlib.metadata
import json
import re
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pulumi.provider.experimental.analyzer import Analyzer

from filepipe import Architecture, Encryption, FileFormat, InvalidRecordPolicy, NotificationMode, plugin

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "provider" / "schema.json"
METASCHEMA = Path(__file__).with_name("metaschema") / "pulumi.json"
PIPELINE = "filepipe:index:FileProcessingPipeline"
GROUP = "filepipe:index:PipelineGroup"
BUCKET = "filepipe:index:PipelineBucket"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return plugin.schema()


def without_nulls(value: Any) -> Any:
    """What Pulumi's binder validates: the spec marshalled to JSON, where unset (null) fields are left out."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def metaschema() -> dict[str, Any]:
    """The vendored metaschema with its ECMAScript named groups ``(?<name>`` in Python's ``(?P<name>``
    (lookbehinds, ``(?<=`` and ``(?<!``, mean the same in both)."""
    text = re.sub(r"\(\?<(?![=!])", "(?P<", METASCHEMA.read_text(encoding="utf-8"))
    document: dict[str, Any] = json.loads(text)
    return document


def test_the_analyzer_reads_every_component_without_an_error_or_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Analyzer(plugin.PACKAGE).analyze(list(plugin.COMPONENTS))

    # The SDK leaves pulumi-aws's pulumi-plugin.json open while reading its version: a ResourceWarning
    # about the SDK's own file handle, not a finding about the components.
    findings = [w for w in caught if not issubclass(w.category, ResourceWarning)]
    assert [str(w.message) for w in findings] == []
    assert sorted(result["component_definitions"]) == [
        "FileProcessingPipeline",
        "PipelineBucket",
        "PipelineGroup",
    ]


def test_the_schema_satisfies_pulumis_package_metaschema(schema):
    meta = metaschema()
    jsonschema.Draft202012Validator.check_schema(meta)

    errors = sorted(jsonschema.Draft202012Validator(meta).iter_errors(without_nulls(schema)), key=str)

    assert [f"{list(error.absolute_path)}: {error.message}" for error in errors] == []


def test_the_metaschema_check_catches_a_broken_schema(schema):
    # GIVEN the schema with a version that is not semver (the rewritten named-group pattern checks it)
    broken = {**without_nulls(schema), "version": "one"}

    # THEN validation fails on that field
    errors = list(jsonschema.Draft202012Validator(metaschema()).iter_errors(broken))
    assert [list(error.absolute_path) for error in errors] == [["version"]]


def test_the_package_is_named_versioned_and_depends_on_the_installed_aws_provider(schema):
    assert schema["name"] == "filepipe"
    assert schema["version"] == importlib.metadata.version("filepipe")
    assert schema["dependencies"] == [{"name": "aws", "version": importlib.metadata.version("pulumi-aws")}]
    assert sorted(schema["resources"]) == [PIPELINE, BUCKET, GROUP]
    assert all(resource["isComponent"] for resource in schema["resources"].values())


def test_required_inputs_are_exactly_the_truly_required_ones(schema):
    resources, types = schema["resources"], schema["types"]

    assert resources[PIPELINE]["requiredInputs"] == ["inputPrefix"]
    assert resources[GROUP]["requiredInputs"] == ["pipelines"]
    assert resources[BUCKET].get("requiredInputs", []) == []
    assert types["filepipe:index:PipelineArgs"]["required"] == ["inputPrefix"]
    assert sorted(types["filepipe:index:PrefixLifecycleRule"]["required"]) == ["prefix", "ruleId"]
    assert types["filepipe:index:CircuitBreakerArgs"].get("required", []) == []
    assert types["filepipe:index:PipelineBucketArgs"].get("required", []) == []


def test_the_pipelines_inputs_match_the_python_surface(schema):
    inputs = schema["resources"][PIPELINE]["inputProperties"]
    aws = importlib.metadata.version("pulumi-aws")

    # Plain where validated before deploy, an Input where only passed through to AWS.
    assert inputs["inputPrefix"] == {**inputs["inputPrefix"], "type": "string", "plain": True}
    assert inputs["memoryMb"]["type"] == "integer" and inputs["memoryMb"]["plain"] is True
    assert inputs["bucketName"]["type"] == "string" and "plain" not in inputs["bucketName"]
    assert inputs["bucket"]["$ref"] == f"/aws/v{aws}/schema.json#/resources/aws:s3%2Fbucket:Bucket"
    assert inputs["schema"]["type"] == "string"
    assert inputs["schemaDocument"]["additionalProperties"]["$ref"] == "pulumi.json#/Any"
    assert inputs["circuitBreaker"]["$ref"] == "#/types/filepipe:index:CircuitBreakerArgs"
    assert inputs["tags"]["additionalProperties"]["type"] == "string"
    assert inputs["inputFormat"]["$ref"] == "#/types/filepipe:index:FileFormat"
    assert inputs["architecture"]["$ref"] == "#/types/filepipe:index:Architecture"
    group_inputs = schema["resources"][GROUP]["inputProperties"]
    assert group_inputs["pipelines"]["additionalProperties"]["$ref"] == "#/types/filepipe:index:PipelineArgs"
    assert group_inputs["bucketArgs"]["$ref"] == "#/types/filepipe:index:PipelineBucketArgs"


@pytest.mark.parametrize(
    ("token", "enum", "values"),
    [
        ("filepipe:index:Architecture", Architecture, ["arm64", "x86_64"]),
        ("filepipe:index:Encryption", Encryption, ["sse-sqs", "kms"]),
        ("filepipe:index:NotificationMode", NotificationMode, ["s3", "eventbridge", "sns"]),
        ("filepipe:index:FileFormat", FileFormat, ["json", "ndjson", "csv"]),
        ("filepipe:index:InvalidRecordPolicy", InvalidRecordPolicy, ["reject-file", "write-rejects"]),
    ],
)
def test_the_enums_carry_the_values_the_handler_and_aws_accept(schema, token, enum: type[StrEnum], values):
    assert [member["value"] for member in schema["types"][token]["enum"]] == values
    assert [member.value for member in enum] == values
    assert schema["types"][token]["type"] == "string"


def test_every_input_and_output_is_described(schema):
    undescribed = [
        f"{token}.{name}"
        for token, resource in schema["resources"].items()
        for group in ("inputProperties", "properties")
        for name, prop in resource[group].items()
        if not prop.get("description")
    ] + [
        f"{token}.{name}"
        for token, typ in schema["types"].items()
        for name, prop in typ.get("properties", {}).items()
        if not prop.get("description")
    ]

    assert undescribed == []


def test_the_outputs_are_values_not_internals(schema):
    outputs = schema["resources"][PIPELINE]["properties"]

    assert {"queueUrl", "dlqUrl", "functionName", "tableName", "alarmNames", "bucketName"} <= set(outputs)
    assert not any(name.startswith("_") for name in outputs)
    assert all("$ref" not in prop for prop in outputs.values())
    assert set(schema["resources"][PIPELINE]["required"]) == set(outputs) - {
        "breakerTableName",
        "breakerFunctionName",
        "routingTopicArn",
    }
    assert sorted(schema["resources"][BUCKET]["properties"]) == ["arn", "bucketName"]
    assert sorted(schema["resources"][GROUP]["properties"]) == [
        "bucketName",
        "pipelineOutputs",
        "routingTopicArn",
    ]


def _comparable(document: dict[str, Any]) -> str:
    """The schema as text with the aws provider's version abstracted: it is whichever pulumi-aws the range
    in pyproject.toml installed, and the snapshot should not change with it."""
    (aws,) = (dependency["version"] for dependency in document["dependencies"] if dependency["name"] == "aws")
    return json.dumps(document, indent=2, sort_keys=True).replace(aws, "<aws version>")


def test_the_committed_snapshot_is_the_schema_the_code_produces(schema):
    assert _comparable(json.loads(SNAPSHOT.read_text(encoding="utf-8"))) == _comparable(schema), (
        "provider/schema.json differs from the schema of the components: review the change, then "
        "refresh it with `./run python -m filepipe.plugin > provider/schema.json`"
    )


def test_the_plugin_folder_is_a_python_plugin_that_installs_this_checkout():
    folder = REPO / "provider"
    manifest = yaml.safe_load((folder / "PulumiPlugin.yaml").read_text(encoding="utf-8"))
    requirements = [
        line.strip()
        for line in (folder / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert manifest["runtime"]["name"] == "python"
    # The language host runs `python provider/`; pip resolves `..` from the plugin folder: the repo root.
    assert (folder / "__main__.py").is_file() and "host()" in (folder / "__main__.py").read_text()
    assert requirements == [".."] and (folder.parent / "pyproject.toml").is_file()


@pytest.mark.parametrize(
    ("message", "path"),
    [
        pytest.param("pipeline 'orders': memory_mb=64 MB is outside AWS's range", "memoryMb", id="top-level"),
        pytest.param(
            "pipeline 'a': circuit_breaker.probe_concurrency=0 must be 1..10",
            "circuitBreaker.probeConcurrency",
            id="nested",
        ),
        pytest.param(
            "pipeline 'a': input_prefix='x' overlaps output_prefix='x'", "inputPrefix", id="the-first"
        ),
        pytest.param("lifecycle rule ids must be unique", "", id="none"),
    ],
)
def test_a_refusal_names_the_schemas_property(message: str, path: str) -> None:
    assert plugin.property_path(message) == path
