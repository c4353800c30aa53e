"""The public inputs are TypedDicts: one place applies their defaults and coerces what other languages send."""

import pytest

from filepipe import (
    CircuitBreakerArgs,
    FileFormat,
    FileProcessingPipeline,
    PipelineArgs,
    PipelineBucketArgs,
    PipelineConfigError,
    defaults,
)
from filepipe.handler.settings import EnvVar, HandlerSettings
from filepipe.resolved import resolve_bucket, resolve_pipeline
from tests.components.conftest import build, pipeline_args


def test_a_typeddict_call_builds_the_dict_python_programs_pass():
    assert PipelineArgs(input_prefix="in/", memory_mb=1024) == {"input_prefix": "in/", "memory_mb": 1024}


def test_unset_fields_get_the_defaults_and_none_counts_as_unset():
    settings = resolve_pipeline(
        pipeline_args({"input_prefix": "in/", "reserved_concurrency": None}), "orders"
    )

    assert (settings.memory_mb, settings.timeout_seconds) == (defaults.MEMORY_MB, defaults.TIMEOUT_SECONDS)
    assert settings.reserved_concurrency is None
    assert settings.input_format is FileFormat.JSON


def test_whole_number_floats_become_ints_at_every_level():
    # GIVEN integers as the provider host hands them over: floats
    settings = resolve_pipeline(
        pipeline_args(
            {"input_prefix": "in/", "memory_mb": 1024.0, "circuit_breaker": {"failure_threshold": 4.0}}
        ),
        "orders",
    )
    bucket = resolve_bucket(
        {
            "noncurrent_version_expiration_days": 60.0,
            "prefix_rules": [{"rule_id": "r", "prefix": "p/", "expiration_days": 400.0}],
        }
    )

    # THEN they are ints again, so AWS and the handler get whole numbers
    assert settings.memory_mb == 1024 and type(settings.memory_mb) is int
    assert settings.circuit_breaker is not None and type(settings.circuit_breaker.failure_threshold) is int
    assert type(bucket.noncurrent_version_expiration_days) is int
    assert type(bucket.prefix_rules[0].expiration_days) is int


def test_a_component_given_floats_writes_whole_numbers_into_the_handlers_settings(mocks):
    # GIVEN integers as floats (as every language's program sends them through the provider)
    fields = {
        "input_prefix": "in/",
        "max_file_bytes": 1_048_576.0,
        "timeout_seconds": 30.0,
        "max_receive_count": 7.0,
    }

    # WHEN the pipeline is built
    build(lambda: FileProcessingPipeline("orders", pipeline_args(fields)))

    # THEN the handler's environment holds whole numbers, which it parses with int()
    variables = mocks.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    assert variables[EnvVar.MAX_FILE_BYTES] == "1048576"
    assert variables[EnvVar.LEASE_SECONDS] == "60"
    assert variables[EnvVar.MAX_RECEIVE_COUNT] == "7"
    assert HandlerSettings.from_env(variables).max_file_bytes == 1_048_576


def test_strings_become_enums():
    settings = resolve_pipeline(pipeline_args({"input_prefix": "in/", "input_format": "csv"}), "orders")

    assert settings.input_format is FileFormat.CSV
    assert settings.effective_suffixes() == (".csv", ".csv.gz", ".csv.zst")


def test_zero_days_keeps_what_the_bucket_lifecycle_would_expire():
    # Other languages cannot send null to a component: 0 says "keep forever".
    bucket = resolve_bucket(PipelineBucketArgs(abort_incomplete_multipart_upload_days=0))

    assert bucket.abort_incomplete_multipart_upload_days is None
    assert bucket.noncurrent_version_expiration_days == defaults.NONCURRENT_VERSION_EXPIRATION_DAYS


def test_an_empty_breaker_is_a_breaker_with_the_defaults():
    settings = resolve_pipeline(
        PipelineArgs(input_prefix="in/", circuit_breaker=CircuitBreakerArgs()), "orders"
    )

    assert settings.circuit_breaker is not None
    assert settings.circuit_breaker.failure_threshold == defaults.BREAKER_FAILURE_THRESHOLD


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"memory_mb": 1024.5}, "memory_mb=1024.5 must be a whole number", id="fraction"),
        pytest.param({"memory_mb": True}, "memory_mb=True must be a whole number", id="bool-for-int"),
        pytest.param({"state_table": "yes"}, "state_table='yes' must be true or false", id="string-for-bool"),
        pytest.param({"input_format": "xml"}, "input_format='xml'; use one of 'json', 'ndjson', 'csv'", id="enum"),
        pytest.param({"architecture": "sparc"}, "architecture='sparc'; use one of 'arm64', 'x86_64'", id="arch"),
        pytest.param({"memroy_mb": 1024}, "unknown input(s) memroy_mb", id="unknown"),
        pytest.param({"circuit_breaker": {"threshold": 1}}, "circuit_breaker.unknown input(s) threshold", id="nested"),
        pytest.param({"schema": {"type": "object"}}, "schema_document", id="schema-document"),
        pytest.param({"schema": "s.json", "schema_document": {}}, "both set", id="two-schemas"),
        pytest.param({"bucket": "landing"}, "bucket_name=shared.bucket_name", id="bucket-by-name"),
        pytest.param({"input_suffixes": ".csv"}, "input_suffixes='.csv' must be a list", id="string-for-list"),
    ],
)  # fmt: skip
def test_a_bad_input_is_an_error_naming_pipeline_and_field(fields, expected):
    with pytest.raises(PipelineConfigError, match="^pipeline 'orders': ") as error:
        resolve_pipeline(pipeline_args({"input_prefix": "in/", **fields}), "orders")

    assert expected in str(error.value)


def test_a_missing_required_input_is_named():
    with pytest.raises(PipelineConfigError, match="pipeline 'orders': input_prefix is required"):
        resolve_pipeline(pipeline_args({}), "orders")
