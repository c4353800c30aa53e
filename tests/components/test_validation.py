"""Validation runs before anything is registered; each error names the field and the fix."""

from typing import Any

import pytest

from filepipe import FileFormat, FileProcessingPipeline, InputCompression, PipelineArgs, PipelineConfigError
from filepipe.resolved import resolve_pipeline
from filepipe.validation import validate_bucket_filters, validate_pipeline
from tests.components.conftest import build, pipeline_args

BASE: dict[str, Any] = {"input_prefix": "incoming/orders/"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({"visibility_timeout_seconds": 30, "timeout_seconds": 60}, "visibility_timeout_seconds=30", id="visibility-below-timeout"),
        pytest.param({"dlq_retention_seconds": 345600}, "dlq_retention_seconds=345600 must be greater", id="dlq-retention-equal"),
        pytest.param({"dlq_retention_seconds": 3600, "message_retention_seconds": 7200}, "dlq_retention_seconds=3600", id="dlq-retention-shorter"),
        pytest.param({"batch_size": 50}, "batch_size=50 needs batching_window_seconds", id="batch-without-window"),
        pytest.param({"memory_mb": 64}, "memory_mb=64", id="memory-too-small"),
        pytest.param({"timeout_seconds": 901}, "timeout_seconds=901", id="timeout-too-long"),
        pytest.param({"maximum_concurrency": 1}, "maximum_concurrency=1", id="max-concurrency-below-2"),
        pytest.param({"maximum_concurrency": 20, "reserved_concurrency": 5}, "exceeds reserved_concurrency=5", id="max-concurrency-above-reserved"),
        pytest.param({"max_receive_count": 0}, "max_receive_count=0", id="receive-count-zero"),
        pytest.param({"message_retention_seconds": 30}, "message_retention_seconds=30", id="retention-too-short"),
        pytest.param({"log_retention_days": 31}, "log_retention_days=31", id="log-retention-not-allowed"),
        pytest.param({"python_runtime": "python3.9"}, "python_runtime='python3.9'", id="old-runtime"),
        pytest.param({"output_prefix": "incoming/orders/out/"}, "overlaps input_prefix", id="output-inside-input"),
        pytest.param({"input_prefix": "incoming/", "output_prefix": "incoming/out/"}, "recursive loop", id="output-under-input"),
        pytest.param({"input_prefix": ""}, "input_prefix=''", id="empty-prefix"),
        pytest.param({"input_prefix": "incoming"}, "ending in '/'", id="prefix-without-slash"),
        pytest.param({"input_suffixes": []}, "input_suffixes", id="no-suffix"),
        pytest.param({"processor": "no_function"}, "processor='no_function'", id="processor-shape"),
        pytest.param({"schema": "does/not/exist.json"}, "does not exist", id="missing-schema-file"),
        pytest.param({"kms_key_arn": "arn:aws:kms:eu-west-1:1:alias/aws/sqs", "encryption": "kms"}, "alias/aws/sqs", id="aws-managed-sqs-key"),
        pytest.param({"kms_key_arn": "arn:aws:kms:eu-west-1:1:key/k"}, "encryption is not 'kms'", id="key-without-kms-mode"),
        pytest.param({"alert_emails": ["not-an-address"]}, "alert_emails", id="bad-email"),
        pytest.param({"notification_mode": "kafka"}, "notification_mode='kafka'", id="unknown-mode"),
        pytest.param({"reserved_concurrency": 1}, "reserved_concurrency=1 must be at least 2", id="reservation-below-poller-minimum"),
        pytest.param({"reserved_concurrency": 0}, "disable the event source mapping", id="reservation-zero"),
        pytest.param({"log_level": "NOTICE"}, "log_level='NOTICE'", id="unknown-log-level"),
        pytest.param({"powertools_version": "2.43.1"}, "powertools_version='2.43.1'", id="powertools-v2"),
    ],
)  # fmt: skip
def test_invalid_inputs_are_rejected_with_the_field_named(overrides, expected):
    with pytest.raises(PipelineConfigError, match="pipeline 'orders':") as error:
        validate_pipeline("orders", resolve_pipeline(pipeline_args({**BASE, **overrides}), "orders"))

    assert expected in str(error.value)


