"""``filepipe send`` refuses what the pipeline would not process, by the pipeline's own settings (no
endpoint: the settings are the handler's, parsed from the environment its function would have)."""

from __future__ import annotations

import gzip
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from backports import zstd

from filepipe.cli.ops.send import plan_uploads
from filepipe.cli.ops.stack import OpsError, Pipeline
from filepipe.handler.settings import HandlerSettings

CSV = b"id,amount\nt-1,10.5\nt-2,3\n"
PIPELINE = Pipeline(
    name="orders",
    bucket="data",
    input_prefix="incoming/orders/",
    input_suffixes=(".csv", ".csv.gz", ".csv.zst"),
    output_prefix="processed/incoming/orders/",
    queue_url="https://sqs/q",
    queue_arn="arn:aws:sqs:eu-west-1:123456789012:q",
    dlq_url="https://sqs/d",
    dlq_arn="arn:aws:sqs:eu-west-1:123456789012:d",
    function_name="fn",
    log_group_name="/aws/lambda/fn",
    event_source_mapping_id="uuid",
    topic_arn="",
    table_name="",
    alarm_names=(),
)


def settings(**variables: str) -> HandlerSettings:
    """The handler's settings for the environment the component would give ``PIPELINE``'s function."""
    return HandlerSettings.from_env(
        {
            "FILEPIPE_PIPELINE_NAME": "orders",
            "FILEPIPE_INPUT_PREFIX": PIPELINE.input_prefix,
            "FILEPIPE_OUTPUT_PREFIX": PIPELINE.output_prefix,
            "FILEPIPE_INPUT_FORMAT": "csv",
            "FILEPIPE_OUTPUT_FORMAT": "ndjson",
            **{f"FILEPIPE_{name.upper()}": value for name, value in variables.items()},
        }
    )


def refused(tmp_path: Path, name: str, body: bytes, pipeline: Pipeline = PIPELINE, **variables: str) -> str:
    """The one line ``send`` prints for ``body`` sent as ``name`` ("" when it would be sent)."""
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(body)
    try:
        plan_uploads(pipeline, settings(**variables), [tmp_path / name])
    except OpsError as error:
        return str(error)
    return ""


def test_plain_gzip_and_zstd_files_the_pipeline_reads_are_sent(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(CSV)
    (tmp_path / "b.csv.gz").write_bytes(gzip.compress(CSV))
    (tmp_path / "c.csv.zst").write_bytes(zstd.compress(CSV))

    uploads = plan_uploads(PIPELINE, settings(input_compression="auto"), [tmp_path])

    assert [(u.key, u.size) for u in uploads] == [
        ("incoming/orders/a.csv", len(CSV)),
        ("incoming/orders/b.csv.gz", (tmp_path / "b.csv.gz").stat().st_size),
        ("incoming/orders/c.csv.zst", (tmp_path / "c.csv.zst").stat().st_size),
    ]


def test_a_suffix_the_notification_does_not_send_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "notes.txt", b"hello")

    assert (
        message
        == "nothing sent: " + f"{tmp_path / 'notes.txt'}: orders only processes .csv, .csv.gz, .csv.zst files"
    )


def test_with_input_compression_none_a_gzip_file_is_not_a_csv(tmp_path: Path) -> None:
    # GIVEN a pipeline that decompresses nothing, whose suffixes still admit .csv.gz keys
    message = refused(tmp_path, "a.csv.gz", gzip.compress(CSV), input_compression="none")

    # THEN the gzip bytes would be read as CSV: refused, saying why
    assert "a.csv.gz: the file is gzip-compressed but orders would read it as plain csv" in message
    assert "input_compression none" in message


def test_a_compressed_file_under_a_plain_key_is_refused_with_the_name_to_use(tmp_path: Path) -> None:
    message = refused(tmp_path, "a.csv", zstd.compress(CSV), input_compression="auto")

    assert "a.csv: the file is zstd-compressed but orders would read it as plain csv" in message
    assert "name it ....zst" in message


def test_a_gz_key_that_is_not_gzip_is_refused_as_the_handler_would_park_it(tmp_path: Path) -> None:
    message = refused(tmp_path, "a.csv.gz", CSV, input_compression="gzip")

    assert (
        "a.csv.gz: the pipeline would park it as CorruptCompressionError: the gzip stream is corrupt"
        in message
    )


def test_a_truncated_gzip_is_refused_with_the_handlers_reason(tmp_path: Path) -> None:
    whole = gzip.compress(CSV * 100)

    message = refused(tmp_path, "cut.csv.gz", whole[: len(whole) // 2])

    assert "cut.csv.gz: the pipeline would park it as CorruptCompressionError" in message
    assert "ends before it is complete" in message


def test_a_gzip_bomb_is_refused_by_its_decompressed_size(tmp_path: Path) -> None:
    # GIVEN a 1 KB gzip that inflates to 1 MB, for a pipeline capped at 64 KB
    bomb = gzip.compress(b"id\n" + b"0\n" * 500_000)
    assert len(bomb) < 64 * 1024

    message = refused(tmp_path, "bomb.csv.gz", bomb, max_file_bytes=str(64 * 1024))

    assert (
        f"bomb.csv.gz: it decompresses to more than orders's size cap (max_file_bytes) of {64 * 1024}"
        in message
    )
    assert "FileTooLargeError" in message


def test_a_file_above_the_size_cap_and_an_empty_file_are_refused_and_nothing_is_planned(
    tmp_path: Path,
) -> None:
    (tmp_path / "big.csv").write_bytes(CSV * 10)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "fine.csv").write_bytes(CSV)

    with pytest.raises(OpsError) as error:
        plan_uploads(PIPELINE, settings(max_file_bytes="100"), [tmp_path])

    assert f"big.csv: {len(CSV) * 10} bytes, above orders's size cap (max_file_bytes) of 100" in str(
        error.value
    )
    assert "empty.csv: the file is empty: orders parks empty files" in str(error.value)
    assert "fine.csv" not in str(error.value)


def test_a_key_whose_output_key_would_exceed_s3s_limit_is_refused(tmp_path: Path) -> None:
    # GIVEN a key that fits S3's limit under the input prefix but not under the longer output prefix
    (tmp_path / "a.csv").write_bytes(CSV)
    under = "/".join(["d" * 99] * 10)[: 1024 - len(PIPELINE.input_prefix) - len("/a.csv")]

    with pytest.raises(OpsError) as error:
        plan_uploads(PIPELINE, settings(), [tmp_path / "a.csv"], under=under)

    assert "a.csv: its output key would be 1" in str(error.value)
    assert "above S3's limit of 1024" in str(error.value)


def test_a_whole_file_processor_takes_any_bytes_but_still_the_size_cap(tmp_path: Path) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a.csv", CSV)
    zips = replace(PIPELINE, input_suffixes=(".zip",))
    processor = {"file_processor": "file_processors:zip_of_csvs", "input_format": "json"}

    assert refused(tmp_path, "batch.zip", archive.getvalue(), zips, **processor) == ""
    assert refused(tmp_path, "gz.zip", gzip.compress(CSV), zips, input_compression="none", **processor) == ""
    assert "above orders's size cap" in refused(
        tmp_path, "big.zip", b"x" * 200, zips, max_file_bytes="100", **processor
    )
