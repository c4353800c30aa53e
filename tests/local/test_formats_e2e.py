"""End to end: the formats stack (``Pulumi.formats.yaml``) on one local endpoint, with the real handler.

Compressed inputs (by suffix and by Content-Encoding), compressed outputs against the uncompressed run's
bytes, a truncated gzip and a gzip bomb parked with their reasons, and the zip whole-file processor with
a path-traversal member. One endpoint for the module, its four pipelines shared by the tests; every wait
polls the state table or the DLQ (no sleeps).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest
from backports import zstd

from filepipe.handler.settings import EnvVar, FileStatus
from filepipe.local.runtime import LocalRuntime, LocalTuning
from filepipe.testing.stack import LocalStack
from tests.handler.test_whole_file import zipped
from tests.local.conftest import PROJECT_DIR

pytestmark = pytest.mark.e2e

Sent = dict[tuple[str, str], str]
"""(pipeline, file name) -> the key it was sent under."""
HANG_GUARD_SECONDS = 120
"""A deadline only against hangs: each file takes well under a second."""

CAP_BYTES = 1024 * 1024
"""The size cap every pipeline gets here: the stack's 256 MiB would make the bomb inflate (and its CSV
be parsed) for seconds before the cap trips; the rule is the same at any cap."""
CSV = 'id,amount,note\nt-1,10.5,plain\nt-2,3,"a, quoted"\nt-3,0.25,é\n'.encode()
EXPECTED_NDJSON = (
    b'{"id":"t-1","amount":"10.5","note":"plain"}\n'
    b'{"id":"t-2","amount":"3","note":"a, quoted"}\n'
    b'{"id":"t-3","amount":"0.25","note":"\xc3\xa9"}\n'
)
"""The CSV's rows as the handler writes NDJSON: every CSV value is a string, key order kept."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, e2e_tier: None) -> Iterator[LocalStack]:
    tuning = LocalTuning.fast()
    tuning = LocalTuning.fast(environment={**tuning.environment, EnvVar.MAX_FILE_BYTES.value: str(CAP_BYTES)})
    state_dir = tmp_path_factory.mktemp("formats-state")
    with LocalRuntime(PROJECT_DIR, "formats", state_dir=state_dir, tuning=tuning) as running:
        yield LocalStack(running, [])


