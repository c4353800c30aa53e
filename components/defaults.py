"""Every default of the component library, in one place.

Where AWS forces a value (or a relation between values) the comment says why.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from .args import Architecture
from .handler import settings as handler_settings

# --- Function -------------------------------------------------------------------------------------
MEMORY_MB: Final = 512
TIMEOUT_SECONDS: Final = 60
MAX_FILE_BYTES: Final = 256 * 1024 * 1024
"""Chosen with MEMORY_MB and TIMEOUT_SECONDS so the defaults fit together: a file at the cap finishes in
one invocation in every format (``validation.capacity``; at the rates in ``handler/capacity.py``, CSV, the
slowest, needs about 37 s of the 50 s left after the margin). The handler's own default, 512 MiB (used
only where nothing sets ``FILEPIPE_MAX_FILE_BYTES``; the component always does), needs about 74 s for CSV
here: every default CSV pipeline would warn at preview that its largest files take two invocations, and a
default CSV pipeline with ``state_table=False`` would be an error. Larger files are a choice with its own
settings (more memory, which brings more CPU, or a longer timeout; see the README);
tests/components/test_capacity.py keeps the defaults fitting when the rates change."""
ARCHITECTURE: Final = Architecture.ARM64
"""Graviton: ~20% cheaper per GB-second than x86_64 and as fast for this I/O-bound work."""
PYTHON_RUNTIME: Final = "python3.13"
SUPPORTED_RUNTIMES: Final = ("python3.11", "python3.12", "python3.13")
"""Runtimes for which AWS publishes the Powertools V3 layer and Lambda has not deprecated."""
UNZIPPED_CODE_LIMIT_BYTES: Final = 262_144_000
"""Lambda's 250 MB limit on a function's code and all its layers, unzipped (the figure its error names).
Checked at construction for the code and the layers filepipe builds; Powertools and ``extra_layers``
count too, but their size is known only to AWS."""
LOG_RETENTION_DAYS: Final = 30
LOG_LEVEL: Final = "INFO"
LOG_LEVELS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "DEBUG": ("DEBUG", "DEBUG"),
        "INFO": ("INFO", "INFO"),
        "WARN": ("WARN", "WARNING"),
        "WARNING": ("WARN", "WARNING"),
        "ERROR": ("ERROR", "ERROR"),
        "FATAL": ("FATAL", "CRITICAL"),
        "CRITICAL": ("FATAL", "CRITICAL"),
    }
)
"""Accepted ``log_level`` (either spelling) -> (Lambda ``application_log_level``, Python/Powertools level).

Lambda knows WARN and FATAL, Python's logging WARNING and CRITICAL; both sides must get their own name for
the same level. TRACE is left out: Python's logging has no such level."""
SYSTEM_LOG_LEVEL: Final = "INFO"
"""Lambda platform log level (start, end and report lines)."""
POWERTOOLS_VERSION: Final = "3.22.1"
"""Powertools for AWS Lambda (Python) release whose AWS-managed layer the function uses (pinned: a deploy
never changes the library under the handler by itself)."""
POWERTOOLS_LAYER_PARAMETER: Final = "/aws/service/powertools/python/{architecture}/{runtime}/{version}"
"""Public SSM parameter holding the layer's ARN in the current region; ``version`` is a release or
``latest``. Published in the commercial partition only."""
TIMEOUT_MARGIN_MS: Final = handler_settings.DEFAULT_TIMEOUT_MARGIN_MS
"""Stop taking new records this long before the function times out; unfinished ones are retried."""

# --- Event source mapping -------------------------------------------------------------------------
BATCH_SIZE: Final = 10
BATCHING_WINDOW_SECONDS: Final = 0

# --- Bucket lifecycle (created buckets only) -------------------------------------------------------
ABORT_INCOMPLETE_MULTIPART_UPLOAD_DAYS: Final = 7
"""Parts of an upload that never completed (a writer that died mid-file) are billed until removed."""
NONCURRENT_VERSION_EXPIRATION_DAYS: Final = 30
"""Versioning keeps every overwritten or deleted input; 30 days outlives the DLQ (14 days), so a parked
file's exact version is still there to replay."""
INPUT_TRANSITION_STORAGE_CLASS: Final = "STANDARD_IA"
TRANSITION_STORAGE_CLASSES: Final = (
    "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE",
)  # fmt: skip
MIN_DAYS_BEFORE_INFREQUENT_ACCESS: Final = 30
"""S3 refuses a transition to STANDARD_IA or ONEZONE_IA earlier than 30 days after creation."""

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
BACKOFF_BASE_SECONDS: Final = handler_settings.DEFAULT_BACKOFF_BASE_SECONDS
BACKOFF_MAX_SECONDS: Final = handler_settings.DEFAULT_BACKOFF_MAX_SECONDS
STATE_TTL_DAYS: Final = handler_settings.DEFAULT_STATE_TTL_DAYS

# --- Alarms ---------------------------------------------------------------------------------------
ALARM_PERIOD_SECONDS: Final = 60
QUEUE_AGE_ALARM_SECONDS: Final = 900
"""Alarm when the oldest waiting file has waited 15 minutes: the pipeline is stuck or too slow."""

