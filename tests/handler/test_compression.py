"""Compressed inputs (gzip, zstd): decompressed as they stream, the size cap on the decompressed bytes,
corrupt and truncated streams refused with their reason, and continued files resumed inside the stream;
and compressed outputs, whose decompressed bytes are the uncompressed output."""

from __future__ import annotations

import gzip
import json
import random
from typing import Any

import pytest
from backports import zstd

from filepipe.handler.settings import (
    DlqAttribute,
    FileFormat,
    FileStatus,
    InputCompression,
    OutputCompression,
)

from .conftest import BUCKET, Aws, FakeContext, dlq_attributes
from .events import s3_body
from .test_continuation import (
    Clock,
    handler_for,
    ndjson_file,
    run_to_the_end,
    single_run_output,
    without_time,
)

NDJSON: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.NDJSON}
ROWS = [{"id": n, "name": f"café {n}", "note": "x" * (n % 40)} for n in range(3_000)]
NDJSON_BODY = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS).encode()
CSV_BODY = ("id,name\r\n" + "".join(f"{n},name {n}\r\n" for n in range(3_000))).encode()


def zstd_checked(data: bytes) -> bytes:
    """zstd as the ``zstd`` command writes it: with the frame's content checksum."""
    return bytes(zstd.compress(data, options={zstd.CompressionParameter.checksum_flag: 1}))


def two_gzip_members(data: bytes) -> bytes:
    """``cat a.gz b.gz``: a gzip file of two members, which ``gzip -d`` reads as one stream."""
    middle = len(data) // 2
    return gzip.compress(data[:middle]) + gzip.compress(data[middle:])


def parked_reason(aws: Aws) -> tuple[str, str]:
    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    return attributes[DlqAttribute.ERROR_TYPE], attributes[DlqAttribute.REASON]


def process(aws: Aws, key: str, body: bytes, **overrides: Any) -> dict[str, Any]:
    put = aws.put(key, body)
    response = aws.handler(**overrides)(aws.batch(s3_body(key=key, put=put)), FakeContext())
    assert response == {"batchItemFailures": []}
    [item] = aws.state_items()
    return item


@pytest.mark.parametrize(
    ("key", "compress", "settings", "plain", "output_key"),
    [
        pytest.param(
            "in/day.ndjson.gz", gzip.compress, NDJSON, NDJSON_BODY, "out/day.ndjson", id="ndjson-gzip"
        ),
        pytest.param(
            "in/day.ndjson.gz", two_gzip_members, NDJSON, NDJSON_BODY, "out/day.ndjson", id="gzip-two-members"
        ),
        pytest.param(
            "in/day.ndjson.zst", zstd_checked, NDJSON, NDJSON_BODY, "out/day.ndjson", id="ndjson-zstd"
        ),
        pytest.param(
            "in/day.csv.gz",
            gzip.compress,
            {"input_format": FileFormat.CSV, "output_format": FileFormat.NDJSON},
            CSV_BODY,
            "out/day.ndjson",
            id="csv-gzip-to-ndjson",
        ),
    ],
)
def test_a_compressed_file_gives_the_output_of_the_same_file_uncompressed(
    aws: Aws, key: str, compress: Any, settings: dict[str, Any], plain: bytes, output_key: str
) -> None:
    # GIVEN what the file gives uncompressed
    expected = single_run_output(aws, key.rsplit(".", 1)[0], plain, **settings)

    # WHEN it arrives compressed, its suffix saying how (the default: auto)
    item = process(aws, key, compress(plain), **settings)

    # THEN the output is the same, under the key without the compression's suffix
    assert (item["status"], item["output_key"]) == (FileStatus.SUCCEEDED, output_key)
    assert aws.read(output_key) == expected
    assert int(item["bytes_read"]) == len(plain)  # the decompressed bytes, as the records' offsets


def test_a_plain_key_stored_with_a_gzip_content_encoding_is_decompressed(aws: Aws) -> None:
    expected = single_run_output(aws, "in/plain.ndjson", NDJSON_BODY, **NDJSON)
    key = "in/encoded.ndjson"
    stored = aws.s3.put_object(
        Bucket=BUCKET, Key=key, Body=gzip.compress(NDJSON_BODY), ContentEncoding="gzip"
    )
    put = {**stored, "size": len(gzip.compress(NDJSON_BODY)), "sequencer": "0055AED6DCD90281E5"}

    response = aws.handler(**NDJSON)(aws.batch(s3_body(key=key, put=put)), FakeContext())

    assert response == {"batchItemFailures": []}
    assert aws.read("out/encoded.ndjson") == expected


def test_with_compression_none_a_gz_key_is_read_as_it_is(aws: Aws) -> None:
    item = process(
        aws, "in/raw.ndjson.gz", gzip.compress(NDJSON_BODY), input_compression=InputCompression.NONE, **NDJSON
    )

    assert item["status"] == FileStatus.FAILED
    assert parked_reason(aws)[0] == "InvalidEncodingError"


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        pytest.param(
            "in/cut.ndjson.gz",
            gzip.compress(NDJSON_BODY)[:-20],
            "ends before it is complete",
            id="gzip-truncated",
        ),
        pytest.param(
            "in/cut.ndjson.zst",
            zstd_checked(NDJSON_BODY)[:-20],
            "ends before it is complete",
            id="zstd-truncated",
        ),
        pytest.param(
            "in/flipped.ndjson.gz",
            gzip.compress(NDJSON_BODY)[:-8] + b"\0\0\0\0" + gzip.compress(NDJSON_BODY)[-4:],
            "corrupt",
            id="gzip-bad-checksum",
        ),
        pytest.param(
            "in/flipped.ndjson.zst",
            zstd_checked(NDJSON_BODY)[:-4] + b"\0\0\0\0",
            "corrupt",
            id="zstd-bad-checksum",
        ),
        pytest.param("in/not.ndjson.gz", NDJSON_BODY, "corrupt", id="not-gzip-at-all"),
    ],
)
def test_a_corrupt_or_truncated_stream_is_parked_once_with_its_reason_and_writes_nothing(
    aws: Aws, key: str, body: bytes, reason: str
) -> None:
    item = process(aws, key, body, **NDJSON)

    assert item["status"] == FileStatus.FAILED
    error_type, worded = parked_reason(aws)
    assert error_type == "CorruptCompressionError"
    assert reason in worded
    assert aws.keys("out/") == []


