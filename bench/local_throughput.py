"""Local end-to-end throughput vs the endpoint's own ceiling, in one run.

    python bench/local_throughput.py [--files 300] [--stack dev] [--pipeline transactions]

1. Pipeline: the stack runs locally (component -> moto, real handler, emulated mapping). The mapping
   is paused while N small files are uploaded (their S3 events queue up), then enabled:
   files/s = N / time to drain. The endpoint's request counter gives the calls the run made.
   Then end to end with the upload: N more files uploaded on as many threads as the mapping has
   pollers while it runs; files/s from the first upload to the last file processed.
2. Ceiling, same endpoint, same number of threads: "bare file cycles" that do only the calls a file
   needs without the handler: ReceiveMessage, GetObject, PutObject (output), DeleteMessage on files
   already queued (drain), and the same preceded by the PutObject of the input (with upload).
3. Ratios = pipeline files/s / bare cycles/s, each against its like (target >= 60%): how much of the
   endpoint's capacity for the bare work the whole pipeline (runner, handler, state table) achieves.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.handler_common import workload_parser
from filepipe.local.emf import EmfCapture
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack

PROJECT_DIR = Path(__file__).resolve().parents[1]
RECORDS = [{"id": f"t-{i}", "amount": i * 1.5, "currency": "EUR"} for i in range(5)]
BODY = json.dumps(RECORDS).encode()


def _wait_for_depth(runtime: RunningStack, queue_url: str, depth: int) -> None:
    deadline = time.monotonic() + 120
    while runtime.queue_depth(queue_url) < depth:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{queue_url} did not reach {depth} messages")
        time.sleep(0.1)


def pipeline_throughput(runtime: RunningStack, pipeline: str, files: int) -> tuple[float, int]:
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


def _parallel(threads: int, count: int, work: Any) -> float:
    """Run ``work(index)`` for ``count`` indexes on ``threads`` threads; return the elapsed seconds."""
    remaining = [count]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
                index = remaining[0]
            work(index)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started


def pipeline_with_uploads(runtime: RunningStack, pipeline: str, files: int, threads: int) -> float:
    """Files/s from the first upload to the last file processed, uploading on ``threads`` threads."""
    out = runtime.pipeline_outputs(pipeline)
    runner = runtime.runner(pipeline)
    done_before = runner.stats.messages_deleted
    clients = threading.local()

    def upload(index: int) -> None:
        if not hasattr(clients, "s3"):
            clients.s3 = runtime.address.client("s3")
        clients.s3.put_object(
            Bucket=out["bucket"], Key=f"{out['inputPrefix']}e2e/{index:05d}.json", Body=BODY
        )

    started = time.perf_counter()
    _parallel(threads, files, upload)
    deadline = time.monotonic() + 600
    while runner.stats.messages_deleted - done_before < files or not runtime.is_idle():
        if time.monotonic() > deadline:
            raise RuntimeError("the pipeline did not drain")
        time.sleep(0.05)
    return files / (time.perf_counter() - started)


def endpoint_ceiling(runtime: RunningStack, cycles: int, threads: int) -> tuple[float, float]:
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
    clients = threading.local()

    def client(service: str) -> Any:
        if not hasattr(clients, service):
            setattr(clients, service, address.client(service))  # type: ignore[call-overload]
        return getattr(clients, service)

    def upload(index: int) -> None:
        client("s3").put_object(Bucket=bucket, Key=f"in/{index}.json", Body=BODY)

    def process() -> None:
        messages: list[Any] = []
        while not messages:
            messages = (
                client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1).get("Messages", [])
            )
        key = json.loads(messages[0]["Body"])["Records"][0]["s3"]["object"]["key"].replace("%2F", "/")
        client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        client("s3").put_object(Bucket=bucket, Key=f"out/{key}", Body=BODY)
        client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])

    # Without the upload: files already queued, as in the pipeline's drain measurement.
    for index in range(cycles):
        upload(index)
    _wait_for_depth(runtime, queue_url, cycles)
    drain = cycles / _parallel(threads, cycles, lambda index: process())

    # With the upload: PUT then process, as in the end-to-end measurement.
    def upload_and_process(index: int) -> None:
        upload(cycles + index)
        process()

    with_upload = cycles / _parallel(threads, cycles, upload_and_process)
    return drain, with_upload


def main() -> int:
    parser = workload_parser(__doc__)
    parser.add_argument("--concurrency", type=int, help="pollers per mapping (default: the mapping's own)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tuning = LocalTuning.fast(log_level="CRITICAL", concurrency=args.concurrency)
    with LocalRuntime(
        PROJECT_DIR, args.stack, state_dir=PROJECT_DIR / ".filepipe" / "bench", tuning=tuning
    ) as runtime:
        real_stdout = sys.stdout
        sys.stdout = EmfCapture(real_stdout, runtime.metrics, echo=False)
        try:
            files_per_second, requests = pipeline_throughput(runtime, args.pipeline, args.files)
            threads = runtime.runner(args.pipeline).concurrency
            end_to_end = pipeline_with_uploads(runtime, args.pipeline, args.files, threads)
            cycles_per_second, cycles_with_upload = endpoint_ceiling(runtime, args.files, threads)
        finally:
            sys.stdout = real_stdout
    calls_per_file = requests / args.files
    print(f"machine:  {os.cpu_count()} CPUs {platform.machine()}, python {platform.python_version()}")
    print(f"files:    {args.files} small JSON files ({len(BODY)} bytes), pipeline {args.pipeline}")
    print(
        f"drain:    pipeline {files_per_second:6.1f} files/s ({calls_per_file:.1f} endpoint calls per file) | "
        f"bare receive+GET+PUT+delete {cycles_per_second:6.1f}/s ({cycles_per_second * 4:.0f} calls/s) | "
        f"ratio {files_per_second / cycles_per_second:4.0%}"
    )
    print(
        f"upload:   pipeline {end_to_end:6.1f} files/s                                | "
        f"bare PUT+receive+GET+PUT+delete {cycles_with_upload:6.1f}/s ({cycles_with_upload * 5:.0f} calls/s) | "
        f"ratio {end_to_end / cycles_with_upload:4.0%}"
    )
    print(f"threads:  {threads} (the mapping's pollers; the bare loops use as many); target ratio >= 60%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
