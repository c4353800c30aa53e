"""A function's log stream, locally: what Lambda writes to CloudWatch Logs, put on the endpoint.

In Lambda, everything a function writes to stdout lands in its log group (``LoggingConfig.LogGroup``,
else ``/aws/lambda/<name>``), in one stream per execution environment named
``YYYY/MM/DD/[$LATEST]<hex>``, between the system log records the service writes around each
invocation, in the function's ``LoggingConfig.LogFormat`` (:class:`SystemLogs`). Locally a function runs
in threads of this process, so:

- each poller of an event source mapping is one execution environment with its own stream
  (:func:`environment_stream`);
- :func:`invocation_output` marks the invocation's thread (a context variable, so it holds whatever
  the thread is named and however many functions run at once); :class:`FunctionOutput`, the process's
  stdout stand-in, copies each complete line written under such a mark to the mark's stream and passes
  every write through unchanged (the terminal and the EMF capture below it see what they saw before);
- :class:`LogShipper` sends the lines with ``PutLogEvents`` from one background thread, in batches,
  so an invocation never waits for CloudWatch Logs; :meth:`LogShipper.stop` sends what is left.
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import queue
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef

log = logging.getLogger(__name__)

SHIP_INTERVAL_SECONDS: Final = 0.2
"""How long a line waits before it is sent: lines are readable on the endpoint this much (plus one
request) after they are written."""
MAX_BATCH_EVENTS: Final = 10_000
MAX_BATCH_BYTES: Final = 1_048_576
EVENT_OVERHEAD_BYTES: Final = 26
"""CloudWatch Logs counts each event as its UTF-8 message plus 26 bytes against the batch limit."""
MAX_EVENT_BYTES: Final = 262_144 - EVENT_OVERHEAD_BYTES
"""Longer messages are cut to this size, as CloudWatch Logs cuts them."""


def default_log_group(function_name: str) -> str:
    """The group Lambda writes to when the function's ``LoggingConfig`` names none."""
    return f"/aws/lambda/{function_name}"


