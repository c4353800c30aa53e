"""End to end: the dev stack on a real local endpoint delivers S3 events shaped as S3 shapes them.

The functions are replaced by a recorder, so what is checked is exactly what a deployed handler would
receive from its queue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from filepipe.local.endpoint import EndpointAddress
from filepipe.local.esm import FunctionSpec, Handler
from filepipe.local.runtime import LocalRuntime, LocalTuning
from tests.local.conftest import PROJECT_DIR, wait_until

pytestmark = pytest.mark.e2e


class Recorder:
    """Stands in for every function: keeps the S3 records its batches carry, succeeds every message."""

    def __init__(self) -> None:
        self.objects: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def factory(
        self, function: FunctionSpec, environment: Mapping[str, str], address: EndpointAddress
    ) -> Handler:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            for message in event["Records"]:
                for record in json.loads(message["body"]).get("Records", []):
                    with self._lock:
                        self.objects.append(record["s3"]["object"])
            return {"batchItemFailures": []}

        return handler


def test_events_carry_version_sequencer_and_s3_key_encoding(tmp_path: Path) -> None:
    recorder = Recorder()
    with LocalRuntime(
        PROJECT_DIR, "dev", state_dir=tmp_path, tuning=LocalTuning.fast(), handler_factory=recorder.factory
    ) as runtime:
        out = runtime.pipeline_outputs("transactions")
        bucket, prefix = out["bucket"], out["inputPrefix"]
        s3 = runtime.address.client("s3")
        # GIVEN the dev stack's bucket, versioned as the component creates it
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        # WHEN a file is uploaded twice, and a file whose key has a folder, spaces and a '+'
        key = f"{prefix}twice.json"
        versions = [
            s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"] for body in (b"[1]", b"[2]")
        ]
        odd_key = f"{prefix}sub dir/a b+c.json"
        s3.put_object(Bucket=bucket, Key=odd_key, Body=b"[]")
        assert wait_until(lambda: len(recorder.objects) == 3)
    # THEN the two events of one key name its two versions, the later with the greater sequencer
    # (the mapping's pollers may deliver them in either order, as Lambda's may)
    twice = sorted((o for o in recorder.objects if o["key"] == key), key=lambda o: o["sequencer"])
    assert [o["versionId"] for o in twice] == versions
    assert versions[0] != versions[1]
    assert len(twice[0]["sequencer"]) == len(twice[1]["sequencer"])
    # AND keys are form-encoded with '/' kept, as S3 writes them
    assert [o["key"] for o in recorder.objects if o["key"] != key] == [f"{prefix}sub+dir/a+b%2Bc.json"]
