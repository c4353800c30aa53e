"""End to end: the routing stack (``Pulumi.routing.yaml``) on a local endpoint, with the real handler.

The bucket notifies one SNS topic; each pipeline's queue subscribes with its route. Each file must reach
exactly the pipelines whose routes match it, once each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from filepipe.handler.settings import DlqAttribute, StateAttribute
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR, wait_until

pytestmark = pytest.mark.e2e

PIPELINES = ("json", "large-json", "csv", "archive-json", "archive-csv")
GOOD = [{"id": "t-1", "amount": 10.5, "currency": "EUR"}]
POISON = b'{"id": "t-9", "amount": '
LARGE_BYTES = 16 * 1024 * 1024
"""The routing stack's size bound (``routeMinBytes`` of large-json, ``routeMaxBytes`` of json)."""
HANG_GUARD_SECONDS = 600


@pytest.fixture
def routing(tmp_path: Path) -> Iterator[RunningStack]:
    runtime = LocalRuntime(PROJECT_DIR, "routing", state_dir=tmp_path / "state", tuning=LocalTuning.fast())
    try:
        yield runtime.start()
    finally:
        runtime.stop()


def _large_json() -> bytes:
    record = {"id": "t-big", "amount": 1, "currency": "EUR", "note": "x" * 8000}
    count = LARGE_BYTES // len(json.dumps(record)) + 1
    body = json.dumps([dict(record, id=f"t-{index}") for index in range(count)]).encode()
    assert len(body) >= LARGE_BYTES
    return body


def _outputs(running: RunningStack, bucket: str, prefixes: tuple[str, ...]) -> set[str]:
    s3 = running.address.client("s3")
    keys: set[str] = set()
    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _statuses(running: RunningStack, table: str) -> dict[str, str]:
    statuses: dict[str, str] = {}
    for page in running.address.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            statuses[item[StateAttribute.PK.value]["S"]] = item[StateAttribute.STATUS.value]["S"]
    return statuses


def _parked(running: RunningStack, url: str) -> list[str]:
    sqs = running.address.client("sqs")
    keys: list[str] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        keys.extend(m["MessageAttributes"][DlqAttribute.SOURCE_KEY.value]["StringValue"] for m in batch)
    return keys


def test_each_file_reaches_exactly_the_pipelines_whose_routes_match_it(routing: RunningStack) -> None:
    # GIVEN the routing stack: every pipeline on one bucket, behind one topic
    out = {name: routing.pipeline_outputs(name) for name in PIPELINES}
    bucket = out["json"]["bucket"]
    assert {o["bucket"] for o in out.values()} == {bucket}
    s3 = routing.address.client("s3")
    sns = routing.address.client("sns")
    assert routing.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    # ... with json paused, so the event it receives can be delivered again: a duplicate
    json_runner = routing.runner("json")
    json_runner.set_enabled(False)
    assert json_runner.wait_until_paused(timeout=HANG_GUARD_SECONDS)
    files: dict[str, bytes] = {
        "incoming/a.json": json.dumps(GOOD).encode(),
        "incoming/q 1+2.json": json.dumps(GOOD).encode(),  # encoded in the event as S3 encodes it
        "incoming/b.csv": b"id,amount\n1,2.5\n",
        "incoming/big.json": _large_json(),
        "incoming/poison.json": POISON,
        "incoming/c.txt": b"no route ends in .txt",
        "elsewhere/d.json": json.dumps(GOOD).encode(),
    }

    # WHEN the files arrive
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    # ... and the topic publishes the S3 event of a.json twice more (SNS and S3 deliver at least once)
    json_queue = out["json"]["queueUrl"]
    assert wait_until(lambda: routing.queue_depth(json_queue) == 3, timeout=HANG_GUARD_SECONDS)
    sqs = routing.address.client("sqs")
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=json_queue, MaxNumberOfMessages=10)["Messages"]]
    event = next(body for body in bodies if '"incoming/a.json"' in body)
    topic_arn = _routing_topic(routing)
    for _ in range(2):
        sns.publish(TopicArn=topic_arn, Message=event)
    json_runner.set_enabled(True)
    assert routing.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    # THEN each file was processed by exactly the pipelines whose routes match it
    expected_outputs = {
        "processed/json/a.json",
        "processed/json/q 1+2.json",
        "archive/json/a.json",
        "archive/json/q 1+2.json",
        "processed/large-json/big.json",
        "archive/json/big.json",
        "processed/csv/b.ndjson",
        "archive/csv/b.csv",
    }
    assert _outputs(routing, bucket, ("processed/", "archive/")) == expected_outputs
    # ... once each: a.json's duplicates were acknowledged, not written again
    versions = s3.list_object_versions(Bucket=bucket, Prefix="processed/json/a.json").get("Versions", [])
    assert len(versions) == 1
    statuses = {name: _statuses(routing, o["tableName"]) for name, o in out.items()}
    done, failed = "SUCCEEDED", "FAILED"
    assert statuses == {
        "json": {
            f"{bucket}/incoming/a.json": done,
            f"{bucket}/incoming/q 1+2.json": done,
            f"{bucket}/incoming/poison.json": failed,
        },
        "large-json": {f"{bucket}/incoming/big.json": done},
        "csv": {f"{bucket}/incoming/b.csv": done},
        "archive-json": {
            f"{bucket}/incoming/a.json": done,
            f"{bucket}/incoming/q 1+2.json": done,
            f"{bucket}/incoming/big.json": done,
            f"{bucket}/incoming/poison.json": failed,
        },
        "archive-csv": {f"{bucket}/incoming/b.csv": done},
    }
    # ... and the poison file was parked once by each pipeline it reached, with nothing else parked
    parked = {name: _parked(routing, o["dlqUrl"]) for name, o in out.items()}
    assert parked == {
        "json": ["incoming/poison.json"],
        "large-json": [],
        "csv": [],
        "archive-json": ["incoming/poison.json"],
        "archive-csv": [],
    }


def _routing_topic(running: RunningStack) -> str:
    topics = running.address.client("sns").list_topics()["Topics"]
    routes = [t["TopicArn"] for t in topics if t["TopicArn"].rsplit(":", 1)[1].startswith("data-routes")]
    assert len(routes) == 1, topics
    return routes[0]
