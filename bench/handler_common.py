"""Shared plumbing for the handler benchmarks: a moto server in its own process and the resources.

The handler is imported as the top-level package ``handler`` (exactly as in Lambda, via
``importlib`` so that ``filepipe``'s Pulumi components are never imported by the measured process).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
BUCKET = "filepipe-bench"
STATE_TABLE = "filepipe-bench-state"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:bench-source"
ROOT = Path(__file__).resolve().parent.parent

BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def use_bench_env() -> None:
    os.environ.update(BENCH_ENV)
    for leaked in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(leaked, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
sys.stdin.read()  # run until the parent closes our stdin
server.stop()
"""


@contextlib.contextmanager
def moto_server(cpu: int | None = None) -> Iterator[str]:
    """A moto server in a separate process (its memory is not the handler's), pinned to core ``cpu`` when
    given (so the handler measured on another core has that core to itself); yields the endpoint."""
    port = free_port()
    command = [sys.executable, "-c", _SERVER, str(port)]
    if cpu is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") else command
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **BENCH_ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def client(service: str, endpoint: str) -> Any:
    import boto3

    factory: Any = boto3.client
    return factory(service, endpoint_url=endpoint, region_name=REGION)


def create_resources(endpoint: str) -> str:
    """Bucket, DLQ and state table on the server; returns the DLQ URL."""
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    sqs = client("sqs", endpoint)
    sqs.create_queue(QueueName="bench-source")
    dlq_url: str = sqs.create_queue(QueueName="bench-dlq")["QueueUrl"]
    client("dynamodb", endpoint).create_table(
        TableName=STATE_TABLE,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    return dlq_url


def settings_env(dlq_url: str, input_format: str = "json", state: bool = True) -> dict[str, str]:
    env = {
        "FILEPIPE_PIPELINE_NAME": "bench",
        "FILEPIPE_INPUT_PREFIX": "in/",
        "FILEPIPE_OUTPUT_PREFIX": "out/",
        "FILEPIPE_INPUT_FORMAT": input_format,
        "FILEPIPE_OUTPUT_FORMAT": "json",
        "FILEPIPE_DLQ_URL": dlq_url,
        "FILEPIPE_MAX_FILE_BYTES": str(1024**3),
    }
    if state:
        env["FILEPIPE_STATE_TABLE"] = STATE_TABLE
    return env


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"bench-{index}",
                "receiptHandle": f"rh-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            }
            for index, body in enumerate(bodies)
        ]
    }


def s3_body(key: str, put: dict[str, Any], size: int) -> str:
    from urllib.parse import quote_plus

    obj = {"key": quote_plus(key, safe="/"), "size": size, "eTag": put["ETag"].strip('"')}
    if put.get("VersionId"):
        obj["versionId"] = put["VersionId"]
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2024-05-01T12:00:00.000Z",
        "s3": {"bucket": {"name": BUCKET}, "object": obj},
    }
    return json.dumps({"Records": [record]})


def machine() -> str:
    mem_kb = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return (
        f"nproc={os.cpu_count()} RAM={mem_kb / 1024 / 1024:.1f} GiB python={platform.python_version()} "
        f"arch={platform.machine()}"
    )


def proc_status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the next peak is this phase's alone."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def workload_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every local-pipeline benchmark takes: how many files, through which stack and pipeline."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--pipeline", default="transactions")
    return parser
