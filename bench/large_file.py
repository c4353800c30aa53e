"""A file many times larger than one invocation can process, through the local pipeline.

The project of ``tests/local/test_large_file_e2e.py`` (one NDJSON pipeline) with a short function
timeout: the file is continued from checkpoint to checkpoint. Prints the invocations it took, the wall
time, and whether the output is the input (compact NDJSON passes through unchanged).

    python -m bench.large_file [--mb 300] [--timeout 10]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from bench.handler_common import machine
from filepipe.handler.settings import FileStatus, StateAttribute
from filepipe.local.runtime import LocalRuntime
from tests.local.test_large_file_e2e import large_file_project, large_file_tuning, ndjson_body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=300, help="file size in MB (10**6 bytes)")
    parser.add_argument("--timeout", type=int, default=10, help="the function's timeout in seconds")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runtime = LocalRuntime(
            large_file_project(root, args.timeout),
            "large",
            state_dir=root / "state",
            tuning=large_file_tuning(args.timeout),
        )
        running = runtime.start()
        try:
            out = running.pipeline_outputs("events")
            bucket, key = out["bucket"], f"{out['inputPrefix']}day.ndjson"
            body = ndjson_body(args.mb * 1000 * 1000)
            digest, size = hashlib.sha256(body).hexdigest(), len(body)
            s3, dynamodb = running.address.client("s3"), running.address.client("dynamodb")
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            del body
            started = time.monotonic()
            while True:
                item = dynamodb.get_item(
                    TableName=out["tableName"], Key={"pk": {"S": f"{bucket}/{key}"}}
                ).get("Item", {})
                if item.get(StateAttribute.STATUS.value, {}).get("S") in (
                    FileStatus.SUCCEEDED,
                    FileStatus.FAILED,
                ):
                    break
                time.sleep(0.5)
            elapsed = time.monotonic() - started
            running.wait_until_idle(timeout=600)
            if item[StateAttribute.STATUS.value]["S"] != FileStatus.SUCCEEDED:
                error = item.get(StateAttribute.ERROR.value, {}).get("S", "")
                raise SystemExit(
                    f"the file FAILED: {item.get(StateAttribute.ERROR_TYPE.value, {}).get('S')}: {error}"
                )
            output = s3.get_object(Bucket=bucket, Key=f"{out['outputPrefix']}day.ndjson")["Body"]
            check = hashlib.sha256()
            for chunk in iter(lambda: output.read(8 * 1024 * 1024), b""):
                check.update(chunk)
            stats = running.runner("events").stats
            print(
                f"{size / 1e6:.0f} MB, timeout {args.timeout} s: {item[StateAttribute.STATUS.value]['S']} after"
                f" {stats.invocations} invocations in {elapsed:.0f} s ({size / 1e6 / elapsed:.1f} MB/s end to end);"
                f" output identical to the input: {check.hexdigest() == digest}"
            )
        finally:
            runtime.stop()


if __name__ == "__main__":
    main()