READING_ROWS = [
    {
        "meter": f"m-{n}",
        "read_at": f"2026-12-01T0{n % 10}:30:00+01:00",
        "kwh": n / 4,
        "site": {"region": "Nord"},
    }
    for n in range(40)
]
READINGS = (
    b"".join(json.dumps(row).encode() + b"\n" for row in READING_ROWS) + b'{"meter": "m-x", "kwh": -1}\n'
)
"""Forty valid readings and one the schema refuses (no read_at, a negative kwh)."""
WHOLE = gzip.compress(CSV * 50)
TRUNCATED = WHOLE[: len(WHOLE) // 2]
"""The first half of a gzip stream: its end (and its CRC-32 and size trailer) is missing."""
BOMB = gzip.compress(b"id,amount\n" + b"1,2\n" * (2 * 1024 * 1024))
"""A few KB of gzip that inflate to 8 MB of CSV rows: far above the cap."""
FILES: dict[str, list[tuple[str, bytes]]] = {
    "orders": [
        ("plain.csv", CSV),
        ("suffixed.csv.gz", gzip.compress(CSV)),
        ("cut.csv.gz", TRUNCATED),
        ("after-cut.csv.gz", gzip.compress(CSV)),
        ("bomb.csv.gz", BOMB),
    ],
    "orders-gzip": [("plain.csv", CSV)],
    "events": [("day.ndjson.zst", zstd.compress(EXPECTED_NDJSON)), ("plain.ndjson", EXPECTED_NDJSON)],
    "readings": [("day.ndjson.gz", gzip.compress(READINGS))],
    "archives": [
        ("batch.zip", zipped({"a.csv": CSV, "day/b.csv": b"id\nx\n", "readme.txt": b"not a csv"})),
        ("evil.zip", zipped({"fine.csv": CSV, "../escape.csv": b"id\nx\n"})),
    ],
}
"""Every file of the module, sent together at its start: the pipelines work on them side by side while
the tests wait for the outcome each one looks at."""
ENCODED = "encoded.csv"
"""Sent gzip-compressed under a plain .csv key, with Content-Encoding: gzip."""


@pytest.fixture(scope="module")
def sent(stack: LocalStack) -> Sent:
    keys = {
        (pipeline, name): stack.send(pipeline, name, body)
        for pipeline, files in FILES.items()
        for name, body in files
    }
    target = stack.pipeline("orders")
    keys["orders", ENCODED] = f"{target.input_prefix}{ENCODED}"
    stack.ops.s3().put_object(
        Bucket=target.bucket, Key=keys["orders", ENCODED], Body=gzip.compress(CSV), ContentEncoding="gzip"
    )
    return keys


def _object(stack: LocalStack, pipeline: str, key: str) -> dict[str, Any]:
    response = stack.ops.s3().get_object(Bucket=stack.pipeline(pipeline).bucket, Key=key)
    return {"body": response["Body"].read(), "encoding": response.get("ContentEncoding")}


def _output_keys(stack: LocalStack, pipeline: str, prefix: str = "") -> set[str]:
    target = stack.pipeline(pipeline)
    pages = (
        stack.ops.s3()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=target.bucket, Prefix=target.output_prefix + prefix)
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _final(stack: LocalStack, sent: dict[tuple[str, str], str], pipeline: str, name: str) -> dict[str, Any]:
    """The file's state item once final (a failure: once parked)."""
    return stack.wait_until_final(pipeline, sent[pipeline, name], timeout=HANG_GUARD_SECONDS).item


def test_gzip_inputs_are_read_by_suffix_and_by_content_encoding(stack: LocalStack, sent: Sent) -> None:
    # GIVEN the same CSV plain, as .csv.gz, and gzip-compressed under a plain .csv key with its header
    # WHEN they are processed THEN each output is the CSV's records, uncompressed, under the plain name
    prefix = stack.pipeline("orders").output_prefix
    for name, output in (("plain.csv", "plain"), ("suffixed.csv.gz", "suffixed"), (ENCODED, "encoded")):
        item = _final(stack, sent, "orders", name)
        assert item["status"] == FileStatus.SUCCEEDED, item
        assert item["output_key"] == f"{prefix}{output}.ndjson"
        assert _object(stack, "orders", item["output_key"]) == {"body": EXPECTED_NDJSON, "encoding": None}


def test_compressed_outputs_decompress_to_the_uncompressed_runs_output(stack: LocalStack, sent: Sent) -> None:
    # GIVEN the uncompressed run's output of the CSV
    uncompressed = _object(stack, "orders", _final(stack, sent, "orders", "plain.csv")["output_key"])["body"]
    assert uncompressed == EXPECTED_NDJSON

    # WHEN the CSV went through the gzip-output pipeline, and its NDJSON records through the zstd one,
    # plain and zstd-compressed (.ndjson.zst)
    gzipped = _final(stack, sent, "orders-gzip", "plain.csv")
    zstded = [_final(stack, sent, "events", name) for name in ("plain.ndjson", "day.ndjson.zst")]

    # THEN each output is compressed, says so, and decompresses to exactly the uncompressed run's bytes
    assert gzipped["output_key"] == f"{stack.pipeline('orders-gzip').output_prefix}plain.ndjson.gz"
    as_gzip = _object(stack, "orders-gzip", gzipped["output_key"])
    assert as_gzip["encoding"] == "gzip" and gzip.decompress(as_gzip["body"]) == uncompressed
    events = stack.pipeline("events").output_prefix
    assert [item["output_key"] for item in zstded] == [f"{events}plain.ndjson.zst", f"{events}day.ndjson.zst"]
    for item in zstded:
        as_zstd = _object(stack, "events", item["output_key"])
        assert as_zstd["encoding"] == "zstd" and zstd.decompress(as_zstd["body"]) == uncompressed
    # AND the zstd input was read decompressed (the bytes processed are the records', not the object's)
    assert int(zstded[1]["bytes_read"]) == len(EXPECTED_NDJSON)


def test_a_truncated_gzip_is_parked_with_its_reason_and_nothing_else_is_lost(
    stack: LocalStack, sent: Sent
) -> None:
    item = _final(stack, sent, "orders", "cut.csv.gz")

    assert (item["status"], item.get("error_type")) == (FileStatus.FAILED, "CorruptCompressionError"), item
    assert "the gzip stream ends before it is complete" in item["error"]
    parked = next(p for p in stack.parked("orders") if sent["orders", "cut.csv.gz"] in p.keys)
    assert parked.error_type == "CorruptCompressionError" and parked.reason == item["error"]
    assert _final(stack, sent, "orders", "after-cut.csv.gz")["status"] == FileStatus.SUCCEEDED
    assert f"{stack.pipeline('orders').output_prefix}cut.ndjson" not in _output_keys(stack, "orders")


def test_a_gzip_bomb_is_parked_as_too_large_with_both_sizes(stack: LocalStack, sent: Sent) -> None:
    assert len(BOMB) < CAP_BYTES // 16

    item = _final(stack, sent, "orders", "bomb.csv.gz")

    assert (item["status"], item["error_type"]) == (FileStatus.FAILED, "FileTooLargeError")
    assert f"exceeds the size cap of {CAP_BYTES} bytes" in item["error"]
    assert f"of the object's {len(BOMB)} bytes" in item["error"]
    assert f"{stack.pipeline('orders').output_prefix}bomb.ndjson" not in _output_keys(stack, "orders")


def test_the_zip_processor_writes_one_ndjson_per_csv_member(stack: LocalStack, sent: Sent) -> None:
    item = _final(stack, sent, "archives", "batch.zip")

    folder = f"{stack.pipeline('archives').output_prefix}batch.zip/"
    assert item["status"] == FileStatus.SUCCEEDED, item
    assert item["output_key"] == folder
    assert _output_keys(stack, "archives", "batch.zip/") == {f"{folder}a.ndjson", f"{folder}day/b.ndjson"}
    assert stack.file_outputs("archives", sent["archives", "batch.zip"]) == {
        "a.ndjson": EXPECTED_NDJSON,
        "day/b.ndjson": b'{"id":"x"}\n',
    }


def test_a_zip_with_a_path_traversal_member_is_parked_and_writes_nothing(
    stack: LocalStack, sent: Sent
) -> None:
    item = _final(stack, sent, "archives", "evil.zip")

    assert (item["status"], item["error_type"]) == (FileStatus.FAILED, "ProcessorError")
    assert (
        "output name '../escape.ndjson' must be a relative path inside the file's output folder"
        in item["error"]
    )
    # The member opened before the bad one is discarded too: a hostile archive leaves no output.
    assert _output_keys(stack, "archives", "evil.zip") == set()
    assert not any("escape" in key for key in _output_keys(stack, "archives"))


def test_gzip_ndjson_becomes_parquet_typed_by_the_schema_and_read_back_by_duckdb(
    stack: LocalStack, sent: Sent, tmp_path: Any
) -> None:
    # GIVEN gzip NDJSON readings, one of them invalid, through the Parquet pipeline
    final = stack.wait_until_final("readings", sent["readings", "day.ndjson.gz"], timeout=HANG_GUARD_SECONDS)

    # THEN the output is one Parquet object with the valid readings, typed by the schema
    assert final.status == FileStatus.SUCCEEDED, final.item
    assert final.item["output_key"] == f"{stack.pipeline('readings').output_prefix}day.parquet"
    assert (int(final.item["records"]), int(final.item["rejected"])) == (40, 1)
    assert final.output is not None and len(final.output) == 40
    assert final.output[3]["read_at"] == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert final.output[3]["site"] == {"region": "Nord", "postcode": None}
    body = _object(stack, "readings", final.item["output_key"])["body"]
    assert body[:4] == body[-4:] == b"PAR1"
    path = tmp_path / "day.parquet"
    path.write_bytes(body)
    with duckdb.connect() as db:
        types = dict(
            db.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{path}')").fetchall()
        )
        total, region = db.execute(f"SELECT sum(kwh), any_value(site.region) FROM '{path}'").fetchone() or ()
    assert types == {
        "meter": "VARCHAR",
        "read_at": "TIMESTAMP WITH TIME ZONE",
        "kwh": "DOUBLE",
        "estimated": "BOOLEAN",
        "site": "STRUCT(region VARCHAR, postcode VARCHAR)",
    }
    assert total == sum(n / 4 for n in range(len(READING_ROWS))) and region == "Nord"
    # AND the refused reading is in the rejects object beside it, with the schema's reason
    [reject] = [
        json.loads(line)
        for line in _object(stack, "readings", f"{final.item['output_key']}.rejects.ndjson")[
            "body"
        ].splitlines()
    ]
    assert reject["index"] == 40 and reject["record"] == {"meter": "m-x", "kwh": -1}