# --- Circuit breaker (optional) ------------------------------------------------------------------
BREAKER_FAILURE_THRESHOLD: Final = 10
"""Transient failures (the handler's ``FilesRetried``) per alarm period that open the breaker."""
BREAKER_EVALUATION_PERIODS: Final = 2
"""Consecutive periods over the threshold: one bad minute (a throttling burst) does not pause a pipeline,
and two minutes are far inside the first retry's backoff schedule (450 s before anything is parked)."""
BREAKER_PROBE_FAILURE_THRESHOLD: Final = 3
"""Transient failures per period that, while half-open, open the breaker again."""
BREAKER_COOL_DOWN_SECONDS: Final = 300
"""First wait in the open state before probing; doubled after each failed probe."""
BREAKER_MAX_COOL_DOWN_SECONDS: Final = 3600
"""Longest wait in the open state; the queue's retention must cover it (validated)."""
BREAKER_PROBE_WINDOW_SECONDS: Final = 300
"""How long transient failures must stay low while half-open before the configured concurrency returns."""
BREAKER_PROBE_CONCURRENCY: Final = 2
"""Lambda's smallest ``ScalingConfig.MaximumConcurrency`` for SQS: probes run at most two batches at once."""
BREAKER_MAX_REQUEUES: Final = handler_settings.DEFAULT_MAX_REQUEUES
"""Fresh copies the handler may send of one message while the breaker is not closed (see the README)."""
BREAKER_TICK_SCHEDULE: Final = "rate(1 minute)"
"""How often the breaker function checks its timers (cool-down, probe window)."""
BREAKER_TIMEOUT_SECONDS: Final = 60
"""The breaker function's timeout: it waits (bounded) for the mapping to report Disabled."""
BREAKER_MEMORY_MB: Final = 128

# --- Routing through SNS (notification_mode="sns") -------------------------------------------------
SNS_FILTER_POLICY_MAX_KEYS: Final = 5
"""Keys a subscription filter policy may have. AWS's pages disagree on whether nested payload keys count;
counting every key that holds values satisfies both readings."""
SNS_FILTER_POLICY_MAX_COMBINATIONS: Final = 150
"""The product of the number of values of each key of a filter policy."""
SNS_FILTER_POLICY_MAX_BYTES: Final = 256 * 1024
SNS_FILTER_POLICIES_PER_TOPIC: Final = 200
"""The default quota; a subscription with a filter policy beyond it fails to deploy."""
SNS_NUMERIC_RANGE: Final = (-1_000_000_000, 1_000_000_000)
"""Numbers a filter policy may compare against: object-size bounds must lie in it."""

# --- Output ---------------------------------------------------------------------------------------
OUTPUT_ROOT: Final = "processed/"
"""The default output prefix is this root followed by the input prefix (mirrors the input path)."""

# --- AWS ranges (used by validation) --------------------------------------------------------------
MEMORY_RANGE: Final = (128, 10_240)
TIMEOUT_RANGE: Final = (1, 900)
BATCH_SIZE_RANGE: Final = (1, 10_000)
BATCH_SIZE_WITHOUT_WINDOW: Final = 10
BATCHING_WINDOW_RANGE: Final = (0, 300)
MAXIMUM_CONCURRENCY_RANGE: Final = (2, 1_000)
"""``ScalingConfig.MaximumConcurrency``; also the smallest useful ``reserved_concurrency``."""
VISIBILITY_TIMEOUT_RANGE: Final = (0, 43_200)
RETENTION_RANGE: Final = (60, 1_209_600)
MAX_RECEIVE_COUNT_RANGE: Final = (1, 1_000)
PARQUET_ROW_GROUP_ROWS_RANGE: Final = (1_000, 1_048_576)
"""Below a thousand rows, a row group's metadata outweighs its data; above a million, the function holds
hundreds of MB for one row group."""
LOG_RETENTION_CHOICES: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# --- Names ----------------------------------------------------------------------------------------
AUTO_NAME_SUFFIX_LENGTH: Final = 8
"""Pulumi auto-naming appends ``-`` and 7 random characters to a resource's logical name."""
NAME_LIMITS: Final[Mapping[str, tuple[int, str]]] = MappingProxyType(
    {
        # kind: (maximum length, characters AWS accepts as a regex class body)
        "lambda function": (64, "A-Za-z0-9_-"),
        "IAM role": (64, r"\w+=,.@-"),
        "EventBridge rule": (64, "A-Za-z0-9_.-"),
        "SQS queue": (80, "A-Za-z0-9_-"),
        "SNS topic": (256, "A-Za-z0-9_-"),
        "DynamoDB table": (255, "A-Za-z0-9_.-"),
        "CloudWatch alarm": (255, r"\x20-\x7e"),
        "S3 bucket": (63, "a-z0-9.-"),
        "CloudWatch dashboard": (255, "A-Za-z0-9_-"),
        "lambda layer": (140, "A-Za-z0-9_-"),
        "log group": (512, "A-Za-z0-9_./#-"),
        "KMS alias": (256, "A-Za-z0-9/_-"),
    }
)
"""AWS's name limits per resource kind (the service models and API references)."""
STACK_PIPELINE_NAME_MAX: Final = 40
"""Longest pipeline name the stack config accepts (it becomes part of every resource name)."""
