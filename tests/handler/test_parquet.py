"""Parquet output: typed columns from the schema or the first row group, row groups of the configured
size, records that do not fit the columns handled per ``invalid_records``, and files read back by
pyarrow and DuckDB with the same rows and types."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filepipe.handler.settings import (
    DlqAttribute,
    FileFormat,
    FileStatus,
    InvalidRecordPolicy,
    OutputFormat,
    ParquetCompression,
)
from filepipe.handler.writers import CONTENT_TYPES

from .conftest import Aws, FakeContext, dlq_attributes
from .events import s3_body
from .test_continuation import Clock, cut_after, deliveries, handler_for, no_uploads_left

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "amount"],
    "properties": {
        "id": {"type": "integer"},
        "customer": {"type": "string"},
        "amount": {"type": "number"},
        "paid": {"type": "boolean"},
        "placed_at": {"type": "string", "format": "date-time"},
        "due": {"type": "string", "format": "date"},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object"},
        "note": {"type": ["string", "null"]},
    },
}
RECORDS = [
    {
        "id": n,
        "customer": f"Zoë {n}",
        "amount": n * 1.25,
        "paid": n % 2 == 0,
        "placed_at": f"2026-12-01T10:{n % 60:02d}:00+02:00",
        "due": "2026-12-31",
        "address": {"city": "Köln", "zip": f"{50000 + n}"},
        "tags": ["a", "b"][: n % 3],
        "extra": {"free": [n, {"form": True}]},
        "note": None if n % 2 else "keep",
    }
    for n in range(300)
]
PARQUET: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": OutputFormat.PARQUET}


def ndjson(records: list[Any]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()


def schema_file(tmp_path: Path, schema: dict[str, Any] = SCHEMA) -> str:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    return str(path)


def process(aws: Aws, key: str, body: bytes, **overrides: Any) -> dict[str, Any]:
    put = aws.put(key, body)
    response = aws.handler(**{**PARQUET, **overrides})(aws.batch(s3_body(key=key, put=put)), FakeContext())
    assert response == {"batchItemFailures": []}
    [item] = aws.state_items()
    return item


def read_parquet(aws: Aws, key: str) -> pq.ParquetFile:
    return pq.ParquetFile(io.BytesIO(aws.read(key)))


def test_columns_are_typed_from_the_schema_and_read_back_by_pyarrow_and_duckdb(
    aws: Aws, tmp_path: Path
) -> None:
    item = process(aws, "in/orders.ndjson", ndjson(RECORDS), schema_file=schema_file(tmp_path))

    assert item["status"] == FileStatus.SUCCEEDED
    assert item["output_key"] == "out/orders.parquet"
    head = aws.s3.head_object(Bucket="filepipe-test", Key="out/orders.parquet")
    assert head["ContentType"] == CONTENT_TYPES[OutputFormat.PARQUET] == "application/vnd.apache.parquet"
    parquet = read_parquet(aws, "out/orders.parquet")
    schema = parquet.schema_arrow
    assert schema.field("id").type == pa.int64()
    assert schema.field("customer").type == pa.string()
    assert schema.field("amount").type == pa.float64()
    assert schema.field("paid").type == pa.bool_()
    assert schema.field("placed_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("due").type == pa.date32()
    assert schema.field("address").type == pa.struct([("city", pa.string()), ("zip", pa.string())])
    assert schema.field("tags").type == pa.list_(pa.string())
    assert schema.field("extra").type == pa.string()  # an open object: its JSON text
    assert schema.field("note").type == pa.string()
    rows = parquet.read().to_pylist()
    assert len(rows) == len(RECORDS) == int(item["records"])
    first = rows[7]
    assert first["customer"] == "Zoë 7"
    assert first["amount"] == 8.75
    assert first["placed_at"] == datetime(2026, 12, 1, 8, 7, tzinfo=UTC)  # +02:00, in UTC
    assert first["due"] == date(2026, 12, 31)
    assert first["address"] == {"city": "Köln", "zip": "50007"}
    assert first["tags"] == ["a"]
    assert json.loads(first["extra"]) == {"free": [7, {"form": True}]}
    assert [row["note"] for row in rows[:2]] == ["keep", None]

    path = tmp_path / "orders.parquet"
    path.write_bytes(aws.read("out/orders.parquet"))
    with duckdb.connect() as db:
        described = {
            name: kind for name, kind, *_ in db.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
        }
        count, total, city = (
            db.execute(f"SELECT count(*), sum(amount), max(address.city) FROM '{path}' WHERE paid").fetchone()
            or ()
        )
    assert described["id"] == "BIGINT"
    assert described["placed_at"] == "TIMESTAMP WITH TIME ZONE"
    assert described["due"] == "DATE"
    assert described["tags"] == "VARCHAR[]"
    assert count == 150
    assert total == sum(n * 1.25 for n in range(len(RECORDS)) if n % 2 == 0)  # the paid ones
    assert city == "Köln"


def test_without_a_schema_the_first_row_group_types_the_columns(aws: Aws) -> None:
    records = [
        {
            "id": n,
            "price": n if n % 2 else n + 0.5,
            "name": f"n{n}",
            "ok": True,
            "nested": {"k": n},
            "gone": None,
        }
        for n in range(50)
    ]
    process(aws, "in/plain.ndjson", ndjson(records))

    parquet = read_parquet(aws, "out/plain.parquet")
    schema = parquet.schema_arrow
    assert schema.field("id").type == pa.int64()
    assert schema.field("price").type == pa.float64()  # integers and floats: float64
    assert schema.field("name").type == pa.string()
    assert schema.field("ok").type == pa.bool_()
    assert schema.field("nested").type == pa.string()  # objects are JSON text
    assert schema.field("gone").type == pa.string()  # null throughout: any value fits later
    rows = parquet.read().to_pylist()
    assert [row["price"] for row in rows[:3]] == [0.5, 1.0, 2.5]
    assert json.loads(rows[3]["nested"]) == {"k": 3}


def test_row_groups_have_the_configured_rows_and_the_compression_is_the_one_set(aws: Aws) -> None:
    records = [{"id": n, "name": f"row {n}"} for n in range(25_000)]
    process(
        aws,
        "in/big.ndjson",
        ndjson(records),
        parquet_row_group_rows=10_000,
        parquet_compression=ParquetCompression.ZSTD,
    )

    metadata = read_parquet(aws, "out/big.parquet").metadata
    assert [metadata.row_group(n).num_rows for n in range(metadata.num_row_groups)] == [10_000, 10_000, 5_000]
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert read_parquet(aws, "out/big.parquet").read().column("id").to_pylist() == list(range(25_000))


def test_snappy_is_the_default_compression(aws: Aws) -> None:
    process(aws, "in/small.ndjson", ndjson([{"id": 1}]))

    assert read_parquet(aws, "out/small.parquet").metadata.row_group(0).column(0).compression == "SNAPPY"


def drifting() -> list[dict[str, Any]]:
    """A first row group that types ``amount`` as int64, then records that do not fit it."""
    records: list[dict[str, Any]] = [{"id": n, "amount": n} for n in range(20)]
    records[12] = {"id": 12, "amount": "twelve"}  # a string where the column is int64
    records[15] = {"id": 15, "amount": 1.5}  # pyarrow would truncate it to 1
    records[17] = {"id": 17, "amount": 2**70}  # beyond int64
    records[18] = {"id": 18, "amount": 3, "surprise": True}  # a field that is not a column
    return records


def test_records_that_do_not_fit_the_columns_go_to_the_rejects_object(aws: Aws) -> None:
    item = process(
        aws,
        "in/drift.ndjson",
        ndjson(drifting()),
        parquet_row_group_rows=10,
        invalid_records=InvalidRecordPolicy.WRITE_REJECTS,
    )

    assert item["status"] == FileStatus.SUCCEEDED
    assert int(item["records"]) == 16
    assert int(item["rejected"]) == 4
    rows = read_parquet(aws, "out/drift.parquet").read().to_pylist()
    assert [row["id"] for row in rows] == [n for n in range(20) if n not in (12, 15, 17, 18)]
    rejects = [json.loads(line) for line in aws.read("out/drift.parquet.rejects.ndjson").splitlines()]
    assert [reject["index"] for reject in rejects] == [12, 15, 17, 18]
    assert rejects[0]["record"] == {"id": 12, "amount": "twelve"}
    assert "$.amount does not fit the Parquet column (int64)" in rejects[0]["error"]
    assert "1.5 is not an integer" in rejects[1]["error"]
    assert "$.amount" in rejects[2]["error"]
    assert "['surprise'] are not columns" in rejects[3]["error"]


def test_a_record_that_does_not_fit_rejects_the_file_under_reject_file(aws: Aws) -> None:
    put = aws.put("in/drift.ndjson", ndjson(drifting()))
    aws.handler(**PARQUET, parquet_row_group_rows=10)(
        aws.batch(s3_body(key="in/drift.ndjson", put=put)), FakeContext()
    )

    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == "SchemaValidationError"
    assert "record 12: $.amount does not fit the Parquet column (int64)" in attributes[DlqAttribute.REASON]
    assert aws.keys("out/") == []  # nothing half-written


def test_non_object_records_are_misfits_with_their_type(aws: Aws) -> None:
    body = b'{"id": 1}\n[1, 2]\n{"id": 3}\n'
    process(aws, "in/mixed.ndjson", body, invalid_records=InvalidRecordPolicy.WRITE_REJECTS)

    assert read_parquet(aws, "out/mixed.parquet").read().to_pylist() == [{"id": 1}, {"id": 3}]
    [reject] = [json.loads(line) for line in aws.read("out/mixed.parquet.rejects.ndjson").splitlines()]
    assert reject == {"index": 1, "error": "Parquet output needs object records, got list", "record": [1, 2]}


def test_a_csv_input_is_written_as_parquet_string_columns(aws: Aws) -> None:
    body = "id,city\r\n1,Zürich\r\n2,Genève\r\n".encode()
    process(aws, "in/cities.csv", body, input_format=FileFormat.CSV)

    table = read_parquet(aws, "out/cities.parquet").read()
    assert table.to_pylist() == [{"id": "1", "city": "Zürich"}, {"id": "2", "city": "Genève"}]


def test_an_empty_array_gives_a_valid_parquet_file_without_rows(aws: Aws, tmp_path: Path) -> None:
    process(aws, "in/none.json", b"[]", input_format=FileFormat.JSON, schema_file=schema_file(tmp_path))

    parquet = read_parquet(aws, "out/none.parquet")
    assert parquet.metadata.num_rows == 0
    assert parquet.schema_arrow.field("id").type == pa.int64()


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "object", "properties": {"a": {"type": ["integer", "string"]}}}, pa.string()),
        ({"type": "object", "properties": {"a": {"type": "array"}}}, pa.string()),
        ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {}}}}}, pa.string()),
        ({"type": "object", "properties": {"a": {"type": ["number", "null"]}}}, pa.float64()),
        (
            {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}}}},
            pa.list_(pa.int64()),
        ),
    ],
    ids=["several-types", "untyped-items", "open-object", "nullable-number", "integer-list"],
)
def test_schema_fragments_map_to_columns_that_lose_nothing(
    schema: dict[str, Any], expected: pa.DataType
) -> None:
    from filepipe.handler.parquet_output import columns_from_schema

    [column] = columns_from_schema(schema) or []
    assert column.written == expected


def test_a_parquet_file_that_runs_out_of_time_is_parked_with_what_it_needs_not_continued(aws: Aws) -> None:
    # GIVEN a file whose Parquet output outlasts the invocation (time runs low after two batches)
    body = ndjson([{"id": n, "pad": "x" * 60} for n in range(40_000)])
    put = aws.put("in/long.ndjson", body)
    handler = handler_for(aws, Clock(), **PARQUET)

    # WHEN it runs
    response = handler(aws.batch(s3_body(key="in/long.ndjson", put=put)), cut_after(2))

    # THEN it is parked at once, saying why: a Parquet footer indexes every row group
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == "NeedsMoreTimeError"
    assert "parquet output cannot be continued" in attributes[DlqAttribute.REASON]
    assert "raise timeout_seconds or memory_mb" in attributes[DlqAttribute.REASON]
    assert deliveries(aws) == []  # no continuation was handed on
    assert no_uploads_left(aws)


def test_a_parquet_file_too_big_for_its_function_is_parked_before_any_work(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 128 MB function with 1.5 s per invocation and a 3 MB file: Parquet cannot be continued
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    put = aws.put("in/big.ndjson", ndjson([{"n": n} for n in range(300_000)]))

    response = aws.handler(**PARQUET, timeout_margin_ms=1_000)(
        aws.batch(s3_body(key="in/big.ndjson", put=put)), FakeContext(1_500)
    )

    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    reason = dlq_attributes(parked)[DlqAttribute.REASON]
    assert dlq_attributes(parked)[DlqAttribute.ERROR_TYPE] == "NeedsMoreTimeError"
    assert "a file with parquet output" in reason and "128 MB" in reason and "cannot be continued" in reason


def test_a_value_a_json_text_column_cannot_hold_is_a_misfit_not_a_failed_file() -> None:
    from filepipe.handler.parquet_output import ParquetEncoder

    # GIVEN a processor's records whose nested values become JSON text, one holding NaN
    encoder = ParquetEncoder(None, 1_000, ParquetCompression.SNAPPY)
    data = (
        encoder.begin() + encoder.encode({"x": {"a": 1}}, 0) + encoder.encode({"x": {"a": float("nan")}}, 1)
    )

    data += encoder.end(2)

    # THEN the other record is written and the NaN one is a misfit with the JSON encoder's reason
    [misfit] = encoder.misfits()
    assert misfit.index == 1 and "Out of range float values are not JSON compliant" in misfit.reason
    assert pq.ParquetFile(io.BytesIO(data)).read().to_pylist() == [{"x": '{"a":1}'}]
