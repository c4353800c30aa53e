"""End to end: a downstream outage on the local endpoint, the circuit breaker built from the dev stack's own
graph (alarms on FilesRetried, the timer, the breaker function switching the endpoint's mapping).

Time is scaled as the local runtime scales it: one alarm period (one second) stands for a minute, so the
breaker's 5-minute cool-down is 5 s and its probe window 5 s. Deadlines only guard against hangs.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from filepipe.handler.breaker import read_status
from filepipe.handler.settings import BreakerState, DlqAttribute, FileStatus, StateAttribute
from filepipe.local.alerts import Alert
from filepipe.local.emf import EmfCapture
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR, wait_until

pytestmark = pytest.mark.e2e

HANG_GUARD_SECONDS = 300
GOOD = json.dumps([{"id": "t-1", "amount": 10.5, "currency": "EUR"}]).encode()
POISON = b'{"id": "t-9", "amount": '


class Outage:
    """While on, every S3 read of the handler fails as a 503 (a downstream outage); records output writes."""

    BODY = b"<Error><Code>ServiceUnavailable</Code><Message>injected outage</Message></Error>"

    def __init__(self) -> None:
        self.on = threading.Event()
        self.writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hook(self, service: str, client: Any) -> None:
        if service == "s3":
            client.meta.events.register("before-send.s3.GetObject", self._fail)
            client.meta.events.register("before-parameter-build.s3.PutObject", self._record)
            client.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", self._record)

    def _fail(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.on.is_set():
            return None

        class Raw:
            def stream(self, **_: Any) -> Iterator[bytes]:
                yield Outage.BODY

        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse(request.url, 503, headers, Raw())

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.writes[str(params["Key"])] += 1


def _dlq(running: RunningStack, url: str) -> list[dict[str, str]]:
    sqs = running.address.client("sqs")
    found: list[dict[str, str]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=600
    ).get("Messages", []):
        found.extend(
            {name: value.get("StringValue", "") for name, value in m.get("MessageAttributes", {}).items()}
            for m in batch
        )
    return found


def _statuses(running: RunningStack, table: str) -> dict[str, str]:
    dynamodb = running.address.client("dynamodb")
    statuses: dict[str, str] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page.get("Items", []):
            statuses[item[StateAttribute.PK.value]["S"]] = item[StateAttribute.STATUS.value]["S"]
    return statuses


@pytest.fixture
def emf_to(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler's EMF lines go to the runtime's metrics (as ``filepipe local up`` does), so the
    breaker's alarms see its FilesRetried; installed before the handlers are built."""

    def install(metrics: Any) -> None:
        monkeypatch.setattr(sys, "stdout", EmfCapture(sys.stdout, metrics, echo=False))

    return install


def test_a_downstream_outage_pauses_the_pipeline_before_any_good_file_is_parked(
    tmp_path: Path, emf_to: Any
) -> None:
    # GIVEN the dev stack (breaker on) whose handler's S3 reads can be made to fail
    outage = Outage()
    alerts: list[Alert] = []
    runtime = LocalRuntime(
        PROJECT_DIR,
        "dev",
        state_dir=tmp_path / "state",
        tuning=LocalTuning.fast(),
        client_hook=outage.hook,
        on_alert=alerts.append,
    )
    emf_to(runtime.metrics)
    with runtime as running:
        assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
        out = running.pipeline_outputs("transactions")
        bucket, prefix, table = out["bucket"], out["inputPrefix"], out["breakerTableName"]
        dynamodb = running.address.client("dynamodb")
        s3 = running.address.client("s3")
        runner = running.runner("transactions")

        def breaker() -> Any:
            return read_status(dynamodb, table)

        def transitions() -> list[tuple[str, str]]:
            return [(entry["from"], entry["to"]) for entry in breaker().history]

        # WHEN the downstream fails every read while files keep arriving (a burst, then a steady stream;
        # every tenth file is poison)
        keys: list[str] = []
        arriving = threading.Event()
        arriving.set()

        def upload() -> None:
            index = 0
            while arriving.is_set():
                for _ in range(20 if index == 0 else 2):
                    key = f"{prefix}outage/file-{index:04d}.json"
                    s3.put_object(Bucket=bucket, Key=key, Body=POISON if index % 10 == 9 else GOOD)
                    keys.append(key)
                    index += 1
                time.sleep(0.2)

        invocations_before = runner.stats.invocations
        outage.on.set()
        uploader = threading.Thread(target=upload, daemon=True)
        uploader.start()
        try:
            # THEN the breaker opens: the mapping is disabled and reports Disabled
            assert wait_until(lambda: breaker().state is BreakerState.OPEN, timeout=HANG_GUARD_SECONDS)
            assert wait_until(lambda: runner.state == "Disabled", timeout=HANG_GUARD_SECONDS)
            # AND after its cool-down it probes, the probes fail and it opens again (longer)
            assert wait_until(
                lambda: ("HALF_OPEN", "OPEN") in transitions(), timeout=HANG_GUARD_SECONDS, interval=0.2
            )
        finally:
            arriving.clear()
            uploader.join(timeout=60)
            # WHEN the outage ends
            outage.on.clear()
        wasted = runner.stats.invocations - invocations_before

        # THEN it probes again, the probes succeed, and it closes at the configured concurrency
        assert wait_until(
            lambda: breaker().state is BreakerState.CLOSED, timeout=HANG_GUARD_SECONDS, interval=0.5
        )
        assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

        history = transitions()
        assert history[0] == ("CLOSED", "OPEN") and history[-1] == ("HALF_OPEN", "CLOSED")
        assert ("OPEN", "HALF_OPEN") in history and ("HALF_OPEN", "OPEN") in history
        # every transition was alerted on the pipeline's topic
        assert wait_until(
            lambda: len([a for a in alerts if "circuit breaker" in a.subject]) == len(history),
            timeout=HANG_GUARD_SECONDS,
        )
        # every good file was processed exactly once, and no good file reached the DLQ
        good = {key for key in keys if not key.endswith(tuple(f"{n}9.json" for n in range(10)))}
        poison = set(keys) - good
        assert good and poison
        statuses = _statuses(running, out["tableName"])
        assert {key: statuses.get(f"{bucket}/{key}") for key in good} == dict.fromkeys(
            good, FileStatus.SUCCEEDED
        )
        outputs = {key: outage.writes[out["outputPrefix"] + key[len(prefix) :]] for key in good}
        assert outputs == dict.fromkeys(good, 1)
        # every poison file was parked once, with its own reason (not as an exhausted retry)
        parked = _dlq(running, out["dlqUrl"])
        assert sorted(p[DlqAttribute.SOURCE_KEY] for p in parked) == sorted(poison)
        assert {p[DlqAttribute.ERROR_TYPE] for p in parked} != {"RetriesExhaustedError"}
        assert all(p[DlqAttribute.ERROR_TYPE] != "RetriesExhaustedError" for p in parked)
        # the invocations spent during the outage are bounded: without the breaker each file would be
        # delivered max_receive_count times before being parked
        assert 0 < wasted < len(keys) * 5
        sys.stderr.write(f"outage: {len(keys)} files, {wasted} invocations, transitions {history}\n")
