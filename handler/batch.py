"""One SQS batch: per-message outcome, DLQ parking, retry pacing, logs and metrics.

Per message:

- ``s3:TestEvent`` and events that are not object creations are acknowledged and skipped;
- every announced object version is processed (:class:`~.processing.FileProcessor`); a version that
  fails permanently parks the original body in the DLQ (the message then counts as handled); a
  transient failure reports the message in ``batchItemFailures`` and hides it with exponential backoff;
- on the last delivery the queue allows (``max_receive_count``), a transient failure is parked with its
  reason instead: SQS's own redrive would move the message without one;
- near the function timeout, messages not yet started are reported as failures (retried at once);
- a file that outgrows the invocation is checkpointed (:mod:`.continuation`) and its message sent again
  as a fresh copy, acknowledging this one: a continuation is not a retry (no ``FilesRetried``, no
  receive toward ``max_receive_count``; ChangeMessageVisibility would keep the receive count growing)
  and has its own metric, ``FilesContinued``;
- with a circuit breaker, a message on its last delivery whose files fail transiently while the breaker
  is not closed is re-sent as a fresh copy (at most ``max_requeues`` times) instead of parked: the
  breaker's probes count as deliveries, and a good file must not reach the DLQ because of an outage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from .deadline import Deadline
from .dlq import send_to_dlq
from .errors import (
    DeadlineError,
    FilepipeError,
    PermanentError,
    RetriesExhaustedError,
    TransientError,
    UnknownBodyError,
)
from .events import ObjectRef, parse_body
from .processing import FileProcessor, FileResult
from .queues import Deferral, QueueUrls, backoff_seconds, change_visibility, requeue
from .settings import PIPELINE_DIMENSION, BreakerState, HandlerSettings, Metric, QueueAttribute

if TYPE_CHECKING:
    from .clients import ClientSet


class _Invocation:
    """Per-call state: metrics and pending visibility changes (handlers may run concurrently)."""

    def __init__(self, settings: HandlerSettings, service: str, context: Any) -> None:
        self.deadline = Deadline(context, settings.timeout_margin_ms)
        # EphemeralMetrics keeps its own metric set: several pipelines in one process do not mix.
        self.metrics = EphemeralMetrics(namespace=settings.metrics_namespace, service=service)
        self.metrics.add_dimension(PIPELINE_DIMENSION, settings.pipeline_name)
        self.deferrals: list[Deferral] = []

    def count(self, metric: Metric, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
        self.metrics.add_metric(name=metric.value, unit=unit, value=value)


@dataclass
class _Message:
    """One SQS message of the batch and what its files came to."""

    raw: dict[str, Any]
    id: str
    body: str
    attempt: int
    last_delivery: bool
    """Whether a transient failure is parked now (the queue's last delivery, and no fresh copy allowed)."""
    requeues: int
    """Fresh copies that preceded this message (the breaker's bound)."""
    requeue: bool
    """The queue's last delivery while the breaker is not closed: a transient failure sends a fresh copy."""
    log: dict[str, Any]
    failed: list[FileResult] = field(default_factory=list)
    """Files that failed permanently (their leases are held until the message is parked)."""
    unleased: list[tuple[PermanentError, ObjectRef | None]] = field(default_factory=list)
    """Permanent failures with no lease to record them under (an unknown body, an exhausted retry
    that never started)."""
    continued: list[FileResult] = field(default_factory=list)
    """Files checkpointed to be continued by a fresh copy of the message."""


def _requeues(message: dict[str, Any]) -> int:
    attribute = (message.get("messageAttributes") or {}).get(QueueAttribute.REQUEUES.value) or {}
    try:
        return max(0, int(attribute.get("stringValue") or 0))
    except (TypeError, ValueError):
        return 0


def _receive_count(message: dict[str, Any]) -> int:
    attributes = message.get("attributes") or {}
    try:
        return max(1, int(attributes.get("ApproximateReceiveCount", "1")))
    except (TypeError, ValueError):
        return 1


class BatchHandler:
    """The Lambda handler of one pipeline: ``handler(event, context) -> partial batch response``."""

    def __init__(self, settings: HandlerSettings, clients: ClientSet, files: FileProcessor) -> None:
        self.settings = settings
        self.clients = clients
        self.files = files
        self.service = settings.service_name or settings.pipeline_name
        self.logger = Logger(service=self.service, level=settings.log_level)
        # Powertools configures a service's logger once per process and ignores the level of a later
        # Logger for the same service: several handlers of one service in a process (the local runtime,
        # tests) must each get their own level.
        self.logger.setLevel(settings.log_level)
        self._queue_urls = QueueUrls()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        call = _Invocation(self.settings, self.service, context)
        records = event.get("Records")
        messages = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
        # Written out rather than Powertools' BatchProcessor: the loop is this small, and importing the
        # batch utility (asyncio and its event data classes) adds about 70 ms to every cold start
        # (python -X importtime; bench/handler_cold_start.py measures the whole start).
        failed: list[str] = []
        for message in messages:
            try:
                self._handle(message, call)
            except FilepipeError:
                failed.append(str(message.get("messageId", "")))  # _handle logged why
            except Exception:
                self.logger.exception("unexpected error; the message will be retried")
                failed.append(str(message.get("messageId", "")))
        if call.deferrals:
            for problem in change_visibility(self.clients.sqs, self._queue_urls, call.deferrals):
                self.logger.warning("could not delay a failed message", extra={"problem": problem})
        if call.metrics.metric_set:
            call.metrics.flush_metrics()
        # Lambda's documented shape; an empty list means the whole batch succeeded.
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    def _handle(self, raw: dict[str, Any], call: _Invocation) -> None:
        """Handle one message; raise to report it in ``batchItemFailures``."""
        message_id = str(raw.get("messageId", ""))
        attempt = _receive_count(raw)
        requeues = _requeues(raw)
        exhausted = attempt >= self.settings.max_receive_count
        may_requeue = exhausted and self._breaker_not_closed(requeues)
        message = _Message(
            raw=raw,
            id=message_id,
            body=str(raw.get("body", "")),
            attempt=attempt,
            last_delivery=exhausted and not may_requeue,
            requeues=requeues,
            requeue=may_requeue,
            log={"message_id": message_id, PIPELINE_DIMENSION: self.settings.pipeline_name},
        )
        try:
            parsed = parse_body(message.body)
        except UnknownBodyError as error:
            self.logger.error("message body not understood", extra={**message.log, "reason": error.reason})
            call.count(Metric.FILES_FAILED)
            message.unleased.append((error, None))
            self._park(message, call)
            return
        if parsed.test_event:
            self.logger.info("s3:TestEvent acknowledged and skipped", extra=message.log)
            return
        for ignored in parsed.ignored:
            self.logger.info(
                "event ignored (not an object creation)", extra={**message.log, "event": ignored}
            )
        transient = self._process_files(message, parsed.objects, call)
        if transient is not None:
            # Retry the whole message; files already done are skipped then (final in the state table).
            for result in message.failed:
                assert result.lease is not None
                self.files.release(result.lease, transient)
            retry_now = isinstance(transient, DeadlineError)
            if message.requeue and not retry_now and self._requeue(message):
                return
            self._defer(message, call, seconds=0 if retry_now else None)
            raise transient
        if message.failed or message.unleased:
            self._park(message, call)
        if message.continued:
            self._continue(message, call)

    def _process_files(
        self, message: _Message, refs: list[ObjectRef], call: _Invocation
    ) -> TransientError | None:
        """Process every version the message announces; return the first transient failure, if any
        (on the last delivery there is none: it is recorded as a permanent failure instead)."""
        transient: TransientError | None = None
        for ref in refs:
            file_log = {**message.log, "bucket": ref.bucket, "key": ref.key, "version_id": ref.version_id}
            try:
                if call.deadline.near():
                    raise DeadlineError("function timeout near; file not started")
                result = self.files.process(
                    ref, message.id, message.attempt, call.deadline, message.last_delivery
                )
            except TransientError as error:
                if message.last_delivery:
                    exhausted = RetriesExhaustedError.after(message.attempt, error)
                    message.unleased.append((exhausted, ref))
                    self._report_failure(exhausted, call, file_log)
                    continue
                call.count(Metric.FILES_RETRIED)
                self.logger.warning(
                    "file failed transiently; will retry",
                    extra={**file_log, "error_type": error.error_type, "reason": error.reason},
                )
                transient = transient or error
                continue
            if result.restarted is not None:
                self.logger.warning(
                    "file started again from its first byte: its checkpoint was inconsistent",
                    extra={**file_log, "reason": result.restarted},
                )
            if result.continued is not None:
                message.continued.append(result)
                call.count(Metric.FILES_CONTINUED)
                point = result.continued.resume
                self.logger.info(
                    "file continued in a fresh invocation",
                    extra={
                        **file_log,
                        "resume_offset": point.reader.offset,
                        "records": result.continued.output.records,
                        "continuations": result.continued.continuations,
                    },
                )
                continue
            self._report(result, call, file_log)
            if result.failure is not None:
                if result.lease is not None:
                    message.failed.append(result)
                else:
                    message.unleased.append((result.failure, ref))
        return transient

    def _report_failure(self, error: PermanentError, call: _Invocation, file_log: dict[str, Any]) -> None:
        call.count(Metric.FILES_FAILED)
        self.logger.error(
            "file failed permanently",
            extra={**file_log, "error_type": error.error_type, "reason": error.reason},
        )

    def _report(self, result: FileResult, call: _Invocation, file_log: dict[str, Any]) -> None:
        if result.failure is not None:
            self._report_failure(result.failure, call, file_log)
            return
        if result.superseded:
            call.count(Metric.FILES_SUPERSEDED)
            self.logger.info("file superseded by a newer version", extra={**file_log, "why": result.skipped})
            return
        outcome = result.outcome
        if outcome is None:
            self.logger.info("file skipped", extra={**file_log, "why": result.skipped})
            return
        call.count(Metric.FILES_PROCESSED)
        call.count(Metric.RECORDS_PROCESSED, outcome.records)
        call.count(Metric.RECORDS_REJECTED, outcome.rejected)
        call.count(Metric.BYTES_READ, outcome.bytes_read, MetricUnit.Bytes)
        if outcome.latency_ms is not None:
            call.count(Metric.END_TO_END_LATENCY_MS, outcome.latency_ms, MetricUnit.Milliseconds)
        # DEBUG, not INFO: at the default level a successful file writes no log line of its own (the
        # batch's EMF line counts it, the state table records it). At INFO this ~530-byte line was
        # $0.27 of CloudWatch Logs ingestion per million files (bench/cost_model.py).
        self.logger.debug(
            "file processed",
            extra={
                **file_log,
                "output_key": outcome.output_key,
                "records": outcome.records,
                "rejected": outcome.rejected,
                "bytes": outcome.bytes_read,
                "duration_ms": outcome.duration_ms,
            },
        )

    def _park(self, message: _Message, call: _Invocation) -> None:
        """Send the message to the DLQ once (its body names every file), then record the park on every
        failed file; the first failure is the message's reason."""
        failures: list[tuple[PermanentError, ObjectRef | None]] = [
            (result.failure, result.ref) for result in message.failed if result.failure is not None
        ] + message.unleased
        error, ref = failures[0]
        try:
            dlq_id = send_to_dlq(
                self.clients.sqs, self.settings.dlq_url, message.body, error, ref, self.settings.pipeline_name
            )
        except TransientError as dlq_error:
            self.logger.error(
                "could not park the message in the DLQ; it will be retried",
                extra={**message.log, "reason": dlq_error.reason},
            )
            for result in message.failed:
                assert result.lease is not None
                self.files.release(result.lease, dlq_error)
            self._defer(message, call)
            raise dlq_error from None
        self.logger.info("message parked in the DLQ", extra={**message.log, "dlq_message_id": dlq_id})
        for result in message.failed:
            assert result.lease is not None
            try:
                self.files.parked(result.lease, dlq_id)
            except TransientError as state_error:
                # The message is safely in the DLQ and the file is FAILED with its reason; only the
                # park's id is missing, so a duplicate delivered after the lease expires parks it again.
                self.logger.warning(
                    "could not record the park in the state table",
                    extra={**message.log, "key": result.ref.key, "reason": state_error.reason},
                )

    def _breaker_not_closed(self, requeues: int) -> bool:
        """Whether a last delivery may be re-sent: a breaker exists, is not closed, and the bound holds."""
        table = self.settings.breaker_table
        if table is None or requeues >= self.settings.max_requeues:
            return False
        from .breaker import read_status

        try:
            return read_status(self.clients.dynamodb, table).state is not BreakerState.CLOSED
        except Exception:
            # Unknown: park as without a breaker (a good file may reach the DLQ, but never loops).
            self.logger.exception("could not read the circuit breaker's state")
            return False

    def _requeue(self, message: _Message) -> bool:
        """Send a fresh copy of the message (a new receive count) and acknowledge this one."""
        arn = message.raw.get("eventSourceARN")
        if not arn:
            return False
        delay = backoff_seconds(
            message.attempt, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
        )
        try:
            copy_id = requeue(
                self.clients.sqs, self._queue_urls, str(arn), message.body, message.requeues + 1, delay
            )
        except Exception as error:
            self.logger.error(
                "could not re-send the message while the circuit breaker is open; it is retried",
                extra={**message.log, "reason": str(error)},
            )
            return False
        self.logger.warning(
            "last delivery failed while the circuit breaker is not closed: re-sent as a fresh copy",
            extra={**message.log, "copy_message_id": copy_id, "requeues": message.requeues + 1},
        )
        return True

    def _continue(self, message: _Message, call: _Invocation) -> None:
        """Hand the checkpointed files to a fresh copy of the message; if it cannot be sent, the message
        itself is retried at once (it resumes from the same checkpoint, at the cost of a receive)."""
        arn = message.raw.get("eventSourceARN")
        continuations = max(
            result.continued.continuations for result in message.continued if result.continued
        )
        try:
            if not arn:
                raise ValueError("the message has no eventSourceARN to send a copy to")
            copy_id = requeue(
                self.clients.sqs, self._queue_urls, str(arn), message.body, message.requeues, 0, continuations
            )
        except Exception as error:
            self.logger.warning(
                "could not send the continuation; the message is retried instead",
                extra={**message.log, "reason": str(error)},
            )
            self._defer(message, call, seconds=0)
            raise DeadlineError(f"continuation not sent: {error}") from None
        self.logger.debug("continuation sent", extra={**message.log, "copy_message_id": copy_id})

    def _defer(self, message: _Message, call: _Invocation, seconds: int | None = None) -> None:
        arn = message.raw.get("eventSourceARN")
        receipt = message.raw.get("receiptHandle")
        if not arn or not receipt:
            return
        if seconds is None:
            seconds = backoff_seconds(
                message.attempt, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
            )
        call.deferrals.append(Deferral(str(arn), str(receipt), seconds))
