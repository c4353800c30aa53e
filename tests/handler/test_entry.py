"""The Lambda entry point, several pipelines in one process, and multipart output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from filepipe.handler import app
from filepipe.handler.errors import OutputIntegrityError
from filepipe.handler.settings import EnvVar
from filepipe.handler.writers import MIN_PART_BYTES, S3StreamWriter, UploadState

from .conftest import BUCKET, STATE_TABLE, Aws, FakeContext
from .events import s3_body


def test_lambda_handler_reads_settings_from_the_environment_once(
    aws: Aws, context: FakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the variables the component sets, and a fresh container
    for var, value in {
        EnvVar.PIPELINE_NAME: "orders",
        EnvVar.INPUT_PREFIX: "in/",
        EnvVar.OUTPUT_PREFIX: "out/",
        EnvVar.OUTPUT_FORMAT: "ndjson",
        EnvVar.STATE_TABLE: STATE_TABLE,
        EnvVar.DLQ_URL: aws.dlq_url,
    }.items():
        monkeypatch.setenv(var.value, value)
    monkeypatch.setattr(app, "_handler", None)
    put = aws.put("in/env.json", "[1, 2]")

    # WHEN invoked twice, the environment changing in between
    first = app.lambda_handler(aws.batch(s3_body(key="in/env.json", put=put)), context)
    monkeypatch.setenv(EnvVar.OUTPUT_PREFIX.value, "elsewhere/")
    second = app.lambda_handler(aws.batch(s3_body(key="in/env.json", put=put)), context)

    # THEN the settings of the first call stay; the duplicate is skipped
    assert first == second == {"batchItemFailures": []}
    assert aws.keys("out/") == ["out/env.ndjson"]
    assert aws.keys("elsewhere/") == []


def test_several_pipelines_in_one_process_keep_their_own_metrics(
    aws: Aws, context: FakeContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two pipelines built in one process, as the local runner does
    orders = aws.handler(pipeline_name="orders", output_prefix="out/orders/")
    invoices = aws.handler(pipeline_name="invoices", output_prefix="out/invoices/", state_table=None)
    put_a = aws.put("in/a.json", "[1, 2, 3]")
    put_b = aws.put("in/b.json", "[1]")
    capsys.readouterr()

    # WHEN each handles its own batch
    orders(aws.batch(s3_body(key="in/a.json", put=put_a)), context)
    invoices(aws.batch(s3_body(key="in/b.json", put=put_b)), context)

    # THEN each EMF blob names its pipeline and carries only its own records
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [(blob["pipeline"], blob["RecordsProcessed"]) for blob in blobs] == [
        ("orders", [3.0]),
        ("invoices", [1.0]),
    ]
    assert aws.keys("out/") == ["out/invoices/b.json", "out/orders/a.json"]


def test_large_output_is_a_multipart_upload_and_abort_leaves_nothing(aws: Aws) -> None:
    # GIVEN data larger than two parts
    chunk = b"x" * (1024 * 1024)
    complete = S3StreamWriter(
        aws.s3, BUCKET, "out/big.bin", "application/octet-stream", {"a": "b"}, MIN_PART_BYTES
    )
    aborted = S3StreamWriter(
        aws.s3, BUCKET, "out/aborted.bin", "application/octet-stream", {}, MIN_PART_BYTES
    )
    uploads = aws.faults.record(aws.s3, "UploadPart")

    # WHEN one writer completes and the other aborts mid-way
    for _ in range(11):
        complete.write(chunk)
        complete.flush_full()
    complete.close()
    for _ in range(6):
        aborted.write(chunk)
        aborted.flush_full()
    aborted.abort()

    # THEN
    head: Any = aws.s3.head_object(Bucket=BUCKET, Key="out/big.bin")
    assert head["ContentLength"] == 11 * len(chunk)
    assert head["Metadata"] == {"a": "b"}
    assert len(uploads) == 4  # 3 parts, then 1 before the abort
    assert aws.keys("out/") == ["out/big.bin"]
    assert aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_multipart_output_that_does_not_hold_what_was_written_is_refused(aws: Aws) -> None:
    # GIVEN an upload handed over with one part of 5 MiB, but a checkpoint that counted more bytes
    key = "out/handed-over.bin"
    upload_id = aws.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part = aws.s3.upload_part(
        Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * MIN_PART_BYTES
    )
    wrong = UploadState(upload_id, [part["ETag"]], b"tail", MIN_PART_BYTES + 4 + 1)
    writer = S3StreamWriter(aws.s3, BUCKET, key, "application/octet-stream", {}, MIN_PART_BYTES, wrong)

    # WHEN it completes, THEN the mismatch is a permanent error, not a done file
    with pytest.raises(OutputIntegrityError, match="holds 5242884 bytes but 5242885 were written"):
        writer.close()
