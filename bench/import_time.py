"""Import time of the component library: what a Pulumi program pays on every ``pulumi preview``.

Each sample is a fresh ``python`` process (run from a folder outside the repo, as a program runs), timed
inside the process from before the first import to after the last; the median of ``--runs`` samples is
printed per case, with the modules of the embedded AWS each case loaded (none should be).

    python -m bench.import_time [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

from bench.handler_common import machine

_TIMED = """
import json, sys, time
t0 = time.perf_counter()
{body}
elapsed = time.perf_counter() - t0
local = sorted({{m.split(".")[0] for m in sys.modules}} & {{"moto", "flask", "werkzeug", "aws_lambda_powertools"}})
print(json.dumps({{"seconds": elapsed, "modules": len(sys.modules), "local": local}}))
"""

CASES = {
    "import pulumi, pulumi_aws (the provider alone)": "import pulumi, pulumi_aws",
    "import filepipe": "import filepipe",
    "from filepipe import FileProcessingPipeline, PipelineArgs": (
        "from filepipe import FileProcessingPipeline, PipelineArgs"
    ),
    "import filepipe.testing.plugin (every pytest session)": "import filepipe.testing.plugin",
}


def sample(body: str, cwd: str) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-c", _TIMED.format(body=body)], check=True, capture_output=True, text=True, cwd=cwd
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as outside:
        for body in CASES.values():  # warm the OS page cache and the .pyc files
            sample(body, outside)
        print(f"{'case':60} {'median ms':>9} {'min ms':>7} {'modules':>7}  embedded AWS loaded")
        for name, body in CASES.items():
            samples = [sample(body, outside) for _ in range(args.runs)]
            seconds = [float(str(s["seconds"])) for s in samples]
            local = sorted({module for s in samples for module in s["local"]})  # type: ignore[attr-defined]
            print(
                f"{name:60} {statistics.median(seconds) * 1000:9.0f} {min(seconds) * 1000:7.0f} "
                f"{samples[-1]['modules']!s:>7}  {', '.join(local) or 'none'}"
            )
    print(f"median and minimum of {args.runs} fresh processes per case")


if __name__ == "__main__":
    main()
