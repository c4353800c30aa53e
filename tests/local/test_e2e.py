"""End to end: the dev stack, provisioned from the component on a local endpoint, with the real handler.

Each test starts its own endpoint (any free port) and stops it. Timings use ``LocalTuning.fast()`` so a
retry takes seconds; waits poll until the pipeline drains, with a generous deadline.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from filepipe.handler.settings import DlqAttribute, StateAttribute
from filepipe.local.alerts import Alert
from filepipe.local.apply import EVENT_RULE
from filepipe.local.endpoint import EndpointAddress
from filepipe.local.esm import FunctionSpec, Handler
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR, wait_until

pytestmark = pytest.mark.e2e

GOOD = [{"id": "t-1", "amount": 10.5, "currency": "EUR"}, {"id": "t-2", "amount": 3, "currency": "USD"}]
POISON = b'{"id": "t-9", "amount": '
HANG_GUARD_SECONDS = 900


@pytest.fixture
def start_runtime(tmp_path: Path, e2e_tier: None) -> Iterator[Callable[..., RunningStack]]:
    started: list[LocalRuntime] = []

    def start(project_dir: Path = PROJECT_DIR, stack: str = "dev", **kwargs: Any) -> RunningStack:
        kwargs.setdefault("tuning", LocalTuning.fast())
        runtime = LocalRuntime(project_dir, stack, state_dir=tmp_path / "state", **kwargs)
        running = runtime.start()
        started.append(runtime)
        return running

    yield start
    for runtime in started:
        runtime.stop()


def _objects(runtime: RunningStack, bucket: str, prefix: str) -> list[str]:
    s3 = runtime.address.client("s3")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def _drain_dlq(runtime: RunningStack, url: str) -> list[dict[str, Any]]:
    sqs = runtime.address.client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(
                {
                    name: value.get("StringValue")
                    for name, value in message.get("MessageAttributes", {}).items()
                }
            )


def _statuses(runtime: RunningStack, table: str) -> dict[str, str]:
    dynamodb = runtime.address.client("dynamodb")
    statuses: dict[str, str] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            statuses[item[StateAttribute.PK.value]["S"]] = item[StateAttribute.STATUS.value]["S"]
    return statuses


def test_two_pipelines_on_one_bucket_each_file_reaches_only_its_pipeline(
    start_runtime: Callable[..., RunningStack],
) -> None:
    # GIVEN the dev stack: transactions (JSON) and invoices (CSV) on one bucket
    runtime = start_runtime()
    transactions = runtime.pipeline_outputs("transactions")
    invoices = runtime.pipeline_outputs("invoices")
    assert transactions["bucket"] == invoices["bucket"]
    bucket = transactions["bucket"]
    s3 = runtime.address.client("s3")
    # WHEN a file arrives under each prefix (and one under neither)
    s3.put_object(Bucket=bucket, Key=f"{transactions['inputPrefix']}a.json", Body=json.dumps(GOOD).encode())
    s3.put_object(Bucket=bucket, Key=f"{invoices['inputPrefix']}b.csv", Body=b"id,amount\n1,2.5\n")
    s3.put_object(Bucket=bucket, Key="elsewhere/c.json", Body=json.dumps(GOOD).encode())
    assert wait_until(lambda: len(_objects(runtime, bucket, "processed/")) == 2, timeout=60)
    assert runtime.wait_until_idle(timeout=60)
    # THEN each pipeline processed exactly its own file, and nothing else was invoked
    assert sorted(_objects(runtime, bucket, "processed/")) == [
        f"{invoices['outputPrefix']}b.ndjson",
        f"{transactions['outputPrefix']}a.json",
    ]
    assert set(_statuses(runtime, transactions["tableName"])) == {
        f"{bucket}/{transactions['inputPrefix']}a.json"
    }
    assert set(_statuses(runtime, invoices["tableName"])) == {f"{bucket}/{invoices['inputPrefix']}b.csv"}


class _S3Faults:
    """Fails ``rate`` of the handler's S3 calls with a 503 SlowDown before they reach the endpoint."""

    BODY = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    def __init__(self, rate: float, seed: int = 7) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.injected = 0
        self.lock = threading.Lock()

    def hook(self, service: str, client: Any) -> None:
        if service == "s3":
            client.meta.events.register("before-send.s3", self.maybe_fail)

    def maybe_fail(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        with self.lock:
            if self.random.random() >= self.rate:
                return None
            self.injected += 1

        class Raw:
            def stream(self, **kwargs: Any) -> Iterator[bytes]:
                yield _S3Faults.BODY

        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse(request.url, 503, headers, Raw())


def test_500_files_with_poison_faults_and_duplicates_lose_nothing(
    start_runtime: Callable[..., RunningStack],
) -> None:
    # GIVEN 10% transient S3 faults on the handler's calls and the mapping paused
    faults = _S3Faults(rate=0.10)
    runtime = start_runtime(client_hook=faults.hook)
    out = runtime.pipeline_outputs("transactions")
    bucket, prefix, queue = out["bucket"], out["inputPrefix"], out["queueUrl"]
    runner = runtime.runner("transactions")
    # the s3:TestEvent of the notification setup
    assert runtime.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    runner.set_enabled(False)
    assert runner.wait_until_paused(timeout=HANG_GUARD_SECONDS)
    s3 = runtime.address.client("s3")
    sqs = runtime.address.client("sqs")
    # WHEN 500 files arrive, 5% of them poison
    poison = {f"{prefix}file-{index:03d}.json" for index in range(0, 500, 20)}
    good = {f"{prefix}file-{index:03d}.json" for index in range(500)} - poison
    for key in sorted(good | poison):
        s3.put_object(Bucket=bucket, Key=key, Body=POISON if key in poison else json.dumps(GOOD).encode())
    # Deadlines here only guard against a hang: on a loaded machine the drain takes minutes, and the
    # outcome must not depend on how many.
    assert wait_until(lambda: runtime.queue_depth(queue) == 500, timeout=HANG_GUARD_SECONDS)
    # ... and every S3 event is delivered twice
    bodies: list[str] = []
    while len(bodies) < 500:
        for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=120).get(
            "Messages", []
        ):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    for start in range(0, len(bodies), 5):
        chunk = bodies[start : start + 5]
        entries = [
            {"Id": f"{i}-{copy}", "MessageBody": body} for i, body in enumerate(chunk) for copy in (0, 1)
        ]
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)  # type: ignore[arg-type]
    assert runtime.queue_depth(queue) == 1000
    runner.set_enabled(True)
    # THEN, once the queues drain:
    assert runtime.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    assert faults.injected > 0
    # every good file has exactly one output (one object version: the duplicate was not re-written)
    outputs = set(_objects(runtime, bucket, out["outputPrefix"]))
    assert outputs == {out["outputPrefix"] + key[len(prefix) :] for key in good}
    versions = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=out["outputPrefix"])
    assert sum(len(page.get("Versions", [])) for page in versions) == len(good)
    # the state table agrees
    statuses = _statuses(runtime, out["tableName"])
    assert statuses == {
        **{f"{bucket}/{key}": "SUCCEEDED" for key in good},
        **{f"{bucket}/{key}": "FAILED" for key in poison},
    }
    # nothing lost: the queue is empty, and every poison file (only those) is in the DLQ with a reason
    assert runtime.queue_depth(queue) == 0
    parked = _drain_dlq(runtime, out["dlqUrl"])
    assert {message[DlqAttribute.SOURCE_KEY.value] for message in parked} == poison
    assert all(message.get(DlqAttribute.REASON.value) for message in parked)
    # ... exactly once each, although every event was delivered twice. The guarantee: a parked version
    # keeps its key's lease until the park is recorded, so a duplicate waits and is then acknowledged.
    # Only a failed write of that record (or a dead function) after the DLQ send, followed by a
    # duplicate after the lease expired, parks a version twice; this run injects S3 faults only and its
    # lease outlives any invocation (LocalTuning.fast), so exactly once is the expected outcome here.
    assert Counter(message[DlqAttribute.SOURCE_KEY.value] for message in parked) == dict.fromkeys(poison, 1)


