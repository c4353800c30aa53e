"""A downstream outage with the circuit breaker on and off: good files parked, invocations spent.

    python -m bench.breaker_outage [--outage-minutes 10 30] [--rate 10] [--pipeline transactions]

The dev stack runs locally (the breaker is on in it; "off" is the same stack with ``circuitBreaker:
false``, from a copy of the project). While the outage lasts every S3 read of the handler fails with a
503 and good files arrive at a steady rate; then the outage ends and the run waits until every file is
processed or parked (and the breaker is closed).

Time is scaled as the local runtime scales it (``LocalTuning.alarm_period_seconds`` = 1 s stands for a
minute): the alarms take one datapoint per second, the breaker's cool-down (5 min) is 5 s, its maximum
(60 min) 60 s, the probe window 5 s, and an outage of N minutes lasts N seconds. The retry backoff is
the fast tuning's 1 s then 2 s, so a file's fifth and last delivery comes about 7 s (7 scaled minutes)
after its first, like the stack's 30/60/120/240 s schedule (7.5 minutes).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from filepipe.handler.breaker import read_status
from filepipe.handler.settings import BreakerState
from filepipe.local.emf import EmfCapture
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack

PROJECT_DIR = Path(__file__).resolve().parents[1]
BODY = b'[{"id": "t-1", "amount": 10.5, "currency": "EUR"}]'
HANG_GUARD_SECONDS = 600


class Outage:
    """While on, every S3 read of the handler fails as a 503."""

    def __init__(self) -> None:
        self.on = threading.Event()

    def hook(self, service: str, client: Any) -> None:
        if service == "s3":
            client.meta.events.register("before-send.s3.GetObject", self._fail)

    def _fail(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.on.is_set():
            return None

        class Raw:
            def stream(self, **_: Any) -> Iterator[bytes]:
                yield b"<Error><Code>ServiceUnavailable</Code><Message>outage</Message></Error>"

        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse(request.url, 503, headers, Raw())


@dataclass(frozen=True)
class Result:
    breaker: bool
    outage_minutes: int
    files: int
    parked: int
    invocations_during_outage: int
    invocations_total: int
    breaker_invocations: int
    transitions: int
    recovery_seconds: float
    """From the end of the outage until every file is processed or parked (and the breaker closed)."""


@contextmanager
def project_without_breaker() -> Iterator[Path]:
    """A copy of the project whose dev stack has ``circuitBreaker: false``."""
    with tempfile.TemporaryDirectory(prefix="filepipe-no-breaker-") as directory:
        root = Path(directory)
        for name in ("Pulumi.yaml", "__main__.py"):
            shutil.copy(PROJECT_DIR / name, root / name)
        shutil.copytree(PROJECT_DIR / "schemas", root / "schemas")
        config = (PROJECT_DIR / "Pulumi.dev.yaml").read_text(encoding="utf-8")
        if "circuitBreaker: true" not in config:
            raise RuntimeError("Pulumi.dev.yaml no longer turns the breaker on with circuitBreaker: true")
        (root / "Pulumi.dev.yaml").write_text(
            config.replace("circuitBreaker: true", "circuitBreaker: false"), encoding="utf-8"
        )
        yield root


def run(project: Path, breaker: bool, outage_minutes: int, rate: float, pipeline: str) -> Result:
    outage = Outage()
    tuning = LocalTuning.fast(log_level="CRITICAL")
    state_dir = Path(tempfile.mkdtemp(prefix="filepipe-bench-"))
    runtime = LocalRuntime(project, "dev", state_dir=state_dir, tuning=tuning, client_hook=outage.hook)
    real_stdout = sys.stdout
    # Before the start: the breaker's alarms read the handler's EMF metrics.
    sys.stdout = EmfCapture(real_stdout, runtime.metrics, echo=False)
    try:
        with runtime as running:
            return _measure(running, outage, breaker, outage_minutes, rate, pipeline, tuning)
    finally:
        sys.stdout = real_stdout
        shutil.rmtree(state_dir, ignore_errors=True)


def _measure(
    running: RunningStack,
    outage: Outage,
    breaker: bool,
    outage_minutes: int,
    rate: float,
    pipeline: str,
    tuning: LocalTuning,
) -> Result:
    if not running.wait_until_idle(timeout=HANG_GUARD_SECONDS):
        raise RuntimeError("the stack did not settle")
    out = running.pipeline_outputs(pipeline)
    s3 = running.address.client("s3")
    sqs = running.address.client("sqs")
    dynamodb = running.address.client("dynamodb")
    runner = running.runner(pipeline)
    minute = 60 * tuning.time_scale
    before = runner.stats.invocations
    outage.on.set()
    started = time.monotonic()
    files = 0
    end = started + outage_minutes * minute
    total = int(outage_minutes * rate)
    while files < total:
        # Catch up when an upload was slow: the same number of files arrives whatever the machine's load.
        due = min(total, int((time.monotonic() - started) / minute * rate) + 1)
        while files < due:
            s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}outage/{files:05d}.json", Body=BODY)
            files += 1
        time.sleep(max(0.0, started + files * minute / rate - time.monotonic()))
    time.sleep(max(0.0, end - time.monotonic()))
    outage.on.clear()
    during = runner.stats.invocations - before
    ended = time.monotonic()

    def settled() -> bool:
        closed = not breaker or read_status(dynamodb, out["breakerTableName"]).state is BreakerState.CLOSED
        return closed and running.is_idle()

    deadline = ended + HANG_GUARD_SECONDS
    while not settled():
        if time.monotonic() > deadline:
            raise RuntimeError("the pipeline did not recover")
        time.sleep(0.5)
    recovery = (time.monotonic() - ended) / minute
    attributes = sqs.get_queue_attributes(
        QueueUrl=out["dlqUrl"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    parked = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    transitions = len(read_status(dynamodb, out["breakerTableName"]).history) if breaker else 0
    invoker_stats = running.invoker.stats if running.invoker is not None else {}
    breaker_invocations = sum(stats.invocations for name, stats in invoker_stats.items() if pipeline in name)
    return Result(
        breaker=breaker,
        outage_minutes=outage_minutes,
        files=files,
        parked=parked,
        invocations_during_outage=during,
        invocations_total=runner.stats.invocations - before,
        breaker_invocations=breaker_invocations,
        transitions=transitions,
        recovery_seconds=recovery,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outage-minutes", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--rate", type=float, default=10.0, help="good files arriving per (scaled) minute")
    parser.add_argument("--pipeline", default="transactions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    results: list[Result] = []
    with project_without_breaker() as without:
        for minutes in args.outage_minutes:
            for breaker in (True, False):
                project = PROJECT_DIR if breaker else without
                results.append(run(project, breaker, minutes, args.rate, args.pipeline))
    print(f"machine: {os.cpu_count()} CPUs {platform.machine()}, python {platform.python_version()}")
    print(f"workload: {args.rate:g} good files per minute during the outage, every S3 read failing (503)")
    print(
        "outage  breaker  files  parked  invocations(outage)  invocations(total)  breaker calls  "
        "transitions  recovery(min)"
    )
    for r in results:
        print(
            f"{r.outage_minutes:4d}m  {'on ' if r.breaker else 'off'}      {r.files:5d}  {r.parked:6d}  "
            f"{r.invocations_during_outage:19d}  {r.invocations_total:18d}  {r.breaker_invocations:13d}  "
            f"{r.transitions:11d}  {r.recovery_seconds:13.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
