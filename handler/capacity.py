"""How fast the handler reads each format, and what that means for a Lambda function's size.

One place for the numbers the component checks a pipeline's limits against (``max_file_bytes`` against
``timeout_seconds`` and ``memory_mb``) and the handler estimates a file's time with. The rates are the
handler's own CPU rates measured by ``bench/throughput.py`` on one core (docs/performance.md: about 85
MB/s for JSON arrays and NDJSON, 44 MB/s for CSV, per CPU-second, no schema), cut by about 40% for the
waits on S3 and the state table that CPU time does not show. Lambda gives a function CPU in proportion
to its memory, one vCPU at 1,769 MB.
"""

from __future__ import annotations

import math
from typing import Final

from .settings import FileFormat, OutputFormat

LAMBDA_MB_PER_VCPU: Final = 1769
"""Lambda's documented memory for one full vCPU (CPU share is proportional to memory below it)."""

MB_PER_VCPU_SECOND: Final = {
    FileFormat.JSON: 50.0,
    FileFormat.NDJSON: 50.0,
    FileFormat.CSV: 25.0,
}
"""Input megabytes (10**6 bytes) the handler reads, validates nothing and writes in one vCPU-second."""

PARQUET_MB_PER_VCPU_SECOND: Final = {
    FileFormat.JSON: 85.0,
    FileFormat.NDJSON: 100.0,
    FileFormat.CSV: 33.0,
}
"""Input megabytes whose records a Parquet output converts and writes in one vCPU-second, on top of
reading them: bench/throughput.py's extra CPU over the same input to JSON (0.6 s per 100 MiB of NDJSON,
0.7 s of JSON, 1.8 s of CSV, whose rows are many and narrow), cut like the rates above."""


def vcpu_share(memory_mb: int) -> float:
    """The share of a vCPU a function of ``memory_mb`` gets (capped at one core: the handler is single-threaded)."""
    return min(1.0, memory_mb / LAMBDA_MB_PER_VCPU)


def expected_seconds(
    size_bytes: int, input_format: FileFormat, memory_mb: int, output_format: OutputFormat | None = None
) -> float:
    """The time to process ``size_bytes`` of ``input_format`` at ``memory_mb`` (no schema, no processor)."""
    per_megabyte = 1 / MB_PER_VCPU_SECOND[input_format]
    if output_format is OutputFormat.PARQUET:
        per_megabyte += 1 / PARQUET_MB_PER_VCPU_SECOND[input_format]
    return size_bytes / 1e6 * per_megabyte / vcpu_share(memory_mb)


def expected_invocations(
    size_bytes: int,
    input_format: FileFormat,
    memory_mb: int,
    usable_seconds: float,
    output_format: OutputFormat | None = None,
) -> int:
    """Invocations a file of ``size_bytes`` needs when each has ``usable_seconds`` of work."""
    seconds = expected_seconds(size_bytes, input_format, memory_mb, output_format)
    return max(1, math.ceil(seconds / max(usable_seconds, 0.001)))