def test_a_handler_that_dies_mid_batch_gets_its_messages_back(
    start_runtime: Callable[..., RunningStack],
) -> None:
    # GIVEN a handler whose first invocation processes part of its batch, then overruns the timeout
    died = threading.Event()

    def dying_handler(
        function: FunctionSpec, environment: Mapping[str, str], address: EndpointAddress
    ) -> Handler:
        from filepipe.handler.app import build_handler
        from filepipe.handler.clients import Clients
        from filepipe.handler.settings import HandlerSettings

        clients = Clients(
            s3=address.client("s3"), sqs=address.client("sqs"), dynamodb=address.client("dynamodb")
        )
        real = build_handler(HandlerSettings.from_env(environment), clients)

        def handler(event: dict[str, Any], context: Any) -> Any:
            records = event["Records"]
            if died.is_set() or len(records) < 2:
                return real(event, context)
            died.set()
            real({"Records": records[:1]}, context)  # the first record completes...
            time.sleep(function.timeout_seconds + 1)  # ...then the sandbox dies: a timeout
            return None

        return handler

    runtime = start_runtime(
        # A timeout well above what the redelivered batch needs on a busy host (less the handler's
        # one-second margin), so that only the dying invocation times out.
        tuning=LocalTuning.fast(function_timeout_seconds=4, visibility_timeout_seconds=5, concurrency=1),
        handler_factory=dying_handler,
    )
    out = runtime.pipeline_outputs("transactions")
    bucket, prefix = out["bucket"], out["inputPrefix"]
    runner = runtime.runner("transactions")
    assert runtime.wait_until_idle(timeout=30)
    runner.set_enabled(False)
    assert runner.wait_until_paused()
    s3 = runtime.address.client("s3")
    keys = [f"{prefix}batch-{index}.json" for index in range(4)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(GOOD).encode())
    assert wait_until(lambda: runtime.queue_depth(out["queueUrl"]) == 4)
    # WHEN the mapping runs
    runner.set_enabled(True)
    assert wait_until(died.is_set)
    assert runtime.wait_until_idle(timeout=60)
    # THEN the timed-out batch came back and every file was processed, none parked
    assert runner.stats.timeouts == 1
    assert set(_objects(runtime, bucket, out["outputPrefix"])) == {
        out["outputPrefix"] + key[len(prefix) :] for key in keys
    }
    assert runtime.queue_depth(out["dlqUrl"]) == 0
    assert set(_statuses(runtime, out["tableName"]).values()) == {"SUCCEEDED"}


