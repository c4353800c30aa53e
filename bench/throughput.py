"""Throughput (MB/s) and peak RSS growth of the real handler on large files, against a naive handler.

S3, the state table and the DLQ are a moto server in another process, pinned to the second core; each
measurement runs in a fresh worker process pinned to the first core, which imports the handler (as the
top-level package ``handler``, exactly as in Lambda), warms up on a small file, resets its peak-RSS
counter, then processes one big file in one SQS message. The naive handler (``bench/peers``) reads the
same JSON array in the same run, so the ratio compares like with like on a machine whose speed varies.

    python -m bench.throughput [--size-mb 100] [--sizes 50,100,200] [--cases all|json,ndjson,...]

Prints one row per case: input format -> output format, with or without a JSON Schema, MB/s, peak RSS
growth, and the ratio to the naive handler. Targets: NDJSON >= 45 MB/s, JSON array >= 25 MB/s, CSV >= 30
MB/s, JSON array >= 4x the naive handler, peak growth <= 64 MB whatever the size. After the naive row,
"(local S3 alone)" is the time the local S3 itself needs to serve the input and take an output of the
same size in 8 MiB parts: the naive time over it is the largest ratio any streaming handler can show on
this rig. Parquet outputs (``--outputs parquet``) are measured for speed and growth, with no target.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.handler_common import (
    BUCKET,
    ROOT,
    STATE_TABLE,
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
from filepipe.handler.writers import DEFAULT_PART_BYTES

MB = 1024 * 1024
GROWTH_TARGET_MB = 64
TARGETS_MB_S = {"json": 25.0, "ndjson": 45.0, "csv": 30.0}
NAIVE_RATIO_TARGET = 4.0
HANDLER_CORE = 0
MOTO_CORE = 1

SCHEMA = {
    "type": "object",
    "required": ["id", "customer", "amount", "currency"],
    "properties": {
        "id": {"type": ["integer", "string"]},
        "customer": {"type": "string", "minLength": 1},
        "amount": {"type": ["number", "string"]},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string"},
    },
}


def record(n: int) -> dict[str, Any]:
    return {
        "id": n,
        "customer": f"customer-{n % 9973}",
        "amount": round(n * 0.37 % 1000, 2),
        "currency": "EUR",
        "tags": ["bench", "throughput"],
        "note": "lorem ipsum dolor sit amet",
    }


def generate(path: Path, file_format: str, size_mb: int) -> int:
    """Write about ``size_mb`` MiB of ~140-byte records; returns the record count."""
    target = size_mb * MB
    written = n = 0
    with path.open("wb") as out:
        if file_format == "csv":
            header = b"id,customer,amount,currency,note\n"
            out.write(header)
            written = len(header)
        elif file_format == "json":
            out.write(b"[")
            written = 1
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        while written < target:
            values = record(n)
            if file_format == "csv":
                rows.writerow(
                    [values["id"], values["customer"], values["amount"], values["currency"], values["note"]]
                )
                line = text.getvalue().encode()
                text.seek(0)
                text.truncate()
            else:
                line = json.dumps(values).encode()
                line = ((b",\n" if n else b"") + line) if file_format == "json" else line + b"\n"
            out.write(line)
            written += len(line)
            n += 1
        if file_format == "json":
            out.write(b"]")
    return n


@dataclass(frozen=True)
class Case:
    input_format: str
    output_format: str
    schema: bool
    naive: bool = False

    @property
    def name(self) -> str:
        if self.naive:
            return "naive json -> json"
        return f"{self.input_format} -> {self.output_format}" + (" +schema" if self.schema else "")


def all_cases() -> list[Case]:
    cases = [Case("json", "json", False, naive=True)]
    for input_format in ("json", "ndjson", "csv"):
        for output_format in ("json", "ndjson", "parquet"):
            for schema in (False, True):
                cases.append(Case(input_format, output_format, schema))
    return cases


def pin(core: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


def worker(
    endpoint: str, dlq_url: str, case_json: str, key: str, put_json: str, size: int, schema: str
) -> None:
    pin(HANDLER_CORE)
    use_bench_env()
    case = Case(**json.loads(case_json))
    sys.path.insert(0, str(ROOT))
    put = json.loads(put_json)
    clients_module: Any = importlib.import_module("handler.clients")
    clients = clients_module.Clients.create(endpoint_url=endpoint)
    if case.naive:
        from bench.peers.naive_handler import make_handler

        handler = make_handler(clients.s3, "in/", "out/")
    else:
        os.environ.update(settings_env(dlq_url, case.input_format))
        os.environ["FILEPIPE_OUTPUT_FORMAT"] = case.output_format
        if case.schema:
            os.environ["FILEPIPE_SCHEMA_FILE"] = schema
        app: Any = importlib.import_module("handler.app")
        settings_module: Any = importlib.import_module("handler.settings")
        handler = app.build_handler(settings_module.HandlerSettings.from_env(), clients)
    # Warm-up on a small file: imports, clients, connection pools, first-call caches.
    warm_key = f"in/warmup-{os.getpid()}.{case.input_format}"
    warm_body = {"json": b'[{"id": 1}]', "ndjson": b'{"id": 1}\n', "csv": b"id\n1\n"}[case.input_format]
    warm = clients.s3.put_object(Bucket=BUCKET, Key=warm_key, Body=warm_body)
    handler(sqs_event([s3_body(warm_key, warm, len(warm_body))]), None)
    baseline = proc_status("VmRSS")
    reset_peak_rss()
    started = time.perf_counter()
    cpu_started = time.process_time()
    response = handler(sqs_event([s3_body(key, put, size)]), None)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = proc_status("VmHWM")
    print(
        json.dumps({"baseline": baseline, "peak": peak, "seconds": elapsed, "cpu": cpu, "response": response})
    )


def measure(
    endpoint: str, dlq_url: str, case: Case, key: str, put: dict[str, Any], size: int, schema: Path
) -> dict[str, Any]:
    case_json = json.dumps(
        {
            "input_format": case.input_format,
            "output_format": case.output_format,
            "schema": case.schema,
            "naive": case.naive,
        }
    )
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.throughput",
            "--worker",
            endpoint,
            dlq_url,
            case_json,
            key,
            json.dumps(put),
            str(size),
            str(schema),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    assert result["response"] == {"batchItemFailures": []}, result
    return {
        "growth_mb": (result["peak"] - result["baseline"]) / MB,
        "seconds": result["seconds"],
        "cpu": result["cpu"],
        "mb_per_s": size / MB / result["seconds"],
    }


def upload(
    endpoint: str, workdir: Path, file_format: str, size_mb: int
) -> tuple[str, dict[str, Any], int, int]:
    from boto3.s3.transfer import TransferConfig

    path = workdir / f"{size_mb}.{file_format}"
    records = generate(path, file_format, size_mb)
    size = path.stat().st_size
    key = f"in/{size_mb}mb.{file_format}"
    s3 = client("s3", endpoint)
    s3.upload_file(str(path), BUCKET, key, Config=TransferConfig(multipart_threshold=64 * MB))
    head = s3.head_object(Bucket=BUCKET, Key=key)
    path.unlink()
    return key, {"ETag": head["ETag"], "VersionId": head.get("VersionId")}, size, records


def s3_floor(endpoint: str, key: str, size: int) -> float:
    """Seconds the local S3 alone needs for what any streaming handler must ask of it: serve the input,
    then take an output of the same size as 8 MiB parts (the handler's part size) and assemble them. No
    handler can finish faster, so ``naive seconds / floor`` bounds the ratio this rig can show."""
    s3 = client("s3", endpoint)
    part = DEFAULT_PART_BYTES
    payload = os.urandom(part)
    started = time.perf_counter()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    while body.read(MB):
        pass
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="out/floor.bin")["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, size, part), 1):
        chunk = payload[: min(part, size - offset)]
        etag = s3.upload_part(
            Bucket=BUCKET, Key="out/floor.bin", UploadId=upload, PartNumber=number, Body=chunk
        )
        parts.append({"ETag": etag["ETag"], "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="out/floor.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return time.perf_counter() - started


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        argv = sys.argv[2:9]
        worker(argv[0], argv[1], argv[2], argv[3], argv[4], int(argv[5]), argv[6])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100", help="file sizes in MiB (several: is the memory flat?)")
    parser.add_argument(
        "--cases", default="all", help="all, or input formats to keep (json,ndjson,csv,naive)"
    )
    parser.add_argument("--outputs", default="json,ndjson,parquet", help="output formats to keep")
    args = parser.parse_args()
    use_bench_env()
    wanted = set(args.cases.split(",")) if args.cases != "all" else None
    outputs = set(args.outputs.split(","))
    cases = [
        c
        for c in all_cases()
        if (wanted is None or ("naive" if c.naive else c.input_format) in wanted)
        and (c.naive or c.output_format in outputs)
    ]
    print(machine(), f"handler on core {HANDLER_CORE}, moto on core {MOTO_CORE}")
    print(
        f"{'case':28} {'MiB':>5} {'records':>9} {'s':>6} {'cpu s':>6} {'MB/s':>6} {'growth MB':>9} {'x naive':>7}  targets"
    )
    with moto_server(cpu=MOTO_CORE) as endpoint, tempfile.TemporaryDirectory() as tmp:
        dlq_url = create_resources(endpoint)
        schema = Path(tmp) / "bench.schema.json"
        schema.write_text(json.dumps(SCHEMA))
        for size_mb in (int(s) for s in args.sizes.split(",")):
            uploaded: dict[str, tuple[str, dict[str, Any], int, int]] = {}
            naive_rate: float | None = None
            for case in cases:
                if case.input_format not in uploaded:
                    uploaded[case.input_format] = upload(endpoint, Path(tmp), case.input_format, size_mb)
                key, put, size, records = uploaded[case.input_format]
                # Each case processes the file as new: forget the state the previous case left.
                client("dynamodb", endpoint).delete_item(
                    TableName=STATE_TABLE, Key={"pk": {"S": f"{BUCKET}/{key}"}}
                )
                row = measure(endpoint, dlq_url, case, key, put, size, schema)
                if case.naive:
                    naive_rate = row["mb_per_s"]

                ratio = row["mb_per_s"] / naive_rate if naive_rate else float("nan")
                verdicts = [f"growth {'ok' if row['growth_mb'] <= GROWTH_TARGET_MB else 'MISS'}"]
                if not case.naive and not case.schema and case.output_format != "parquet":
                    target = TARGETS_MB_S[case.input_format]
                    verdicts.append(f">= {target:.0f} MB/s {'ok' if row['mb_per_s'] >= target else 'MISS'}")
                    if case.input_format == "json" and case.output_format == "json":
                        verdicts.append(
                            f">= {NAIVE_RATIO_TARGET:.0f}x naive {'ok' if ratio >= NAIVE_RATIO_TARGET else 'MISS'}"
                        )
                print(
                    f"{case.name:28} {size / MB:5.0f} {records:9d} {row['seconds']:6.2f} {row['cpu']:6.2f}"
                    f" {row['mb_per_s']:6.1f} {row['growth_mb']:9.1f} {ratio:7.2f}  {', '.join(verdicts)}",
                    flush=True,
                )
                if case.naive:
                    pin(HANDLER_CORE)  # measured from the handler's core, as the handler would
                    floor = s3_floor(endpoint, key, size)
                    print(
                        f"{'(local S3 alone)':28} {size / MB:5.0f} {'':9} {floor:6.2f} {'':6} {size / MB / floor:6.1f}"
                        f" {'':9} {row['seconds'] / floor:7.2f}  the most any handler can show against naive here",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
