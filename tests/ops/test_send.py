"""``filepipe send``: files land under the input prefix and are processed; bad input sends nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filepipe.handler.settings import FileStatus, StateAttribute
from filepipe.local.runtime import RunningStack
from tests.ops.conftest import HANG_GUARD_SECONDS, Ops, good_transactions

pytestmark = pytest.mark.e2e


def _keys(running: RunningStack, bucket: str, prefix: str) -> set[str]:
    s3 = running.address.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_send_uploads_files_and_folders_under_the_input_prefix_and_they_are_processed(
    running: RunningStack, ops: Ops, tmp_path: Path
) -> None:
    single = tmp_path / "one.json"
    single.write_bytes(good_transactions())
    folder = tmp_path / "batch"
    (folder / "day-1").mkdir(parents=True)
    (folder / "day-1" / "two.json").write_bytes(good_transactions(3))
    (folder / "three.json").write_bytes(good_transactions(1))

    result = ops(f"send transactions {single} {folder} --under sent --json")

    assert result.exit_code == 0, result.stderr
    outputs = running.pipeline_outputs("transactions")
    prefix = f"{outputs['inputPrefix']}sent/"
    expected = {f"{prefix}one.json", f"{prefix}day-1/two.json", f"{prefix}three.json"}
    assert {entry["key"] for entry in result.json()["uploaded"]} == expected
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    dynamodb = running.address.client("dynamodb")
    for key in expected:
        item = dynamodb.get_item(
            TableName=outputs["tableName"], Key={StateAttribute.PK: {"S": f"{outputs['bucket']}/{key}"}}
        )["Item"]
        assert item[StateAttribute.STATUS]["S"] == FileStatus.SUCCEEDED
    written = _keys(running, outputs["bucket"], f"{outputs['outputPrefix']}sent/")
    assert len(written) == 3
    body = running.address.client("s3").get_object(Bucket=outputs["bucket"], Key=sorted(written)[0])["Body"]
    assert json.loads(body.read())


def test_send_refuses_a_file_the_pipeline_would_not_process_and_uploads_nothing(
    running: RunningStack, ops: Ops, tmp_path: Path
) -> None:
    good = tmp_path / "fine.json"
    good.write_bytes(good_transactions())
    wrong = tmp_path / "notes.txt"
    wrong.write_text("not a transaction file")

    result = ops(f"send transactions {good} {wrong} --under refused")

    assert result.exit_code == 2
    assert "nothing sent" in result.stderr
    assert "notes.txt: transactions only processes .json files" in result.stderr
    outputs = running.pipeline_outputs("transactions")
    assert _keys(running, outputs["bucket"], f"{outputs['inputPrefix']}refused/") == set()


def test_send_of_a_missing_file_names_it(ops: Ops, tmp_path: Path) -> None:
    result = ops(f"send transactions {tmp_path / 'absent.json'}")

    assert result.exit_code == 2
    assert f"{tmp_path / 'absent.json'}: no such file" in result.stderr
