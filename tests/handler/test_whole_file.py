"""Whole-file processors: a function that gets the file as a stream and writes its own outputs, with the
pipeline's lease, error classes and parking."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any

from filepipe.handler.settings import DlqAttribute, FileStatus

from .conftest import Aws, FakeContext, dlq_attributes
from .events import s3_body

ZIP_OF_CSVS = "tests.handler.file_processors:zip_of_csvs"
COPY = "tests.handler.file_processors:copy_with_checksum"


def zipped(members: Mapping[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def deliver(aws: Aws, key: str, body: bytes, processor: str) -> dict[str, Any]:
    put = aws.put(key, body)
    response = aws.handler(file_processor=processor)(aws.batch(s3_body(key=key, put=put)), FakeContext())
    return response


def test_each_csv_of_a_zip_becomes_one_ndjson_output_in_the_files_folder(aws: Aws) -> None:
    # GIVEN a zip of two CSVs (one in a folder) and a note that is not a CSV
    body = zipped({"orders.csv": "id,name\n1,café\n2,b\n", "eu/returns.csv": "id\n7\n", "README.txt": "hi"})

    # WHEN it arrives at a pipeline whose file processor unpacks it
    assert deliver(aws, "in/batch.zip", body, ZIP_OF_CSVS) == {"batchItemFailures": []}

    # THEN each CSV is an NDJSON object under the zip's output folder, and the state item says so
    assert aws.keys("out/") == ["out/batch.zip/eu/returns.ndjson", "out/batch.zip/orders.ndjson"]
    lines = aws.read("out/batch.zip/orders.ndjson").decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": "1", "name": "café"}, {"id": "2", "name": "b"}]
    head = aws.s3.head_object(Bucket="filepipe-test", Key="out/batch.zip/orders.ndjson")
    assert head["ContentType"] == "application/x-ndjson"
    [item] = aws.state_items()
    assert (item["status"], item["output_key"], int(item["records"])) == (
        FileStatus.SUCCEEDED,
        "out/batch.zip/",
        2,
    )
    assert int(item["bytes_read"]) == len(body)


def test_a_zip_member_that_climbs_out_of_the_folder_fails_the_file_and_publishes_nothing(aws: Aws) -> None:
    body = zipped({"good.csv": "id\n1\n", "../../escape.csv": "id\n2\n"})

    assert deliver(aws, "in/hostile.zip", body, ZIP_OF_CSVS) == {"batchItemFailures": []}

    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == "ProcessorError"
    assert (
        "'../../escape.ndjson' must be a relative path inside the file's output folder"
        in attributes[DlqAttribute.REASON]
    )
    assert aws.keys("out/") == []  # the member written before it was discarded too
    assert not aws.s3.list_multipart_uploads(Bucket="filepipe-test").get("Uploads")


def test_a_binary_file_is_copied_through_with_its_checksum_and_decompressed_when_gzipped(aws: Aws) -> None:
    # GIVEN 12 MB of random bytes (a multipart output), gzip-compressed
    data = os.urandom(12 * 1024 * 1024)

    assert deliver(aws, "in/scan.bin.gz", gzip.compress(data, compresslevel=1), COPY) == {
        "batchItemFailures": []
    }

    [key] = aws.keys("out/")
    assert key == "out/scan.bin.gz/scan.bin.gz"
    assert aws.read(key) == data
    head = aws.s3.head_object(Bucket="filepipe-test", Key=key)
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert head["Metadata"]["source-key"] == "in/scan.bin.gz"


def test_a_file_processor_that_asks_for_a_retry_is_retried_and_leaves_no_output(aws: Aws) -> None:
    put = aws.put("in/doc.pdf", b"%PDF-1.7 ...")
    event = aws.batch(s3_body(key="in/doc.pdf", put=put))

    response = aws.handler(file_processor="tests.handler.file_processors:downstream_busy")(
        event, FakeContext()
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert aws.keys("out/") == [] and aws.dlq_messages() == []
    [item] = aws.state_items()
    assert (item["status"], item["error_type"]) == (FileStatus.PROCESSING, "RetryLaterError")
