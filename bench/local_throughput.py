"""Local end-to-end throughput vs the endpoint's own ceiling.

    python bench/local_throughput.py [--files 300] [--stack dev] [--pipeline transactions]

1. Pipeline: the stack runs locally (component -> moto, real handler, emulated mapping); the mapping
   is paused while N small files are uploaded, then enabled; files/s = N / time to drain.
2. Ceiling, same endpoint, same concurrency: the bare calls one file needs without the handler's
   logic: PutObject (input, which makes moto send the S3 event), ReceiveMessage, GetObject,
   PutObject (output), DeleteMessage. Reported as bare file cycles/s and calls/s.
3. Ratio = pipeline files/s / bare cycles/s (target >= 50%).
"""

from __future__ import annotations

import argparse
import json
import logging
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


def pipeline_throughput(runtime: LocalRuntime, pipeline: str, files: int) -> float:
    out = runtime.pipeline_outputs(pipeline)
    runner = runtime.runner(pipeline)
    s3 = runtime.address.client("s3")
    if not runtime.wait_until_idle(timeout=30):
        raise RuntimeError("the pipeline did not settle before the run")
    runner.set_enabled(False)
    runner.wait_until_paused()
    body = json.dumps(RECORDS).encode()
    for index in range(files):
        s3.put_object(Bucket=out["bucket"], Key=f"{out['inputPrefix']}bench/{index:05d}.json", Body=body)
    deadline = time.monotonic() + 120
    while runtime.queue_depth(out["queueUrl"]) < files and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.perf_counter()
    runner.set_enabled(True)
    if not runtime.wait_until_idle(timeout=600, settle=0.0):
        raise RuntimeError("the pipeline did not drain")
    elapsed = time.perf_counter() - started
    done = runner.stats.messages_deleted
    if done < files:
        raise RuntimeError(f"only {done} of {files} messages were processed")
    return files / elapsed


def endpoint_ceiling(runtime: LocalRuntime, cycles: int, threads: int) -> tuple[float, float]:
    """Bare file cycles/s and calls/s, on ``threads`` threads (the runner's concurrency)."""
    address = runtime.address
    s3 = address.client("s3")
    sqs = address.client("sqs")
    bucket = "bench-ceiling"
    s3.create_bucket(
        Bucket=bucket,
        CreateBucketConfiguration={"LocationConstraint": address.region},  # type: ignore[typeddict-item]
    )
    queue_url = sqs.create_queue(QueueName="bench-ceiling")["QueueUrl"]
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
    body = json.dumps(RECORDS).encode()
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
                index = remaining[0]
            s3c.put_object(Bucket=bucket, Key=f"in/{index}.json", Body=body)
            messages: list[Any] = []
            while not messages:
                messages = sqsc.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", [])
            s3c.get_object(Bucket=bucket, Key=f"in/{index}.json")["Body"].read()
            s3c.put_object(Bucket=bucket, Key=f"out/{index}.json", Body=body)
            sqsc.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    return cycles / elapsed, cycles * 5 / elapsed


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
            files_per_second = pipeline_throughput(runtime, args.pipeline, args.files)
            threads = runtime.runner(args.pipeline).concurrency
            cycles_per_second, calls_per_second = endpoint_ceiling(runtime, args.files, threads)
        finally:
            sys.stdout = real_stdout
    ratio = files_per_second / cycles_per_second
    print(f"machine:  {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(
        f"files:    {args.files} small JSON files ({len(json.dumps(RECORDS))} bytes), pipeline {args.pipeline}"
    )
    print(f"pipeline: {files_per_second:8.1f} files/s end to end (S3 event -> SQS -> handler -> S3 + state)")
    print(
        f"ceiling:  {cycles_per_second:8.1f} bare file cycles/s = {calls_per_second:.0f} calls/s "
        f"(PUT, receive, GET, PUT, delete; {threads} threads)"
    )
    print(f"ratio:    {ratio:8.0%} of the endpoint's ceiling (target >= 50%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
