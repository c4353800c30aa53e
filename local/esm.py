"""An SQS event source mapping, emulated in-process with the semantics of the Lambda service.

What Lambda does for an SQS mapping, and what this runner reproduces:

- pollers receive up to ``batch_size`` messages, waiting up to ``batching_window_seconds`` to fill a
  batch (with no window, a batch is invoked as soon as one receive returns messages);
- received messages stay invisible for the queue's visibility timeout; a message that is not deleted
  reappears after it, and the queue itself (its redrive policy) moves it to the DLQ after
  ``maxReceiveCount`` receives;
- a successful invocation deletes the batch; a function error or a timeout deletes nothing;
- with ``ReportBatchItemFailures`` only the reported ``itemIdentifier`` s stay; an empty or null
  list is full success, and a malformed response or an unknown identifier fails the whole batch;
- a disabled mapping stops polling (messages wait in the queue); enabling it resumes. Its state is
  ``Disabling`` until every poller has finished its receive and its batch, then ``Disabled``;
- ``maximum_concurrency`` bounds the concurrent invocations (one thread per poller); changing it adds
  pollers, or retires pollers as they finish their batch;
- each poller is one execution environment: the invocations it makes log to one stream of the
  function's log group (when a :class:`~filepipe.local.lambda_logs.LogShipper` is given), between
  the system log records Lambda writes for the function's ``LoggingConfig``
  (:class:`~filepipe.local.lambda_logs.SystemLogs`: plain-text ``START`` / ``END`` / ``REPORT``
  lines, or JSON ``platform.start`` / ``platform.report`` records filtered by the system log level);
- the function timeout bounds an invocation: the handler sees the deadline through
  ``context.get_remaining_time_in_millis()`` and an invocation that overruns counts as failed.
  Python cannot kill a thread, so an overrunning handler is abandoned rather than frozen: its late
  result is ignored, as Lambda ignores a killed sandbox's. Its poller starts no new invocation until the
  abandoned thread ends (so live invocations never exceed the concurrency), and :meth:`stop` waits for
  abandoned threads too (bounded).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from filepipe.local.lambda_logs import (
    DEFAULT_SYSTEM_LOG_LEVEL,
    TEXT_FORMAT,
    LogShipper,
    LogTarget,
    SystemLogs,
    default_log_group,
    environment_stream,
    invocation_output,
)
from filepipe.local.metrics import LAMBDA_NAMESPACE, LocalMetrics

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef
    from pulumi import AssetArchive

    from filepipe.local.capture import CapturedResource

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: ``(event, context) -> response``."""

MAX_MESSAGES_PER_RECEIVE: Final = 10
REPORT_BATCH_ITEM_FAILURES: Final = "ReportBatchItemFailures"
DEFAULT_CONCURRENCY: Final = 5
"""Lambda starts an SQS mapping with five pollers; without ``maximumConcurrency`` use as many threads."""
DEFAULT_FUNCTION_TIMEOUT_SECONDS: Final = 3.0
"""Lambda's timeout for a function that declares none."""
DEFAULT_FUNCTION_MEMORY_MB: Final = 128
DEFAULT_BATCH_SIZE: Final = 10
"""Lambda's batch size for an SQS mapping that declares none."""
DEFAULT_VISIBILITY_TIMEOUT_SECONDS: Final = 30
"""SQS's visibility timeout for a queue that declares none."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A Lambda function as the runner invokes it."""

    name: str
    arn: str
    timeout_seconds: float = DEFAULT_FUNCTION_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_FUNCTION_MEMORY_MB
    environment: Mapping[str, str] = field(default_factory=dict)
    code: AssetArchive | None = None
    """The function's code archive as the component built it (schema file, processor code)."""
    entry_point: str = ""
    """The function's ``handler`` (``handler.app.lambda_handler``, ``handler.breaker.lambda_handler``)."""
    log_group: str | None = None
    """``LoggingConfig.LogGroup``; ``None``: Lambda's default group."""
    log_format: str = TEXT_FORMAT
    """``LoggingConfig.LogFormat``: ``Text`` or ``JSON``, the form of the system log records."""
    system_log_level: str = DEFAULT_SYSTEM_LOG_LEVEL
    """``LoggingConfig.SystemLogLevel``: the least detailed system records sent (JSON format only)."""

    @property
    def log_group_name(self) -> str:
        return self.log_group or default_log_group(self.name)

    @property
    def system_logs(self) -> SystemLogs:
        return SystemLogs(self.log_format, self.system_log_level)

    @classmethod
    def from_resource(cls, function: CapturedResource) -> FunctionSpec:
        """The captured ``aws:lambda/function:Function``, with Lambda's defaults for what it leaves unset."""
        variables = (function.inputs.get("environment") or {}).get("variables") or {}
        logging_config = function.inputs.get("loggingConfig") or {}
        return cls(
            name=function.get("name"),
            arn=function.get("arn"),
            timeout_seconds=function.number("timeout", DEFAULT_FUNCTION_TIMEOUT_SECONDS),
            memory_mb=int(function.number("memorySize", DEFAULT_FUNCTION_MEMORY_MB)),
            environment={str(k): str(v) for k, v in variables.items()},
            code=function.inputs.get("code"),
            entry_point=str(function.inputs.get("handler") or ""),
            log_group=logging_config.get("logGroup") or None,
            log_format=logging_config.get("logFormat") or TEXT_FORMAT,
            system_log_level=logging_config.get("systemLogLevel") or DEFAULT_SYSTEM_LOG_LEVEL,
        )


