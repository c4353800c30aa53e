"""One SQS batch: per-message outcome, DLQ parking, retry pacing, logs and metrics.

Before the first file starts, every object version the batch announces is recorded RECEIVED (a message
whose versions cannot be recorded is retried as a whole). Then, per message:

- ``s3:TestEvent`` and events that are not object creations are acknowledged and skipped;
- every announced object version is processed; a :class:`PermanentError` parks the original body in
  the DLQ (the message then counts as handled), a :class:`TransientError` reports the message in
  ``batchItemFailures`` and hides it with exponential backoff;
- near the function timeout, messages not yet started are reported as failures; their files stay
  RECEIVED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from .deadline import Deadline
from .dlq import send_to_dlq
from .errors import DeadlineError, PermanentError, TransientError, UnknownBodyError
from .events import ObjectRef, parse_body
from .processing import FileProcessor
from .queues import Deferral, QueueUrls, backoff_seconds, change_visibility
from .settings import HandlerSettings, Metric

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from .clients import ClientSet

PIPELINE_DIMENSION = "pipeline"


class _Invocation:
    """Per-call state: metrics and pending visibility changes (handlers may run concurrently)."""

    def __init__(
        self, settings: HandlerSettings, service: str, context: Any, messages: list[dict[str, Any]]
    ) -> None:
        self.deadline = Deadline(context, settings.timeout_margin_ms)
        self.messages = messages
        self.received = False
        self.unreceived: dict[str, TransientError] = {}
        """Message id -> why its object versions could not be recorded RECEIVED."""
        # EphemeralMetrics keeps its own metric set: several pipelines in one process do not mix.
        self.metrics = EphemeralMetrics(namespace=settings.metrics_namespace, service=service)
        self.metrics.add_dimension(PIPELINE_DIMENSION, settings.pipeline_name)
        self.deferrals: list[Deferral] = []
        self.failed: list[str] = []

    def count(self, metric: Metric, value: float = 1, unit: MetricUnit = MetricUnit.Count) -> None:
        self.metrics.add_metric(name=metric.value, unit=unit, value=value)


class BatchHandler:
    """The Lambda handler of one pipeline: ``handler(event, context) -> partial batch response``."""

    def __init__(self, settings: HandlerSettings, clients: ClientSet, files: FileProcessor) -> None:
        self.settings = settings
        self.clients = clients
        self.files = files
        self.service = settings.service_name or settings.pipeline_name
        self.logger = Logger(service=self.service, level=settings.log_level)
        self._queue_urls = QueueUrls()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        records = event.get("Records")
        messages = [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
        call = _Invocation(self.settings, self.service, context, messages)

        def record_handler(record: SQSRecord) -> str:
            try:
                return self._handle_message(record.raw_event, call)
            except Exception:
                call.failed.append(record.message_id)
                raise

        # One processor per call: it keeps the batch's successes and failures.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        process_partial_response(event, record_handler, processor, context)
        if call.deferrals:
            for problem in change_visibility(self.clients.sqs, self._queue_urls, call.deferrals):
                self.logger.warning("could not delay a failed message", extra={"problem": problem})
        if call.metrics.metric_set:
            call.metrics.flush_metrics()
        # Only the exact documented shape: message ids of this batch, nothing else.
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in call.failed]}

    def _handle_message(self, message: dict[str, Any], call: _Invocation) -> str:
        message_id = str(message.get("messageId", ""))
        log: dict[str, Any] = {"message_id": message_id, PIPELINE_DIMENSION: self.settings.pipeline_name}
        if call.deadline.near():
            error = DeadlineError("function timeout near; message not started")
            self._defer(message, error, call, seconds=0)
            self.logger.warning("deferred: function timeout near", extra=log)
            raise error
        if not call.received:
            # The first message to start records the whole batch, so that files the deadline keeps
            # from starting show as waiting. Not earlier: a batch that starts out of time stays untouched.
            call.received = True
            self._receive(call)
        body = str(message.get("body", ""))
        try:
            parsed = parse_body(body)
        except UnknownBodyError as error:
            self.logger.error("message body not understood", extra={**log, "reason": error.reason})
            call.count(Metric.FILES_FAILED)
            self._park(message, body, error, [], call, log)
            return "dlq"
        if parsed.test_event:
            self.logger.info("s3:TestEvent acknowledged and skipped", extra=log)
            return "test-event"
        for ignored in parsed.ignored:
            self.logger.info("event ignored (not an object creation)", extra={**log, "event": ignored})
        unreceived = call.unreceived.get(message_id)
        if unreceived is not None:
            # A state-table failure is transient: nothing of this message starts, all of it is retried.
            call.count(Metric.FILES_RETRIED, len(parsed.objects))
            self.logger.warning(
                "files could not be recorded RECEIVED; will retry",
                extra={**log, "error_type": unreceived.error_type, "reason": unreceived.reason},
            )
            self._defer(message, unreceived, call)
            raise unreceived
        permanent: list[tuple[PermanentError, ObjectRef]] = []
        transient: TransientError | None = None
        for ref in parsed.objects:
            file_log = {**log, "bucket": ref.bucket, "key": ref.key, "version_id": ref.version_id}
            if call.deadline.near():
                transient = DeadlineError("function timeout near; file not started")
                self.logger.warning("deferred: function timeout near", extra=file_log)
                break
            try:
                result = self.files.process(ref, message_id, call.deadline)
            except PermanentError as error:
                call.count(Metric.FILES_FAILED)
                self.logger.error(
                    "file failed permanently",
                    extra={**file_log, "error_type": error.error_type, "reason": error.reason},
                )
                permanent.append((error, ref))
                continue
            except TransientError as error:
                call.count(Metric.FILES_RETRIED)
                self.logger.warning(
                    "file failed transiently; will retry",
                    extra={**file_log, "error_type": error.error_type, "reason": error.reason},
                )
                transient = transient or error
                continue
            if result.skipped is not None:
                self.logger.info("file skipped", extra={**file_log, "why": result.skipped})
                continue
            outcome = result.outcome
            assert outcome is not None
            call.count(Metric.FILES_PROCESSED)
            call.count(Metric.RECORDS_PROCESSED, outcome.records)
            call.count(Metric.RECORDS_REJECTED, outcome.rejected)
            call.count(Metric.BYTES_READ, outcome.bytes_read, MetricUnit.Bytes)
            if outcome.latency_ms is not None:
                call.count(Metric.END_TO_END_LATENCY_MS, outcome.latency_ms, MetricUnit.Milliseconds)
            self.logger.info(
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
        if transient is not None:
            # Files already done are skipped on the retry (SUCCEEDED in the state table).
            self._defer(message, transient, call, seconds=0 if isinstance(transient, DeadlineError) else None)
            raise transient
        if permanent:
            # One DLQ message per SQS message (its body names every file); the first error is its reason.
            self._park(message, body, permanent[0][0], [ref for _, ref in permanent], call, log)
            return "dlq"
        return "ok"

    def _receive(self, call: _Invocation) -> None:
        for message in call.messages:
            message_id = str(message.get("messageId", ""))
            try:
                parsed = parse_body(str(message.get("body", "")))
            except UnknownBodyError:
                continue  # parked in the DLQ when its turn comes
            try:
                for ref in parsed.objects:
                    self.files.receive(ref, message_id)
            except TransientError as error:
                call.unreceived[message_id] = error

    def _park(
        self,
        message: dict[str, Any],
        body: str,
        error: PermanentError,
        refs: list[ObjectRef],
        call: _Invocation,
        log: dict[str, Any],
    ) -> None:
        """Send the message to the DLQ, then mark every failed file in it as parked."""
        try:
            dlq_id = send_to_dlq(
                self.clients.sqs,
                self.settings.dlq_url,
                body,
                error,
                refs[0] if refs else None,
                self.settings.pipeline_name,
            )
        except TransientError as dlq_error:
            self.logger.error(
                "could not park the message in the DLQ; it will be retried",
                extra={
                    **log,
                    "reason": dlq_error.reason,
                },
            )
            self._defer(message, dlq_error, call)
            raise
        self.logger.info("message parked in the DLQ", extra={**log, "dlq_message_id": dlq_id})
        for ref in refs:
            try:
                self.files.mark_parked(ref, dlq_id)
            except TransientError as state_error:
                # The message is safely in the DLQ; at worst a later duplicate is parked once more.
                self.logger.warning(
                    "could not record the park in the state table",
                    extra={**log, "key": ref.key, "reason": state_error.reason},
                )

    def _defer(
        self, message: dict[str, Any], error: TransientError, call: _Invocation, seconds: int | None = None
    ) -> None:
        arn = message.get("eventSourceARN")
        receipt = message.get("receiptHandle")
        if not arn or not receipt:
            return
        if seconds is None:
            attributes = message.get("attributes") or {}
            try:
                receive_count = int(attributes.get("ApproximateReceiveCount", "1"))
            except ValueError:
                receive_count = 1
            seconds = backoff_seconds(
                receive_count, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
            )
        call.deferrals.append(Deferral(str(arn), str(receipt), seconds))
