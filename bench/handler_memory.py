"""Peak RSS growth of the real handler streaming a large JSON array / NDJSON file from S3.

S3 is a moto server in another process; each measurement runs in a fresh worker process that imports
the handler, warms up on a small file, resets its peak-RSS counter, then processes the big file.
Growth = peak RSS during the big file - RSS before it. Target: <= 64 MB, flat from 50 MB to 200 MB.

    python -m bench.handler_memory [--sizes 50,100,200]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.handler_common import (
    BUCKET,
    ROOT,
    client,
    create_resources,
    machine,
    moto_server,
    proc_status,
    reset_peak_rss,
    s3_body,
    settings_env,
    sqs_event,
    use_bench_env,
)

MB = 1024 * 1024
TARGET_MB = 64


def record(n: int) -> bytes:
    return json.dumps(
        {
            "id": n,
            "customer": f"customer-{n % 9973}",
            "amount": round(n * 0.37 % 1000, 2),
            "currency": "EUR",
            "tags": ["bench", "memory"],
            "note": "lorem ipsum dolor sit amet",
        }
    ).encode()


def generate(path: Path, file_format: str, size_mb: int) -> int:
    target = size_mb * MB
    written = 0
    n = 0
    with path.open("wb") as out:
        if file_format == "json":
            out.write(b"[")
            written += 1
        while written < target:
            line = record(n)
            if file_format == "json":
                line = (b",\n" if n else b"") + line
            else:
                line += b"\n"
            out.write(line)
            written += len(line)
            n += 1
        if file_format == "json":
            out.write(b"]")
    return n


def worker(endpoint: str, dlq_url: str, file_format: str, key: str, put_json: str, size: int) -> None:
    use_bench_env()
    os.environ.update(settings_env(dlq_url, file_format))
    sys.path.insert(0, str(ROOT))
    app: Any = importlib.import_module("handler.app")
    clients_module: Any = importlib.import_module("handler.clients")
    settings_module: Any = importlib.import_module("handler.settings")
    clients = clients_module.Clients.create(endpoint_url=endpoint)
    handler = app.build_handler(settings_module.HandlerSettings.from_env(), clients)
    put = json.loads(put_json)
    # Warm-up on a small file: imports, clients, connection pools, first-call caches.
    warm_key = f"in/warmup-{file_format}.{file_format}"
    warm = clients.s3.put_object(
        Bucket=BUCKET, Key=warm_key, Body=b'[{"id": 1}]' if file_format == "json" else b'{"id": 1}\n'
    )
    handler(sqs_event([s3_body(warm_key, warm, 11)]), None)
    baseline = proc_status("VmRSS")
    reset_peak_rss()
    started = time.perf_counter()
    response = handler(sqs_event([s3_body(key, put, size)]), None)
    elapsed = time.perf_counter() - started
    peak = proc_status("VmHWM")
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": elapsed, "response": response}))


def measure(endpoint: str, dlq_url: str, workdir: Path, file_format: str, size_mb: int) -> dict[str, Any]:
    path = workdir / f"{size_mb}.{file_format}"
    records = generate(path, file_format, size_mb)
    size = path.stat().st_size
    key = f"in/{size_mb}mb.{file_format}"
    from boto3.s3.transfer import TransferConfig

    s3 = client("s3", endpoint)
    s3.upload_file(str(path), BUCKET, key, Config=TransferConfig(multipart_threshold=64 * MB))
    head = s3.head_object(Bucket=BUCKET, Key=key)
    path.unlink()
    put = {"ETag": head["ETag"], "VersionId": head.get("VersionId")}
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.handler_memory",
            "--worker",
            endpoint,
            dlq_url,
            file_format,
            key,
            json.dumps(put),
            str(size),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}, result
    out_key = "out/" + key[len("in/") :].rsplit(".", 1)[0] + ".json"
    out_size = s3.head_object(Bucket=BUCKET, Key=out_key)["ContentLength"]
    return {
        "format": file_format,
        "size_mb": size / MB,
        "records": records,
        "baseline_mb": result["baseline"] / MB,
        "growth_mb": (result["peak"] - result["baseline"]) / MB,
        "seconds": result["seconds"],
        "mb_per_s": size / MB / result["seconds"],
        "output_mb": out_size / MB,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        endpoint, dlq_url, file_format, key, put_json, size = sys.argv[2:8]
        worker(endpoint, dlq_url, file_format, key, put_json, int(size))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="50,100,200", help="file sizes in MB")
    parser.add_argument("--formats", default="json,ndjson")
    args = parser.parse_args()
    use_bench_env()
    print(machine())
    print(
        f"{'format':8} {'size MB':>8} {'records':>9} {'base RSS':>9} {'growth MB':>10} {'s':>7} {'MB/s':>6}  target"
    )
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        dlq_url = create_resources(endpoint)
        for file_format in args.formats.split(","):
            for size_mb in (int(s) for s in args.sizes.split(",")):
                row = measure(endpoint, dlq_url, Path(tmp), file_format, size_mb)
                verdict = "ok" if row["growth_mb"] <= TARGET_MB else "MISS"
                print(
                    f"{row['format']:8} {row['size_mb']:8.1f} {row['records']:9d} {row['baseline_mb']:9.1f} "
                    f"{row['growth_mb']:10.1f} {row['seconds']:7.1f} {row['mb_per_s']:6.1f}  <= {TARGET_MB} MB {verdict}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