def visibility_timeout_seconds(queue: CapturedResource) -> int:
    """A captured queue's visibility timeout, SQS's default when it declares none."""
    return int(queue.number("visibilityTimeoutSeconds", DEFAULT_VISIBILITY_TIMEOUT_SECONDS))


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """An SQS event source mapping as the component declares it."""

    name: str
    queue_url: str
    queue_arn: str
    function_name: str
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_seconds: float = 0.0
    function_response_types: tuple[str, ...] = ()
    enabled: bool = True
    maximum_concurrency: int | None = None
    visibility_timeout_seconds: int | None = None
    """The source queue's visibility timeout (``None``: unknown, not checked)."""
    uuid: str = ""
    """The mapping's UUID on the endpoint (empty: it exists only in this runner)."""

    @classmethod
    def from_resource(
        cls, mapping: CapturedResource, *, queue: CapturedResource, function: CapturedResource
    ) -> MappingSpec:
        """The captured ``aws:lambda/eventSourceMapping:EventSourceMapping`` from ``queue`` to ``function``."""
        concurrency = (mapping.inputs.get("scalingConfig") or {}).get("maximumConcurrency")
        return cls(
            name=mapping.name,
            queue_url=queue.get("url"),
            queue_arn=queue.get("arn"),
            function_name=function.get("name"),
            batch_size=int(mapping.number("batchSize", DEFAULT_BATCH_SIZE)),
            batching_window_seconds=mapping.number("maximumBatchingWindowInSeconds", 0),
            function_response_types=tuple(mapping.inputs.get("functionResponseTypes") or ()),
            enabled=bool(mapping.inputs.get("enabled", True)),
            maximum_concurrency=int(concurrency) if concurrency is not None else None,
            visibility_timeout_seconds=visibility_timeout_seconds(queue),
            uuid=str(mapping.get("uuid") or ""),
        )

    @property
    def reports_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types


MIN_MAXIMUM_CONCURRENCY: Final = 2
MAX_MAXIMUM_CONCURRENCY: Final = 1000


class MappingConfigError(ValueError):
    """A mapping that the Lambda service would refuse to create."""


def check_mapping(mapping: MappingSpec, function: FunctionSpec) -> None:
    """Refuse what ``CreateEventSourceMapping`` refuses for an SQS source, naming the mapping."""
    problems: list[str] = []
    visibility = mapping.visibility_timeout_seconds
    if visibility is not None and function.timeout_seconds > visibility:
        problems.append(
            f"the queue's visibility timeout ({visibility} s) is below the function timeout of "
            f"{function.name} ({function.timeout_seconds:g} s)"
        )
    if mapping.batch_size < 1:
        problems.append(f"batch size {mapping.batch_size} is below 1")
    if mapping.batch_size > MAX_MESSAGES_PER_RECEIVE and mapping.batching_window_seconds < 1:
        problems.append(
            f"batch size {mapping.batch_size} is above {MAX_MESSAGES_PER_RECEIVE} "
            "without a batching window (maximumBatchingWindowInSeconds >= 1)"
        )
    concurrency = mapping.maximum_concurrency
    if concurrency is not None and not MIN_MAXIMUM_CONCURRENCY <= concurrency <= MAX_MAXIMUM_CONCURRENCY:
        problems.append(
            f"maximumConcurrency {concurrency} is outside "
            f"{MIN_MAXIMUM_CONCURRENCY}..{MAX_MAXIMUM_CONCURRENCY}"
        )
    if problems:
        raise MappingConfigError(f"event source mapping {mapping.name}: " + "; ".join(problems))


