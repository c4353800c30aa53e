"""The Parquet layer (pyarrow): its size per architecture, before and after pruning, and its import cost.

Sizes: the layer is built the way the component builds it (``filepipe.dependencies``: pip's ``--platform``
/ ``--only-binary`` for the Lambda architecture and ``--runtime``, then ``prune``), into a scratch folder
rather than the layer cache so both sides of the pruning can be measured. Zipped is a deflate archive of
the folder, as the layer is uploaded; unzipped is what Lambda counts against its 250 MB limit.

Cold start: Lambda itself is not reachable from here, so what is measured is the part the layer adds to a
fresh Python process, on this machine: pyarrow is installed for this interpreter and this machine's
platform (the same release and manylinux build family as the layer), pruned alike, and each sample is a
fresh ``python -S`` process (no site-packages: only the layer on ``PYTHONPATH``, as in Lambda's
``/opt/python``), timed from spawn to exit by the parent. ``PYTHONDONTWRITEBYTECODE`` keeps every sample
compiling pyarrow's modules as a layer without ``.pyc`` files on Lambda's read-only ``/opt`` does; the
"precompiled" rows show what shipping ``.pyc`` files would save.

    python -m bench.parquet_layer [--runtime python3.13] [--runs 20]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench.handler_common import machine
from filepipe import dependencies
from filepipe.lambda_code import parquet_requirements_file

IMPORT = "import pyarrow.parquet"
FIRST_WRITE = """
import io
import pyarrow as pa
import pyarrow.parquet as pq
table = pa.table({"id": list(range(100)), "name": [f"n{i}" for i in range(100)]})
sink = io.BytesIO()
with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
    writer.write_table(table)
assert pq.ParquetFile(io.BytesIO(sink.getvalue())).read().num_rows == 100
"""


def sizes(site_dir: Path, scratch: Path) -> tuple[int, int, int]:
    """(unzipped bytes, zipped bytes, files) of a layer whose ``python/`` folder is ``site_dir``."""
    files = sorted(path for path in site_dir.rglob("*") if path.is_file())
    archive = scratch / "layer.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as layer_zip:
        for path in files:
            layer_zip.write(path, Path("python", path.relative_to(site_dir)).as_posix())
    zipped = archive.stat().st_size
    archive.unlink()
    return dependencies.unzipped_size(site_dir), zipped, len(files)


def layer_sizes(runtime: str) -> None:
    print(f"layer for {runtime} ({parquet_requirements_file().name}), MB = 10^6 bytes")
    print(f"{'architecture':12} {'':7} {'unzipped MB':>11} {'zipped MB':>9} {'files':>6}")
    for architecture in dependencies.PLATFORMS:
        with tempfile.TemporaryDirectory() as scratch:
            site = Path(scratch, "python")
            dependencies.run_pip(
                dependencies.pip_arguments(parquet_requirements_file(), site, architecture, runtime)
            )
            before = sizes(site, Path(scratch))
            dependencies.prune(site)
            after = sizes(site, Path(scratch))
            for label, (unzipped, zipped, count) in (("before", before), ("pruned", after)):
                print(f"{architecture:12} {label:7} {unzipped / 1e6:11.1f} {zipped / 1e6:9.1f} {count:6}")


def spawn_seconds(code: str, layer: Path | None) -> float:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if layer is not None:
        env["PYTHONPATH"] = str(layer)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", code], env=env, check=True, cwd=tempfile.gettempdir())
    return time.perf_counter() - started


def cold_start(runs: int) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"\ncold start on this machine: python{version}, {runs} fresh processes per case")
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch, "python")
        # This interpreter's own platform: the layer's wheel family, importable here.
        dependencies.run_pip(
            [
                *("install", "--quiet", "--disable-pip-version-check", "--no-compile", "--only-binary=:all:"),
                *("--target", str(site), "--requirement", str(parquet_requirements_file())),
            ]
        )
        dependencies.prune(site)
        cases = [
            ("python -S -c pass (baseline)", "pass", None),
            (f"python -S -c '{IMPORT}'", IMPORT, site),
            ("import + first Parquet write (zstd, 100 rows)", FIRST_WRITE, site),
        ]
        for _name, code, layer in cases:  # warm the OS page cache
            spawn_seconds(code, layer)
        print(f"{'case':50} {'median ms':>9} {'p90 ms':>7} {'- baseline ms':>13}")
        baseline = 0.0
        for label, pyc in (("no .pyc, as the layer ships", False), ("precompiled .pyc", True)):
            if pyc:
                compileall.compile_dir(site, quiet=1, workers=1)
            print(f"-- {label}")
            for name, code, layer in cases:
                samples = sorted(spawn_seconds(code, layer) for _ in range(runs))
                median = statistics.median(samples)
                p90 = statistics.quantiles(samples, n=10)[-1]
                if layer is None:
                    baseline = median
                print(f"{name:50} {median * 1000:9.0f} {p90 * 1000:7.0f} {(median - baseline) * 1000:13.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runtime", default="python3.13", help="Lambda runtime the sizes are for")
    parser.add_argument("--runs", type=int, default=20, help="fresh processes per cold-start case")
    args = parser.parse_args()
    print(machine())
    layer_sizes(args.runtime)
    cold_start(args.runs)


if __name__ == "__main__":
    main()