def test_a_disabled_mapping_holds_messages_until_enabled(start_runtime: Callable[..., RunningStack]) -> None:
    runtime = start_runtime()
    out = runtime.pipeline_outputs("transactions")
    runner = runtime.runner("transactions")
    assert runtime.wait_until_idle(timeout=30)
    # GIVEN the mapping disabled
    runner.set_enabled(False)
    assert runner.wait_until_paused()
    s3 = runtime.address.client("s3")
    for index in range(3):
        s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}wait-{index}.json", Body=b"[]")
    # WHEN files arrive, THEN they wait in the queue
    assert wait_until(lambda: runtime.queue_depth(out["queueUrl"]) == 3)
    assert runner.wait_until_paused()
    assert runtime.queue_depth(out["queueUrl"]) == 3
    assert _objects(runtime, out["bucket"], out["outputPrefix"]) == []
    # WHEN the mapping is enabled, THEN they drain
    runner.set_enabled(True)
    assert runtime.wait_until_idle(timeout=60)
    assert len(_objects(runtime, out["bucket"], out["outputPrefix"])) == 3


def test_dlq_alarm_fires_once_and_recovers_after_purge(start_runtime: Callable[..., RunningStack]) -> None:
    alerts: list[Alert] = []
    runtime = start_runtime(on_alert=alerts.append)
    out = runtime.pipeline_outputs("transactions")
    alarm = next(name for name in out["alarmNames"] if name.endswith("dlq-depth"))

    def transitions() -> list[tuple[str | None, str | None]]:
        return [
            (a.alarm.get("OldStateValue"), a.state) for a in list(alerts) if a.alarm and a.alarm_name == alarm
        ]

    # GIVEN the alarm settled in OK
    assert wait_until(lambda: transitions() == [("INSUFFICIENT_DATA", "OK")])
    # WHEN three poison files are parked
    s3 = runtime.address.client("s3")
    for index in range(3):
        s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}poison-{index}.json", Body=POISON)
    assert wait_until(lambda: runtime.queue_depth(out["dlqUrl"]) == 3, timeout=60)
    # THEN the alarm fires (once) and notifies the topic
    assert wait_until(lambda: ("OK", "ALARM") in transitions())
    assert runtime.wait_until_idle(timeout=30)
    # WHEN the DLQ is purged, THEN it returns to OK
    runtime.address.client("sqs").purge_queue(QueueUrl=out["dlqUrl"])
    assert wait_until(lambda: ("ALARM", "OK") in transitions())
    assert transitions() == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]
    cloudwatch = runtime.address.client("cloudwatch")
    assert cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"] == "OK"
    logged = (runtime.state_dir / "alerts.log").read_text().splitlines()
    assert sum(1 for line in logged if json.loads(line)["alarmName"] == alarm) == 3


