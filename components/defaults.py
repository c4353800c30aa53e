"""Every default of the component library, in one place.

Where AWS forces a value (or a relation between values) the comment says why.
"""

from typing import Final

from .handler import settings as handler_settings

# --- Function -------------------------------------------------------------------------------------
MEMORY_MB: Final = 512
TIMEOUT_SECONDS: Final = 60
ARCHITECTURE: Final = "arm64"
"""Graviton: ~20% cheaper per GB-second than x86_64 and as fast for this I/O-bound work."""
PYTHON_RUNTIME: Final = "python3.13"
SUPPORTED_RUNTIMES: Final = ("python3.11", "python3.12", "python3.13")
"""Runtimes for which AWS publishes the Powertools V3 layer and Lambda has not deprecated."""
LOG_RETENTION_DAYS: Final = 30
LOG_LEVEL: Final = "INFO"
POWERTOOLS_LAYER_ACCOUNT: Final = "017000801446"
"""The AWS account that publishes the Powertools for AWS Lambda (Python) layers in commercial regions."""
POWERTOOLS_LAYER_VERSION: Final = 27
"""Layer version of Powertools V3 the handler is tested with (pinned: layers are immutable)."""
TIMEOUT_MARGIN_MS: Final = handler_settings.DEFAULT_TIMEOUT_MARGIN_MS
"""Stop taking new records this long before the function times out; unfinished ones are retried."""

# --- Event source mapping -------------------------------------------------------------------------
BATCH_SIZE: Final = 10
BATCHING_WINDOW_SECONDS: Final = 0

# --- Queues ---------------------------------------------------------------------------------------
VISIBILITY_TIMEOUT_FACTOR: Final = 6
"""AWS recommends a visibility timeout of at least 6 x the function timeout (+ batching window)."""
MESSAGE_RETENTION_SECONDS: Final = 4 * 24 * 3600
"""The SQS default (4 days)."""
MAX_RECEIVE_COUNT: Final = handler_settings.DEFAULT_MAX_RECEIVE_COUNT
"""At least 5: throttled receives count towards it too, so lower values park healthy files."""
DLQ_RETENTION_SECONDS: Final = 14 * 24 * 3600
"""The maximum. A message keeps its original enqueue time in the DLQ, so it must outlive the source."""

# --- Handler behaviour (the handler's own defaults, so both sides agree) --------------------------
MAX_FILE_BYTES: Final = handler_settings.DEFAULT_MAX_FILE_BYTES
BACKOFF_BASE_SECONDS: Final = handler_settings.DEFAULT_BACKOFF_BASE_SECONDS
BACKOFF_MAX_SECONDS: Final = handler_settings.DEFAULT_BACKOFF_MAX_SECONDS
STATE_TTL_DAYS: Final = handler_settings.DEFAULT_STATE_TTL_DAYS

# --- Alarms ---------------------------------------------------------------------------------------
ALARM_PERIOD_SECONDS: Final = 60
QUEUE_AGE_ALARM_SECONDS: Final = 900
"""Alarm when the oldest waiting file has waited 15 minutes: the pipeline is stuck or too slow."""

# --- Output ---------------------------------------------------------------------------------------
OUTPUT_ROOT: Final = "processed/"
"""The default output prefix is this root followed by the input prefix (mirrors the input path)."""
SUFFIXES_BY_FORMAT: Final = {"json": (".json",), "ndjson": (".ndjson", ".jsonl"), "csv": (".csv",)}

# --- AWS ranges (used by validation) --------------------------------------------------------------
MEMORY_RANGE: Final = (128, 10_240)
TIMEOUT_RANGE: Final = (1, 900)
BATCH_SIZE_RANGE: Final = (1, 10_000)
BATCH_SIZE_WITHOUT_WINDOW: Final = 10
BATCHING_WINDOW_RANGE: Final = (0, 300)
MAXIMUM_CONCURRENCY_RANGE: Final = (2, 1_000)
VISIBILITY_TIMEOUT_RANGE: Final = (0, 43_200)
RETENTION_RANGE: Final = (60, 1_209_600)
MAX_RECEIVE_COUNT_RANGE: Final = (1, 1_000)
LOG_RETENTION_CHOICES: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
