"""End to end on the local endpoint: a late event for an older version never replaces a newer output.

The local events carry ``versionId`` and ``sequencer`` as S3's do, so this runs the same code path as AWS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filepipe.local.runtime import LocalRuntime, LocalTuning
from tests.local.conftest import wait_until

pytestmark = pytest.mark.e2e

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_a_late_event_for_the_older_version_leaves_the_newer_output(tmp_path: Path) -> None:
    with LocalRuntime(PROJECT_DIR, "dev", state_dir=tmp_path, tuning=LocalTuning.fast()) as runtime:
        out = runtime.pipeline_outputs("transactions")
        bucket, queue = out["bucket"], out["queueUrl"]
        key = f"{out['inputPrefix']}overwritten.json"
        output_key = f"{out['outputPrefix']}overwritten.json"
        s3, sqs = runtime.address.client("s3"), runtime.address.client("sqs")
        runner = runtime.runner("transactions")
        assert runtime.wait_until_idle(timeout=30)  # the notification's s3:TestEvent
        runner.set_enabled(False)
        assert runner.wait_until_paused()
        # GIVEN a key uploaded with 2 records, then with 5; both events held in the queue
        for count in (2, 5):
            records = [{"id": f"t-{n}", "amount": n, "currency": "EUR"} for n in range(count)]
            s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(records).encode())
        assert wait_until(lambda: runtime.queue_depth(queue) == 2)
        bodies: list[str] = []
        while len(bodies) < 2:
            for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2).get("Messages", []):
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        older, newer = sorted(
            bodies, key=lambda body: json.loads(body)["Records"][0]["s3"]["object"]["sequencer"]
        )

        # WHEN the newer version's event is processed first, and the older one's arrives late
        sqs.send_message(QueueUrl=queue, MessageBody=newer)
        runner.set_enabled(True)
        assert wait_until(lambda: runtime.queue_depth(queue) == 0, timeout=60)
        assert runtime.wait_until_idle(timeout=60)
        sqs.send_message(QueueUrl=queue, MessageBody=older)
        assert wait_until(lambda: runtime.queue_depth(queue) == 0, timeout=60)
        assert runtime.wait_until_idle(timeout=60)

        # THEN the output still has the newer version's 5 records, written once; nothing was parked
        output = json.loads(s3.get_object(Bucket=bucket, Key=output_key)["Body"].read())
        assert output["record_count"] == 5
        versions = s3.list_object_versions(Bucket=bucket, Prefix=output_key).get("Versions", [])
        assert len(versions) == 1
        assert runtime.queue_depth(out["dlqUrl"]) == 0