def test_queue_age_alarm_fires_while_the_mapping_is_paused(
    start_runtime: Callable[..., RunningStack],
) -> None:
    # GIVEN a paused mapping and a queue-age alarm whose threshold the test lowers to one second
    alerts: list[Alert] = []
    runtime = start_runtime(on_alert=alerts.append)
    out = runtime.pipeline_outputs("transactions")
    alarm = next(name for name in out["alarmNames"] if name.endswith("queue-age"))
    index = next(i for i, spec in enumerate(runtime.evaluator.alarms) if spec.name == alarm)
    runtime.evaluator.alarms[index] = dataclasses.replace(runtime.evaluator.alarms[index], threshold=1)
    runner = runtime.runner("transactions")
    assert runtime.wait_until_idle(timeout=30)
    runner.set_enabled(False)
    assert runner.wait_until_paused()
    # WHEN a file waits, THEN the alarm fires; WHEN the mapping resumes, THEN it recovers
    runtime.address.client("s3").put_object(
        Bucket=out["bucket"], Key=f"{out['inputPrefix']}late.json", Body=b"[]"
    )
    assert wait_until(lambda: any(a.alarm_name == alarm and a.state == "ALARM" for a in list(alerts)))
    runner.set_enabled(True)
    assert wait_until(
        lambda: any(
            a.alarm_name == alarm and a.alarm and a.alarm["OldStateValue"] == "ALARM" for a in list(alerts)
        )
    )


def test_eventbridge_mode_delivers_through_a_rule(
    start_runtime: Callable[..., RunningStack], tmp_path: Path
) -> None:
    # GIVEN a project whose one pipeline is notified through EventBridge instead of S3 -> SQS
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((PROJECT_DIR / name).read_text())
    (project / "Pulumi.eb.yaml").write_text(
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  filepipe:pipelines:\n"
        "    - name: orders\n"
        "      inputPrefix: incoming/orders/\n"
        "      inputSuffixes: ['.json']\n"
        "      notificationMode: eventbridge\n"
    )
    runtime = start_runtime(project_dir=project, stack="eb")
    assert runtime.captured.of_type(EVENT_RULE.token)
    out = runtime.pipeline_outputs("orders")
    s3 = runtime.address.client("s3")
    # WHEN a matching and a non-matching object arrive
    s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}a.json", Body=json.dumps(GOOD).encode())
    s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}b.txt", Body=b"ignored")
    # THEN only the matching one is processed
    assert wait_until(lambda: _objects(runtime, out["bucket"], out["outputPrefix"]) != [], timeout=30)
    assert runtime.wait_until_idle(timeout=30)
    assert _objects(runtime, out["bucket"], out["outputPrefix"]) == [f"{out['outputPrefix']}a.json"]