def environment_stream(version: str = "$LATEST") -> str:
    """A new execution environment's stream name, as Lambda names it: ``2025/01/31/[$LATEST]<32 hex>``."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class LogTarget:
    """One log stream of one log group."""

    group: str
    stream: str


# -- the records Lambda itself writes around an invocation --------------------------------------------

TEXT_FORMAT: Final = "Text"
"""``LoggingConfig.LogFormat`` Lambda uses when a function declares none."""
JSON_FORMAT: Final = "JSON"
SYSTEM_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARN")
"""``LoggingConfig.SystemLogLevel`` values, most detailed first: Lambda sends the records at the
configured level and the less detailed ones."""
DEFAULT_SYSTEM_LOG_LEVEL: Final = "INFO"
TIMEOUT_ERROR_TYPE: Final = "Sandbox.Timedout"


@dataclass(frozen=True, slots=True)
class SystemLogs:
    """The records Lambda writes around each invocation of one function, per its ``LoggingConfig``.

    Plain text (Lambda's default) has the ``START`` / ``END`` / ``REPORT`` lines, with
    ``Task timed out …`` before ``END`` on a timeout, and no level filtering. JSON has one Telemetry
    API event per line, ``{"time", "type", "record"}``, and only the records at least as severe as
    ``system_log_level``: ``platform.start`` and ``platform.report`` are INFO, ``platform.runtimeDone``
    (where the text form has ``END``) is DEBUG when the invocation succeeded and WARN when it did not.
    So a function at INFO gets start and report, one at WARN only the ``runtimeDone`` of a timeout.
    """

    log_format: str = TEXT_FORMAT
    system_log_level: str = DEFAULT_SYSTEM_LOG_LEVEL

    def start(self, request_id: str, version: str = "$LATEST") -> list[str]:
        if self.log_format != JSON_FORMAT:
            return [f"START RequestId: {request_id} Version: {version}"]
        return self._event("INFO", "platform.start", {"requestId": request_id, "version": version})

    def finish(
        self, request_id: str, duration_ms: float, memory_mb: int, *, timed_out_after: float | None = None
    ) -> list[str]:
        """The records after an invocation that took ``duration_ms``; ``timed_out_after``: the timeout
        (seconds) it overran."""
        billed_ms = math.ceil(duration_ms)
        # Max Memory Used is the peak of this whole process, which every local function shares: Lambda
        # also reports the peak of an environment across the invocations it served.
        peak_mb = _peak_rss_mb()
        if self.log_format != JSON_FORMAT:
            lines = [] if timed_out_after is None else [_timeout_text(request_id, timed_out_after)]
            return [
                *lines,
                f"END RequestId: {request_id}",
                f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Billed Duration: {billed_ms} ms\tMemory Size: {memory_mb} MB\t"
                f"Max Memory Used: {peak_mb} MB\t",
            ]
        status: dict[str, str] = (
            {"status": "success"}
            if timed_out_after is None
            else {"status": "timeout", "errorType": TIMEOUT_ERROR_TYPE}
        )
        metrics = {
            "durationMs": round(duration_ms, 3),
            "billedDurationMs": billed_ms,
            "memorySizeMB": memory_mb,
            "maxMemoryUsedMB": peak_mb,
        }
        done_level = "DEBUG" if timed_out_after is None else "WARN"
        return [
            *self._event(
                done_level,
                "platform.runtimeDone",
                {"requestId": request_id, **status, "metrics": {"durationMs": metrics["durationMs"]}},
            ),
            *self._event("INFO", "platform.report", {"requestId": request_id, "metrics": metrics, **status}),
        ]

    def _event(self, level: str, event_type: str, record: dict[str, Any]) -> list[str]:
        if _level_rank(level) < _level_rank(self.system_log_level):
            return []
        event = {"time": _utc_millis(), "type": event_type, "record": record}
        return [json.dumps(event, separators=(",", ":"))]


def _level_rank(level: str) -> int:
    # AWS accepts only these values; anything else is treated as Lambda's default.
    name = level.upper()
    return SYSTEM_LOG_LEVELS.index(name if name in SYSTEM_LOG_LEVELS else DEFAULT_SYSTEM_LOG_LEVEL)


def _utc_millis() -> str:
    return f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"


def _timeout_text(request_id: str, timeout_seconds: float) -> str:
    return f"{_utc_millis()} {request_id} Task timed out after {timeout_seconds:.2f} seconds"


def _peak_rss_mb() -> int:
    # ru_maxrss is in KiB on Linux (bytes on macOS, where this overstates; it is informational).
    return max(1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


# -- shipping -------------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


class LogShipper:
    """Sends log lines to CloudWatch Logs from one background thread, batched per stream."""

    def __init__(
        self,
        logs_factory: Callable[[], CloudWatchLogsClient],
        *,
        interval_seconds: float = SHIP_INTERVAL_SECONDS,
    ) -> None:
        self._logs_factory = logs_factory
        self._interval = interval_seconds
        self._queue: queue.SimpleQueue[tuple[LogTarget, int, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._streams: set[LogTarget] = set()
        self.shipped = 0
        """Events accepted by the endpoint (tests, benchmarks)."""

    def put(self, target: LogTarget, message: str, timestamp_ms: int | None = None) -> None:
        """Queue one event; never blocks on the endpoint."""
        self._queue.put((target, _now_ms() if timestamp_ms is None else timestamp_ms, message))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Send everything queued so far, then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=timeout)
        self._thread = None

    def _run(self) -> None:
        logs = self._logs_factory()
        stopping = False
        while not stopping:
            pending: dict[LogTarget, list[tuple[int, str]]] = {}
            first = self._queue.get()
            if first is None:
                break
            deadline = time.monotonic() + self._interval
            item: tuple[LogTarget, int, str] | None = first
            while item is not None:
                target, timestamp, message = item
                pending.setdefault(target, []).append((timestamp, message))
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                stopping = True  # the stop marker: send this batch, then end
            for target, events in pending.items():
                self._send(logs, target, events)

    def _send(self, logs: CloudWatchLogsClient, target: LogTarget, events: list[tuple[int, str]]) -> None:
        # PutLogEvents wants each batch in time order; lines from several threads arrive interleaved.
        events.sort(key=lambda event: event[0])
        try:
            self._ensure_stream(logs, target)
            for batch in _batches(events):
                logs.put_log_events(logGroupName=target.group, logStreamName=target.stream, logEvents=batch)
                self.shipped += len(batch)
        except Exception:
            # Logs are best effort, as a function's output is: a failed send never stops the pipeline.
            log.exception("could not put %d log events to %s", len(events), target.group)

    def _ensure_stream(self, logs: CloudWatchLogsClient, target: LogTarget) -> None:
        if target in self._streams:
            return
        try:
            logs.create_log_stream(logGroupName=target.group, logStreamName=target.stream)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        except logs.exceptions.ResourceNotFoundException:
            # Lambda creates its default group on first write when the stack declares none.
            logs.create_log_group(logGroupName=target.group)
            logs.create_log_stream(logGroupName=target.group, logStreamName=target.stream)
        self._streams.add(target)


def _batches(events: list[tuple[int, str]]) -> Iterator[list[InputLogEventTypeDef]]:
    batch: list[InputLogEventTypeDef] = []
    size = 0
    for timestamp, line in events:
        encoded = line.encode("utf-8")[:MAX_EVENT_BYTES]
        message = encoded.decode("utf-8", errors="ignore")
        cost = len(encoded) + EVENT_OVERHEAD_BYTES
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append({"timestamp": timestamp, "message": message})
        size += cost
    if batch:
        yield batch


# -- attributing output to the invocation that wrote it ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Route:
    shipper: LogShipper
    target: LogTarget


_route: contextvars.ContextVar[_Route | None] = contextvars.ContextVar("filepipe_log_route", default=None)


@contextmanager
def invocation_output(shipper: LogShipper, target: LogTarget) -> Iterator[None]:
    """Lines this thread writes to stdout inside the block also go to ``target``."""
    token = _route.set(_Route(shipper, target))
    try:
        yield
    finally:
        _route.reset(token)


class FunctionOutput:
    """A stdout stand-in: every write passes through; complete lines written inside
    :func:`invocation_output` are also shipped to that invocation's stream."""

    def __init__(self, target: TextIO) -> None:
        self.target = target
        self._pending = threading.local()

    def write(self, text: str) -> int:
        route = _route.get()
        if route is not None:
            # print() writes the text and the newline separately: buffer per thread until a full line.
            buffered: str = getattr(self._pending, "text", "") + text
            *lines, rest = buffered.split("\n")
            self._pending.text = rest
            timestamp = _now_ms()
            for line in lines:
                route.shipper.put(route.target, line, timestamp)
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self.target, "encoding", "utf-8")

    def fileno(self) -> int:
        return self.target.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@contextmanager
def function_output() -> Iterator[None]:
    """``sys.stdout`` as a :class:`FunctionOutput` over whatever it is now, for the block.

    Handlers keep the stream they find when they are built (a Powertools Logger keeps the first one
    per service for the whole process), so a :class:`FunctionOutput` may outlive the block: it goes on
    passing writes through, and routing by the context variable keeps working in any instance.
    """
    previous = sys.stdout
    if isinstance(previous, FunctionOutput):
        yield
        return
    sys.stdout = FunctionOutput(previous)
    try:
        yield
    finally:
        if isinstance(sys.stdout, FunctionOutput) and sys.stdout.target is previous:
            sys.stdout = previous