def test_defaults_are_valid_and_derived():
    # GIVEN only the required input
    args = resolve_pipeline(pipeline_args(BASE), "orders")

    # WHEN validated
    input_filter = validate_pipeline("orders", args)

    # THEN the derived defaults follow AWS's recommendations
    assert args.effective_visibility_timeout() == 6 * 60
    assert args.effective_output_prefix() == "processed/incoming/orders/"
    assert input_filter.suffixes == (".json", ".json.gz", ".json.zst")


def test_suffix_default_follows_the_input_format_with_its_compressed_forms():
    def suffixes(input_format: FileFormat) -> tuple[str, ...]:
        return resolve_pipeline(
            PipelineArgs(input_prefix="in/", input_format=input_format), "p"
        ).effective_suffixes()

    # input_compression="auto" (the default) reads a feed plain or compressed
    assert suffixes(FileFormat.CSV) == (".csv", ".csv.gz", ".csv.zst")
    assert suffixes(FileFormat.NDJSON) == (
        ".ndjson",
        ".jsonl",
        ".ndjson.gz",
        ".ndjson.zst",
        ".jsonl.gz",
        ".jsonl.zst",
    )


def test_the_default_suffixes_follow_the_compression():
    def suffixes(input_format: FileFormat, compression: InputCompression) -> tuple[str, ...]:
        return resolve_pipeline(
            PipelineArgs(input_prefix="in/", input_format=input_format, input_compression=compression), "p"
        ).effective_suffixes()

    assert suffixes(FileFormat.CSV, InputCompression.GZIP) == (".csv.gz",)
    assert suffixes(FileFormat.NDJSON, InputCompression.ZSTD) == (".ndjson.zst", ".jsonl.zst")
    assert suffixes(FileFormat.CSV, InputCompression.AUTO) == (".csv", ".csv.gz", ".csv.zst")
    assert suffixes(FileFormat.CSV, InputCompression.NONE) == (".csv",)  # a .csv.gz would be read as CSV


def test_a_named_compression_on_suffixes_that_name_no_compressed_file_is_refused():
    args = resolve_pipeline(
        PipelineArgs(input_prefix="in/", input_suffixes=[".csv"], input_compression=InputCompression.GZIP),
        "p",
    )
    with pytest.raises(
        PipelineConfigError, match=r"input_compression='gzip' but input_suffixes=\['.csv'\] has no .gz"
    ):
        validate_pipeline("p", args)
    listed = PipelineArgs(
        input_prefix="in/", input_suffixes=[".csv", ".CSV.GZ"], input_compression=InputCompression.GZIP
    )
    validate_pipeline("p", resolve_pipeline(listed, "p"))


def _filter(name, prefix, suffixes=(".json",), mode: Any = "s3", output_prefix=None):
    args: dict[str, Any] = {"input_prefix": prefix, "input_suffixes": suffixes, "notification_mode": mode}
    if output_prefix is not None:
        args["output_prefix"] = output_prefix
    return validate_pipeline(name, resolve_pipeline(pipeline_args(args), name))


def test_overlapping_s3_filters_on_one_bucket_name_both_pipelines():
    filters = [_filter("orders", "incoming/"), _filter("returns", "incoming/returns/")]

    with pytest.raises(PipelineConfigError, match="'orders'.*'returns'.*overlapping"):
        validate_bucket_filters("data", filters)


