"""Whole-process cold start of the handler (imports + clients) against a bare boto3 S3 client.

Each sample is a fresh ``python`` process, timed from spawn to exit by the parent, and inside the
process from the first import to the clients being ready. The handler is imported as the top-level
package ``handler`` (as in Lambda). Target: within 1.1x of ``import boto3; boto3.client('s3')``.

    python -m bench.handler_cold_start [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.handler_common import BENCH_ENV, ROOT, machine

_TIMED = """
import time, json
t0 = time.perf_counter()
{body}
print(json.dumps({{"in_process": time.perf_counter() - t0}}))
"""

BARE = """
import boto3
boto3.client("s3")
"""

HANDLER_FIRST_SUCCESS = """
import handler.app as app
from handler.settings import HandlerSettings
h = app.build_handler(HandlerSettings.from_env())
h.clients.s3, h.clients.dynamodb  # what the first successful invocation creates
"""

HANDLER_ALL_CLIENTS = HANDLER_FIRST_SUCCESS + "h.clients.sqs\n"

CASES = {
    "bare: import boto3; boto3.client('s3')": BARE,
    "handler: imports + s3 + dynamodb (first successful call)": HANDLER_FIRST_SUCCESS,
    "handler: imports + s3 + dynamodb + sqs": HANDLER_ALL_CLIENTS,
}

ENV = {
    **BENCH_ENV,
    "FILEPIPE_PIPELINE_NAME": "bench",
    "FILEPIPE_OUTPUT_PREFIX": "out/",
    "FILEPIPE_STATE_TABLE": "state",
    "FILEPIPE_DLQ_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
}


def sample(body: str) -> tuple[float, float]:
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", _TIMED.format(body=body)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **ENV},
    ).stdout
    wall = time.perf_counter() - started
    return wall, float(json.loads(output.strip().splitlines()[-1])["in_process"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(machine())
    for body in CASES.values():  # warm the OS page cache and .pyc files
        sample(body)
    results: dict[str, tuple[float, float]] = {}
    for name, body in CASES.items():
        samples = [sample(body) for _ in range(args.runs)]
        results[name] = (
            statistics.median(wall for wall, _ in samples),
            statistics.median(inner for _, inner in samples),
        )
    bare_wall, bare_inner = next(iter(results.values()))
    print(f"{'case':58} {'process ms':>10} {'ratio':>6} {'imports+clients ms':>19} {'ratio':>6}")
    for name, (wall, inner) in results.items():
        print(
            f"{name:58} {wall * 1000:10.0f} {wall / bare_wall:6.2f} {inner * 1000:19.0f} {inner / bare_inner:6.2f}"
        )
    print(f"median of {args.runs} runs each; target: process ratio <= 1.10")


if __name__ == "__main__":
    main()
