"""Local end-to-end throughput vs the endpoint's own ceiling, in one run.

    python bench/local_throughput.py [--files 300] [--stack dev] [--pipeline transactions]

1. Pipeline: the stack runs locally (component -> moto, real handler, emulated mapping). The mapping
   is paused while N small files are uploaded (their S3 events queue up), then enabled:
   files/s = N / time to drain. The endpoint's request counter gives the calls the run made.
2. Ceiling, same endpoint, same number of threads as the mapping's pollers: N more files are
   uploaded to a bucket notifying a bare queue, then timed "bare file cycles" do only the calls a file
   needs without the handler: ReceiveMessage, GetObject, PutObject (output), DeleteMessage.
3. Ratio = pipeline files/s / bare cycles/s (target >= 50%): how much of the endpoint's capacity for
   the bare work the whole pipeline (runner, handler, state table, alarms) achieves.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

from filepipe.local.emf import EmfCapture
from filepipe.local.runtime import LocalRuntime, LocalTuning

PROJECT_DIR = Path(__file__).resolve().parents[1]
RECORDS = [{"id": f"t-{i}", "amount": i * 1.5, "currency": "EUR"} for i in range(5)]
BODY = json.dumps(RECORDS).encode()


def _wait_for_depth(runtime: LocalRuntime, queue_url: str, depth: int) -> None:
    deadline = time.monotonic() + 120
    while runtime.queue_depth(queue_url) < depth:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue_url} did not reach {depth} messages")
        time.sleep(0.1)


def pipeline_throughput(runtime: LocalRuntime, pipeline: str, files: int) -> tuple[float, int]:
    """``(files/s, endpoint requests during the run)``."""
    out = runtime.pipeline_outputs(pipeline)
    runner = runtime.runner(pipeline)
    s3 = runtime.address.client("s3")
    if not runtime.wait_until_idle(timeout=30):
        raise RuntimeError("the pipeline did not settle before the run")
    runner.set_enabled(False)
    runner.wait_until_paused()
    for index in range(files):
        s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}bench/{index:05d}.json", Body=BODY)
    _wait_for_depth(runtime, out["queueUrl"], files)
    requests_before = runtime.endpoint_requests
    started = time.perf_counter()
    runner.set_enabled(True)
    if not runtime.wait_until_idle(timeout=600, settle=0.0):
        raise RuntimeError("the pipeline did not drain")
    elapsed = time.perf_counter() - started
    if runner.stats.messages_deleted < files:
        raise RuntimeError(f"only {runner.stats.messages_deleted} of {files} messages were processed")
    return files / elapsed, runtime.endpoint_requests - requests_before


def endpoint_ceiling(runtime: LocalRuntime, cycles: int, threads: int) -> float:
    """Bare file cycles/s (receive, GET, PUT, delete) on ``threads`` threads."""
    address = runtime.address
    s3 = address.client("s3")
    sqs = address.client("sqs")
    bucket = "bench-ceiling"
    s3.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": address.region},  # type: ignore[typeddict-item]
    )
    queue_url = sqs.create_queue(QueueName="bench-ceiling", Attributes={"VisibilityTimeout": "300"})[
        "QueueUrl"
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    sqs.purge_queue(QueueUrl=queue_url)  # the s3:TestEvent
    for index in range(cycles):
        s3.put_object(Bucket=bucket, Key=f"in/{index}.json", Body=BODY)
    _wait_for_depth(runtime, queue_url, cycles)
    remaining = [cycles]
    lock = threading.Lock()

    def worker() -> None:
        s3c = address.client("s3")
        sqsc = address.client("sqs")
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            messages: list[Any] = sqsc.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1)["Messages"]
            key = json.loads(messages[0]["Body"])["Records"][0]["s3"]["object"]["key"].replace("%2F", "/")
            s3c.get_object(Bucket=bucket, Key=key)["Body"].read()
            s3c.put_object(Bucket=bucket, Key=f"out/{key}", Body=BODY)
            sqsc.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return cycles / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--pipeline", default="transactions")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tuning = LocalTuning.fast(log_level="CRITICAL")
    with LocalRuntime(
        PROJECT_DIR, args.stack, state_dir=PROJECT_DIR / ".filepipe" / "bench", tuning=tuning
    ) as runtime:
        assert runtime.metrics is not None
        real_stdout = sys.stdout
        sys.stdout = EmfCapture(real_stdout, runtime.metrics, echo=False)
        try:
            files_per_second, requests = pipeline_throughput(runtime, args.pipeline, args.files)
            threads = runtime.runner(args.pipeline).concurrency
            cycles_per_second = endpoint_ceiling(runtime, args.files, threads)
        finally:
            sys.stdout = real_stdout
    calls_per_file = requests / args.files
    print(f"machine:  {os.cpu_count()} CPUs {platform.machine()}, python {platform.python_version()}")
    print(f"files:    {args.files} small JSON files ({len(BODY)} bytes), pipeline {args.pipeline}")
    print(
        f"pipeline: {files_per_second:8.1f} files/s end to end "
        f"({calls_per_file:.1f} endpoint calls per file: SQS, S3, state table, alarms, idle polls)"
    )
    print(
        f"ceiling:  {cycles_per_second:8.1f} bare file cycles/s = {cycles_per_second * 4:.0f} calls/s "
        f"(receive, GET, PUT, delete; {threads} threads)"
    )
    print(f"ratio:    {files_per_second / cycles_per_second:8.0%} of the endpoint's ceiling (target >= 50%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