@pytest.mark.parametrize("mode", ["eventbridge", "sns"])
def test_overlapping_filters_are_allowed_in_eventbridge_and_sns_mode(mode):
    # GIVEN two pipelines reading the same prefix: in S3 mode the bucket check rejects the pair
    s3_pair = [_filter("orders", "incoming/"), _filter("audit", "incoming/")]
    with pytest.raises(PipelineConfigError, match="overlapping"):
        validate_bucket_filters("data", s3_pair)

    # WHEN both are routed by EventBridge or SNS instead (each writing under its own output prefix)
    fan_out = [_filter(f.pipeline, f.prefix, mode=mode, output_prefix=f"{f.pipeline}/") for f in s3_pair]

    # THEN the same overlap is accepted
    assert fan_out[0].overlaps(fan_out[1])
    validate_bucket_filters("data", fan_out)


def test_two_pipelines_may_not_share_an_output_prefix():
    # GIVEN fan-out on one prefix, both writing their default output prefix
    pair = [_filter(name, "incoming/", mode="eventbridge") for name in ("orders", "audit")]

    # THEN the bucket check refuses: each would overwrite the other's result for the same file
    with pytest.raises(PipelineConfigError, match="'orders' and 'audit' both receive .* one would overwrite"):
        validate_bucket_filters("data", pair)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(("a", "in/a/", (".json",)), ("b", "in/b/", (".json",)), id="disjoint-prefixes"),
        pytest.param(("a", "in/", (".json",)), ("b", "in/", (".csv",)), id="disjoint-suffixes"),
    ],
)
def test_disjoint_filters_share_a_bucket(first, second):
    # GIVEN two S3-mode pipelines whose prefixes or suffixes differ
    filters = [_filter(*first), _filter(*second)]

    # THEN neither filter matches a key the other does, and the bucket check accepts them
    assert not filters[0].overlaps(filters[1])
    assert not filters[1].overlaps(filters[0])
    validate_bucket_filters("data", filters)


def test_a_pipeline_reading_another_pipelines_output_is_a_loop():
    filters = [
        _filter("orders", "incoming/orders/", output_prefix="stage/orders/"),
        _filter("stage", "stage/", suffixes=(".csv",)),
    ]

    with pytest.raises(PipelineConfigError, match="'orders' writes under 'stage/orders/'.*'stage' reads"):
        validate_bucket_filters("data", filters)


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        pytest.param({"processor": "transforms:normalise"}, "with a processor", id="with-a-record-processor"),
        pytest.param({"schema_document": {"type": "object"}}, "with a schema", id="with-a-schema"),
        pytest.param({"file_processor": "unzip"}, "must be 'module:function'", id="not-module-function"),
    ],
)
def test_a_whole_file_processor_refuses_what_would_never_run(extra: dict[str, Any], refused: str):
    inputs: dict[str, Any] = {"input_prefix": "in/", "file_processor": "unpack:zip_of_csvs", **extra}
    with pytest.raises(PipelineConfigError, match=refused):
        validate_pipeline("p", resolve_pipeline(PipelineArgs(**inputs), "p"))  # type: ignore[typeddict-item]


def test_a_whole_file_processor_reaches_the_function_as_its_setting(mocks):
    build(
        lambda: FileProcessingPipeline(
            "unzip",
            PipelineArgs(input_prefix="in/", input_suffixes=[".zip"], file_processor="unpack:zip_of_csvs"),
        )
    )

    [function] = [r for r in mocks.resources if r.typ == "aws:lambda/function:Function"]
    assert function.inputs["environment"]["variables"]["FILEPIPE_FILE_PROCESSOR"] == "unpack:zip_of_csvs"


