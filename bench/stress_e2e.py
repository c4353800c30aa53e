"""Repeat an end-to-end test many times on a loaded machine and count failures.

Default: the 500-file scenario (5% poison files, 10% injected S3 faults, every event delivered twice)
20 times, with one CPU-bound process per core running throughout, so that every invocation, lease and
poll competes for the CPU. A test whose outcome depends on timing shows up here as a failure::

    python -m bench.stress_e2e                      # 20 runs, loaded
    python -m bench.stress_e2e --runs 5 --no-load   # quicker, idle machine
    python -m bench.stress_e2e -k test_a_handler_that_dies_mid_batch_gets_its_messages_back

Each run is a fresh pytest process (fresh endpoint, fresh moto state); the script prints one line per
run and a summary, and exits non-zero if any run failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_TEST = "tests/local/test_e2e.py::test_500_files_with_poison_faults_and_duplicates_lose_nothing"


def _burn(stop: Event) -> None:
    """Keep one core busy until told to stop."""
    value = 0
    while not stop.is_set():
        for _ in range(100_000):
            value = (value * 31 + 7) % 1_000_003


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-load", action="store_true", help="do not load the CPUs")
    parser.add_argument("--test", default=DEFAULT_TEST, help="pytest node id to repeat")
    parser.add_argument("-k", dest="keyword", help="instead of --test: a -k expression over tests/local")
    args = parser.parse_args(argv)

    target = ["tests/local/test_e2e.py", "-k", args.keyword] if args.keyword else [args.test]
    stop = multiprocessing.Event()
    burners = (
        []
        if args.no_load
        else [multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(os.cpu_count() or 1)]
    )
    for burner in burners:
        burner.start()
    failures = 0
    durations: list[float] = []
    try:
        print(f"{args.runs} runs of {' '.join(target)}; CPU burners: {len(burners)}", flush=True)
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *target],
                cwd=PROJECT_DIR,
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.monotonic() - started
            durations.append(elapsed)
            summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
            ok = result.returncode == 0
            failures += 0 if ok else 1
            print(f"run {run:2d}: {'pass' if ok else 'FAIL'} in {elapsed:5.1f} s  {summary}", flush=True)
            if not ok:
                # The assertion and its context, not the captured logs that follow it.
                lines = result.stdout.splitlines()
                errors = [line for line in lines if line.startswith(("E ", ">", "FAILED", "ERROR"))]
                print("\n".join(errors[:60]) or result.stdout[-4000:], flush=True)
    finally:
        stop.set()
        for burner in burners:
            burner.join()
    mean = sum(durations) / len(durations) if durations else 0.0
    print(
        f"{args.runs - failures} passed, {failures} failed (mean {mean:.1f} s a run, {len(burners)} CPU burners)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