def test_a_compression_bomb_is_too_large_by_its_decompressed_size(aws: Aws) -> None:
    # GIVEN under 1 MB of gzip that inflates to 45 MB of records, for a pipeline capped at 20 MB (past
    # the first output part: the multipart upload has begun when the cap is reached)
    bomb = gzip.compress(b'{"a": 1}\n' * 5_000_000, compresslevel=9)
    assert len(bomb) < 1_000_000

    item = process(aws, "in/bomb.ndjson.gz", bomb, max_file_bytes=20_000_000, **NDJSON)

    # THEN it is refused as too large, saying both sizes (it never inflated whole), and the output's
    # upload is aborted
    assert item["status"] == FileStatus.FAILED
    error_type, reason = parked_reason(aws)
    assert error_type == "FileTooLargeError"
    assert "size cap of 20000000" in reason and f"of the object's {len(bomb)} bytes" in reason
    assert aws.keys("out/") == []
    assert not aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_compressed_file_larger_than_one_invocation_is_continued_into_the_single_run_output(
    aws: Aws,
) -> None:
    # GIVEN a ~20 MB NDJSON file, gzip-compressed, and invocations that each have time for 14 batches
    body = ndjson_file(200_000)
    expected = single_run_output(aws, "in/long.ndjson", body, **NDJSON)
    put = aws.put("in/long.ndjson.gz", gzip.compress(body, compresslevel=1))

    # WHEN each fresh copy is handled in turn (each one reads the stream again up to where it resumes)
    handler = handler_for(aws, Clock(), **NDJSON)
    invocations = run_to_the_end(aws, handler, aws.batch(s3_body(key="in/long.ndjson.gz", put=put)), 14)

    # THEN it took several invocations and wrote the single-run output once
    assert invocations >= 2
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert aws.read("out/long.ndjson") == expected


def decompress(data: bytes, encoding: str) -> bytes:
    return gzip.decompress(data) if encoding == "gzip" else bytes(zstd.decompress(data))


@pytest.mark.parametrize(
    ("compression", "suffix"),
    [
        pytest.param(OutputCompression.GZIP, ".gz", id="gzip"),
        pytest.param(OutputCompression.ZSTD, ".zst", id="zstd"),
    ],
)
@pytest.mark.parametrize("output_format", [FileFormat.NDJSON, FileFormat.JSON], ids=["ndjson", "envelope"])
def test_a_compressed_output_is_the_uncompressed_output_under_the_compressions_suffix(
    aws: Aws, compression: OutputCompression, suffix: str, output_format: FileFormat
) -> None:
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": output_format}
    expected = single_run_output(aws, "in/day.ndjson", NDJSON_BODY, **settings)

    item = process(aws, "in/day.ndjson", NDJSON_BODY, output_compression=compression, **settings)

    extension = ".ndjson" if output_format is FileFormat.NDJSON else ".json"
    assert item["output_key"] == f"out/day{extension}{suffix}"
    head = aws.s3.head_object(Bucket=BUCKET, Key=item["output_key"])
    assert head["ContentEncoding"] == compression.value
    assert head["ContentType"] == (
        "application/x-ndjson" if output_format is FileFormat.NDJSON else "application/json"
    )
    written = decompress(aws.read(item["output_key"]), compression.value)
    if output_format is FileFormat.JSON:
        assert without_time(written) == without_time(expected)
    else:
        assert written == expected


def test_a_compressed_output_continued_over_several_invocations_decompresses_to_the_single_run_output(
    aws: Aws,
) -> None:
    # GIVEN a ~33 MB file of random hex (it compresses to about half), and invocations that each have time
    # for 30 batches: more than S3's smallest part once compressed (a compressed output needs more input
    # to make a part), writing gzip
    rng = random.Random(7)
    body = b"".join(
        json.dumps({"n": n, "r": rng.randbytes(48).hex()}).encode() + b"\n" for n in range(300_000)
    )
    expected = single_run_output(aws, "in/long.ndjson", body, **NDJSON)
    put = aws.put("in/long.ndjson", body)

    # WHEN each fresh copy is handled in turn
    handler = handler_for(aws, Clock(), output_compression=OutputCompression.GZIP, **NDJSON)
    invocations = run_to_the_end(aws, handler, aws.batch(s3_body(key="in/long.ndjson", put=put)), 30)

    # THEN the object is one gzip stream of several members (one per part at least), the single run's
    # output once decompressed
    assert invocations >= 2
    written = aws.read("out/long.ndjson.gz")
    assert written.count(b"\x1f\x8b\x08") >= 2
    assert gzip.decompress(written) == expected


def test_an_empty_compressed_output_is_still_a_valid_stream(aws: Aws) -> None:
    item = process(
        aws,
        "in/header-only.csv",
        b"id,name\r\n",
        input_format=FileFormat.CSV,
        output_format=FileFormat.NDJSON,
        output_compression=OutputCompression.GZIP,
    )

    assert (item["status"], int(item["records"])) == (FileStatus.SUCCEEDED, 0)
    assert gzip.decompress(aws.read("out/header-only.ndjson.gz")) == b""