class MappingState(StrEnum):
    """``State`` of an event source mapping, as ``GetEventSourceMapping`` reports it."""

    ENABLED = "Enabled"
    ENABLING = "Enabling"
    UPDATING = "Updating"
    DISABLING = "Disabling"
    DISABLED = "Disabled"


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes handlers and Powertools read)."""

    def __init__(
        self, function: FunctionSpec, deadline: float, region: str, log_stream: str | None = None
    ) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.arn
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = function.log_group_name
        self.log_stream_name = log_stream or f"local/{self.aws_request_id}"
        self.region = region
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(slots=True)
class MappingStats:
    """Counters of one runner, for tests, the demo and the benchmark."""

    invocations: int = 0
    errors: int = 0
    timeouts: int = 0
    messages_received: int = 0
    messages_deleted: int = 0
    messages_failed: int = 0


def sqs_event_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda event record for one received SQS message (field names as Lambda sends them)."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", ""),
            "SenderId": attributes.get("SenderId", ""),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", ""),
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": list(value.get("StringListValues", [])),
                "binaryListValues": list(value.get("BinaryListValues", [])),
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(response: Any, message_ids: Sequence[str]) -> set[str]:
    """The messages Lambda keeps after a ``ReportBatchItemFailures`` response.

    Lambda's rules: a null/empty response or list is full success; an item whose identifier is
    missing, empty or not in the batch, or a response of the wrong shape, fails the whole batch.
    """
    everything = set(message_ids)
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return everything
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything
        failed.add(identifier)
    return failed


class EventSourceMappingRunner:
    """Polls one queue and invokes one handler, on ``concurrency`` threads, until :meth:`stop`.

    Where the mapping is stored on the endpoint, the endpoint's mapping is the one source of truth:
    :meth:`bind` gives the runner a way to update it, :meth:`set_enabled` goes through it, and the
    endpoint calls :meth:`follow` on every update (from any process), which the runner obeys.
    """

    def __init__(
        self,
        mapping: MappingSpec,
        function: FunctionSpec,
        handler: Handler,
        sqs_factory: Callable[[], SQSClient],
        *,
        region: str,
        metrics: LocalMetrics | None = None,
        concurrency: int | None = None,
        poll_wait_seconds: int = 1,
        logs: LogShipper | None = None,
    ) -> None:
        check_mapping(mapping, function)
        self.mapping = mapping
        self.function = function
        self._handler = handler
        self._sqs_factory = sqs_factory
        self._region = region
        self._metrics = metrics
        self._logs = logs
        self._default_concurrency = concurrency or DEFAULT_CONCURRENCY
        """Pollers when the mapping sets no maximum concurrency (the local tuning's, else Lambda's)."""
        self._concurrency = concurrency or mapping.maximum_concurrency or DEFAULT_CONCURRENCY
        self._maximum_concurrency = mapping.maximum_concurrency
        """The mapping's ``MaximumConcurrency`` as last followed: only a change of it moves the pollers."""
        self._poll_wait_seconds = poll_wait_seconds
        self._enabled_state = mapping.enabled
        """The mapping's ``Enabled``; ``_enabled`` is also set by :meth:`stop` to wake pollers."""
        self._enabled = threading.Event()
        if mapping.enabled:
            self._enabled.set()
        self._update_endpoint: Callable[[bool], None] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        """Guards the pollers, the counters and the stats."""
        self._pollers: dict[int, threading.Thread] = {}
        """Live poller threads by index; a poller whose index reaches the concurrency retires."""
        self._abandoned: list[threading.Thread] = []
        """Invocation threads that overran the function timeout and may still be running."""
        self.stats = MappingStats()
        self._held = 0
        self._parked = 0

    # -- control ---------------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled_state

    def bind(self, update_endpoint: Callable[[bool], None]) -> None:
        """Make :meth:`set_enabled` update the endpoint's mapping (which then calls :meth:`follow`)."""
        self._update_endpoint = update_endpoint

    def set_enabled(self, enabled: bool) -> None:
        """``UpdateEventSourceMapping(Enabled=...)``: a disabled mapping leaves messages in the queue."""
        if self._update_endpoint is not None:
            self._update_endpoint(enabled)
        else:
            self.follow(enabled, self._maximum_concurrency)

    def follow(self, enabled: bool, maximum_concurrency: int | None) -> None:
        """Run as the mapping is now configured. Never blocks: pollers stop and start on their own."""
        self._enabled_state = enabled
        if enabled:
            self._enabled.set()
        else:
            self._enabled.clear()
        if maximum_concurrency != self._maximum_concurrency:
            self._maximum_concurrency = maximum_concurrency
            self._concurrency = maximum_concurrency or self._default_concurrency
            self._add_pollers()

    @property
    def state(self) -> MappingState:
        """The state Lambda would report: transitional until the pollers do what the mapping says."""
        with self._lock:
            pollers, parked, held = len(self._pollers), self._parked, self._held
        if not self._enabled_state:
            return MappingState.DISABLED if parked == pollers and held == 0 else MappingState.DISABLING
        if parked:
            return MappingState.ENABLING
        if pollers != self._concurrency and not self._stopping.is_set():
            return MappingState.UPDATING
        return MappingState.ENABLED

    @property
    def concurrency(self) -> int:
        """Pollers (and so concurrent invocations) this mapping runs with."""
        return self._concurrency

    @property
    def pollers(self) -> int:
        """Poller threads running now (briefly more than :attr:`concurrency` after it was lowered)."""
        with self._lock:
            return len(self._pollers)

    @property
    def busy(self) -> bool:
        """Whether messages are held: received into a batch and not yet deleted or given back."""
        with self._lock:
            return self._held > 0

    def wait_until_paused(self, timeout: float = 10.0) -> bool:
        """After ``set_enabled(False)``: wait until every poller has finished its receive and parked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state is MappingState.DISABLED:
                return True
            time.sleep(0.05)
        return False

    def _hold(self, count: int) -> None:
        with self._lock:
            self._held += count

    def start(self) -> None:
        self._add_pollers()

    def _add_pollers(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            for index in range(self._concurrency):
                if index not in self._pollers:
                    thread = threading.Thread(
                        target=self._poll_loop,
                        args=(index,),
                        name=f"esm-{self.mapping.name}-{index}",
                        daemon=True,
                    )
                    self._pollers[index] = thread
                    thread.start()

    def _retires(self, index: int) -> bool:
        """Whether poller ``index`` is beyond the concurrency (then it is no longer counted)."""
        with self._lock:
            if index < self._concurrency and not self._stopping.is_set():
                return False
            self._pollers.pop(index, None)
            return True

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._enabled.set()  # wake pollers parked on a disabled mapping so they can exit
        deadline = time.monotonic() + timeout
        with self._lock:
            pollers = list(self._pollers.values())
        for thread in pollers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._pollers.clear()
            abandoned, self._abandoned = self._abandoned, []
        for worker in abandoned:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning("%s: an overrunning invocation is still running after stop", self.function.name)

    @property
    def abandoned_invocations(self) -> int:
        """Invocations that overran the function timeout and are still running."""
        with self._lock:
            return sum(worker.is_alive() for worker in self._abandoned)

    # -- polling ---------------------------------------------------------------------------------

    def _poll_loop(self, index: int) -> None:
        sqs = self._sqs_factory()
        # One poller is one execution environment: one log stream for all the invocations it makes.
        environment = LogTarget(self.function.log_group_name, environment_stream())
        overrunning: threading.Thread | None = None
        while True:
            if overrunning is not None:
                # One invocation per poller: an abandoned (timed-out) invocation still holds this
                # poller's slot of the concurrency until its thread really ends.
                overrunning.join(timeout=0.2)
                if overrunning.is_alive() and not self._stopping.is_set():
                    continue
                overrunning = None
            if self._retires(index):
                return
            if not self._enabled.is_set():
                with self._lock:
                    self._parked += 1
                self._enabled.wait(timeout=0.5)
                with self._lock:
                    self._parked -= 1
                continue
            batch: list[MessageTypeDef] = []
            try:
                self._collect_batch(sqs, batch)
                if batch:
                    overrunning = self._invoke(sqs, batch, environment)
            except Exception:
                # The Lambda service keeps polling whatever happens to one receive; so does the runner.
                log.exception("event source mapping %s: poll failed", self.mapping.name)
                self._stopping.wait(1.0)
            finally:
                self._hold(-len(batch))

    def _collect_batch(self, sqs: SQSClient, batch: list[MessageTypeDef]) -> None:
        """Fill ``batch`` (the caller's, so that held messages are accounted for even on errors)."""
        window = self.mapping.batching_window_seconds
        window_end: float | None = None
        while len(batch) < self.mapping.batch_size and not self._stopping.is_set():
            if not self._enabled.is_set():
                break
            wait = self._poll_wait_seconds
            if window_end is not None:
                remaining = window_end - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(wait, max(0, int(remaining)))
            response = sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=min(MAX_MESSAGES_PER_RECEIVE, self.mapping.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            self._hold(len(messages))
            batch.extend(messages)
            if batch and window <= 0:
                break
            if batch and window_end is None:
                window_end = time.monotonic() + window
            if not messages and not batch:
                break
            if not messages and wait == 0:
                self._stopping.wait(0.1)  # a sub-second window: avoid spinning on empty receives

    # -- invoking --------------------------------------------------------------------------------

    def _invoke(
        self, sqs: SQSClient, batch: list[MessageTypeDef], environment: LogTarget
    ) -> threading.Thread | None:
        """Invoke the handler on ``batch``; return its thread if it overran the timeout (still running)."""
        records = [sqs_event_record(message, self.mapping.queue_arn, self._region) for message in batch]
        event = {"Records": records}
        started = time.monotonic()
        deadline = started + self.function.timeout_seconds
        context = LambdaContext(self.function, deadline, self._region, environment.stream)
        request_id = context.aws_request_id
        outcome: dict[str, Any] = {}
        logs = self._logs
        system_logs = self.function.system_logs
        if logs is not None:
            for record in system_logs.start(request_id):
                logs.put(environment, record)

        def run() -> None:
            try:
                if logs is None:
                    outcome["response"] = self._handler(event, context)
                else:
                    with invocation_output(logs, environment):
                        outcome["response"] = self._handler(event, context)
            except BaseException as error:
                outcome["error"] = error

        worker = threading.Thread(target=run, name=f"invoke-{self.function.name}", daemon=True)
        worker.start()
        worker.join(timeout=self.function.timeout_seconds)
        duration_ms = (time.monotonic() - started) * 1000
        message_ids = [record["messageId"] for record in records]
        timed_out = worker.is_alive()
        error = None if timed_out else outcome.get("error")  # a late result is ignored
        if logs is not None:
            timed_out_after = self.function.timeout_seconds if timed_out else None
            for record in system_logs.finish(
                request_id, duration_ms, self.function.memory_mb, timed_out_after=timed_out_after
            ):
                logs.put(environment, record)

        if timed_out:
            with self._lock:
                self._abandoned = [w for w in self._abandoned if w.is_alive()]
                self._abandoned.append(worker)
        if timed_out or error is not None:
            failed = set(message_ids)
            if timed_out:
                log.warning(
                    "%s: task timed out after %.2f seconds", self.function.name, self.function.timeout_seconds
                )
            else:
                log.warning("%s: invocation failed: %r", self.function.name, error)
        elif self.mapping.reports_batch_item_failures:
            failed = failed_message_ids(outcome.get("response"), message_ids)
        else:
            failed = set()

        done = [message for message in batch if message["MessageId"] not in failed]
        self._delete(sqs, done)
        self._record(
            len(batch), len(done), len(failed), duration_ms, timed_out=timed_out, errored=error is not None
        )
        return worker if timed_out else None

    def _delete(self, sqs: SQSClient, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + MAX_MESSAGES_PER_RECEIVE]
            response = sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(chunk)
                ],
            )
            for failure in response.get("Failed", []):
                log.warning("%s: delete failed: %s", self.mapping.name, failure.get("Message"))

    def _record(
        self, received: int, deleted: int, failed: int, duration_ms: float, *, timed_out: bool, errored: bool
    ) -> None:
        with self._lock:
            self.stats.invocations += 1
            self.stats.messages_received += received
            self.stats.messages_deleted += deleted
            self.stats.messages_failed += failed
            self.stats.timeouts += int(timed_out)
            self.stats.errors += int(timed_out or errored)
        if self._metrics is not None:
            dimensions = {"FunctionName": self.function.name}
            self._metrics.put(LAMBDA_NAMESPACE, "Invocations", dimensions, 1)
            self._metrics.put(LAMBDA_NAMESPACE, "Errors", dimensions, float(timed_out or errored))
            self._metrics.put(LAMBDA_NAMESPACE, "Duration", dimensions, duration_ms)