@pytest.mark.parametrize(
    ("extra", "refused"),
    [
        pytest.param({"output_compression": "gzip"}, "Use parquet_compression", id="with-output-compression"),
        pytest.param({"python_runtime": "python3.11"}, "Amazon Linux 2", id="on-python-3.11"),
        pytest.param({"parquet_row_group_rows": 10}, "parquet_row_group_rows=10", id="row-groups-too-small"),
        pytest.param({"parquet_compression": "lz4"}, "parquet_compression", id="unknown-compression"),
        pytest.param(
            {"input_format": "csv", "max_file_bytes": 512 * 2**20, "state_table": True},
            "a Parquet file cannot be continued",
            id="cap-beyond-one-invocation-even-with-a-state-table",
        ),
    ],
)
def test_parquet_output_refuses_what_cannot_work(extra: dict[str, Any], refused: str):
    inputs: dict[str, Any] = {"input_prefix": "in/", "output_format": "parquet", **extra}
    with pytest.raises(PipelineConfigError, match=refused):
        validate_pipeline("p", resolve_pipeline(pipeline_args(inputs), "p"))


def test_a_parquet_pipeline_that_fits_one_invocation_is_valid_and_reaches_the_function(mocks):
    build(
        lambda: FileProcessingPipeline(
            "lake",
            pipeline_args(
                {
                    "input_prefix": "in/",
                    "input_format": "ndjson",
                    "output_format": "parquet",
                    "parquet_compression": "zstd",
                    "parquet_row_group_rows": 50_000,
                    "bundle_dependencies": False,
                }
            ),
        )
    )

    [function] = [r for r in mocks.resources if r.typ == "aws:lambda/function:Function"]
    variables = function.inputs["environment"]["variables"]
    assert variables["FILEPIPE_OUTPUT_FORMAT"] == "parquet"
    assert variables["FILEPIPE_PARQUET_COMPRESSION"] == "zstd"
    assert variables["FILEPIPE_PARQUET_ROW_GROUP_ROWS"] == "50000"


def test_a_json_pipeline_sets_no_parquet_settings(mocks):
    build(
        lambda: FileProcessingPipeline(
            "plain", pipeline_args({"input_prefix": "in/", "bundle_dependencies": False})
        )
    )

    [function] = [r for r in mocks.resources if r.typ == "aws:lambda/function:Function"]
    assert not any(
        name.startswith("FILEPIPE_PARQUET") for name in function.inputs["environment"]["variables"]
    )


@pytest.mark.parametrize(
    ("returns", "output_format", "refused"),
    [
        pytest.param("list[dict[str, Any]]", "parquet", True, id="list-for-parquet"),
        pytest.param("str | None", "csv", True, id="optional-str-for-csv"),
        pytest.param("'tuple[int, ...]'", "parquet", True, id="quoted-tuple"),
        pytest.param("dict[str, Any] | None", "parquet", False, id="optional-dict"),
        pytest.param("Order", "parquet", False, id="a-typeddict"),
        pytest.param("", "parquet", False, id="no-annotation"),
        pytest.param("list[Any]", "ndjson", False, id="ndjson-takes-any-value"),
    ],
)
def test_a_processor_declared_to_return_non_objects_is_refused_for_row_formats(
    tmp_path, returns: str, output_format: str, refused: bool
):
    # GIVEN a processor whose module would fail if imported: the check reads its source only
    package = tmp_path / "transforms"
    package.mkdir()
    annotation = f" -> {returns}" if returns else ""
    (package / "__init__.py").write_text("")
    (package / "rows.py").write_text(
        "from typing import Any, TypedDict\n"
        "raise RuntimeError('imported at preview')\n"
        "class Order(TypedDict):\n    id: int\n"
        f"def split(record: Any){annotation}:\n    return record\n"
    )
    inputs: dict[str, Any] = {
        "input_prefix": "in/",
        "input_format": "ndjson",
        "output_format": output_format,
        "processor": "transforms.rows:split",
        "processor_code_dir": str(tmp_path),
    }
    args = resolve_pipeline(pipeline_args(inputs), "p")

    if refused:
        with pytest.raises(
            PipelineConfigError, match=r"processor='transforms.rows:split' is declared to return"
        ):
            validate_pipeline("p", args)
    else:
        validate_pipeline("p", args)
