"""``processor_case``: the handler's loader, error classes and encoders, with no endpoint."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from filepipe.handler.errors import (
    EmptyFileError,
    InvalidContentError,
    OutputShapeError,
    ProcessorError,
    RetryLaterError,
    SchemaValidationError,
)
from filepipe.handler.settings import FileFormat
from filepipe.handler.transform import ProcessorConfigError
from filepipe.testing import processor_case, whole_file_case
from tests.handler.test_output_identity import GOLDEN, INPUTS, PROCESSED_AT, expected_output

SCHEMA = {"type": "object", "required": ["qty"], "properties": {"qty": {"type": "integer"}}}


def _throttled(record: object) -> object:
    raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetItem")


def test_a_processor_named_as_in_pipeline_args_is_loaded_and_applied() -> None:
    case = processor_case("tests.handler.processors:add_total")

    assert case.record({"qty": 2, "price": 1.5}) == {"qty": 2, "price": 1.5, "total": 3.0}
    assert case.record({"skip": True}) is None


@pytest.mark.parametrize(
    ("processor", "error", "message"),
    [
        pytest.param(
            "tests.handler.processors:explode",
            ProcessorError,
            "processor failed on record 3: KeyError: 'no such field'",
            id="an-exception-fails-the-file",
        ),
        pytest.param(
            "tests.handler.processors:downstream_down",
            RetryLaterError,
            "the reference-data service is unavailable",
            id="retry-later-is-retried",
        ),
        pytest.param(
            _throttled, RetryLaterError, "processor hit a transient error on record 3", id="aws-throttling"
        ),
    ],
)
def test_what_a_processor_raises_is_classified_as_the_handler_classifies_it(
    processor: object, error: type[Exception], message: str
) -> None:
    case = processor_case(processor)  # type: ignore[arg-type]

    with pytest.raises(error, match=message.replace("(", r"\(")):
        case.record({"qty": 1}, index=3)


def test_a_processor_that_cannot_be_imported_is_a_configuration_error() -> None:
    with pytest.raises(ProcessorConfigError, match="must look like 'package.module:function'"):
        processor_case("no_colon")


def test_a_processor_is_imported_from_its_code_dir(tmp_path: Path) -> None:
    (tmp_path / "case_code_dir_processor.py").write_text("def double(r):\n    return {'n': r['n'] * 2}\n")

    case = processor_case("case_code_dir_processor:double", code_dir=tmp_path)

    assert case.record({"n": 21}) == {"n": 42}


@pytest.mark.parametrize("output_format", list(FileFormat), ids=lambda f: f"to-{f.value}")
@pytest.mark.parametrize("name", list(INPUTS))
def test_a_file_is_written_byte_for_byte_as_the_handler_writes_it(
    name: str, output_format: FileFormat
) -> None:
    # GIVEN the handler's golden inputs and outputs
    case = processor_case(input_format=INPUTS[name], output_format=output_format)

    # WHEN the case writes the file
    result = case.file(
        (GOLDEN / name).read_bytes(), source_file=f"s3://bucket/in/{name}", processed_at=PROCESSED_AT
    )

    # THEN the bytes are the handler's
    assert result.output == expected_output(name, output_format)


def test_the_records_of_each_output_format_are_decoded() -> None:
    content = b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n'
    expected = {
        FileFormat.JSON: [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        FileFormat.NDJSON: [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        FileFormat.CSV: [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}],  # CSV holds text
    }
    for output_format, records in expected.items():
        assert (
            processor_case(input_format="ndjson", output_format=output_format).file(content).records
            == records
        )


def test_an_invalid_record_rejects_the_file_with_every_complaint() -> None:
    case = processor_case(schema=SCHEMA, input_format="ndjson")

    with pytest.raises(SchemaValidationError) as raised:
        case.file(b'{"qty": 1}\n{"qty": "two"}\n{}\n')

    assert raised.value.errors == [
        "record 1: $.qty: $.qty must be integer",
        "record 2: $: $ must contain ['qty'] properties",
    ]


def test_with_write_rejects_valid_records_are_written_and_invalid_ones_listed(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    case = processor_case(
        schema=schema, input_format="ndjson", output_format="ndjson", invalid_records="write-rejects"
    )

    result = case.file(b'{"qty": 1}\n{"qty": "two"}\n')

    assert result.records == [{"qty": 1}]
    assert result.rejects == [{"index": 1, "error": "$.qty: $.qty must be integer", "record": {"qty": "two"}}]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        pytest.param(b"", EmptyFileError, id="empty"),
        pytest.param(b'[{"a": ', InvalidContentError, id="truncated-json"),
    ],
)
def test_content_the_handler_parks_raises_the_handlers_error(content: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        processor_case().file(content)


def test_a_parquet_output_is_decoded_and_its_misfits_are_handled_as_the_handler_does() -> None:
    # GIVEN records whose last does not fit the int64 column the first 8,192 (which type it) give `qty`
    content = b"".join(b'{"qty": %d}\n' % n for n in range(8192)) + b'{"qty": "three"}\n'

    # WHEN written as Parquet, with the rejects written or the file rejected
    kept = processor_case(input_format="ndjson", output_format="parquet", invalid_records="write-rejects")
    result = kept.file(content)
    with pytest.raises(SchemaValidationError, match="record 8192: \\$.qty does not fit the Parquet column"):
        processor_case(input_format="ndjson", output_format="parquet").file(content)

    # THEN the file holds the records that fit, and the last is a reject with its reason
    assert result.output[:4] == b"PAR1"
    assert result.records == [{"qty": n} for n in range(8192)]
    [reject] = result.rejects
    assert (reject["index"], reject["record"]) == (8192, {"qty": "three"})
    assert "does not fit the Parquet column (int64)" in reject["error"]


def test_a_record_the_output_format_cannot_hold_raises_the_handlers_error() -> None:
    with pytest.raises(OutputShapeError, match="CSV output needs object records"):
        processor_case(output_format="csv").file(b"[1, 2]")


def test_whole_file_case_runs_a_file_processor_as_the_handler_does() -> None:
    # GIVEN a zip of two CSVs and the zip-unpacking processor of the handler's tests
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "id\n1\n")
        archive.writestr("sub/b.csv", "id\n2\n")

    # WHEN run without an endpoint
    result = whole_file_case("tests.handler.file_processors:zip_of_csvs", buffer.getvalue(), key="in/x.zip")

    # THEN its outputs are there by name, with their content types
    assert result.outputs == {"a.ndjson": b'{"id":"1"}\n', "sub/b.ndjson": b'{"id":"2"}\n'}
    assert result.content_types["a.ndjson"] == "application/x-ndjson"


def test_whole_file_case_classifies_and_discards_as_the_handler_does() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.csv", "id\n1\n")
        archive.writestr("../out.csv", "id\n2\n")

    with pytest.raises(ProcessorError, match="must be a relative path inside the file's output folder"):
        whole_file_case("tests.handler.file_processors:zip_of_csvs", buffer.getvalue())
    with pytest.raises(RetryLaterError, match="429"):
        whole_file_case("tests.handler.file_processors:downstream_busy", b"%PDF")
