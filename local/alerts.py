"""The local alert subscriber: an SQS queue subscribed to the stack's SNS topics, drained by a thread.

Alarm notifications travel the same way as in AWS (alarm -> SNS topic -> subscription); the e-mail
subscriptions of the stack cannot deliver locally, so this queue stands in for the inbox. Each alert
is handed to a callback (the CLI prints it) and appended as one JSON line to the alerts log.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

ALERT_QUEUE_NAME: Final = "filepipe-local-alerts"


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification received from a topic (an alarm state change, or any other message)."""

    topic_arn: str
    subject: str
    message: str
    timestamp: str

    @property
    def alarm(self) -> dict[str, Any] | None:
        """The CloudWatch alarm payload, when the message is one."""
        try:
            payload = json.loads(self.message)
        except ValueError:
            return None
        return payload if isinstance(payload, dict) and "AlarmName" in payload else None

    @property
    def alarm_name(self) -> str | None:
        alarm = self.alarm
        return None if alarm is None else str(alarm["AlarmName"])

    @property
    def state(self) -> str | None:
        alarm = self.alarm
        return None if alarm is None else str(alarm.get("NewStateValue"))

    def to_json(self) -> str:
        return json.dumps(
            {
                "timestamp": self.timestamp,
                "topicArn": self.topic_arn,
                "subject": self.subject,
                "alarmName": self.alarm_name,
                "state": self.state,
                "message": self.message,
            }
        )


def parse_sns_envelope(body: str) -> Alert | None:
    """The alert inside an SNS-to-SQS delivery (``Type: Notification``); ``None`` for anything else."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        return None
    return Alert(
        topic_arn=str(envelope.get("TopicArn", "")),
        subject=str(envelope.get("Subject") or ""),
        message=str(envelope.get("Message", "")),
        timestamp=str(envelope.get("Timestamp", "")),
    )


class AlertSubscriber:
    """Subscribes a local queue to ``topic_arns`` and delivers what arrives to ``on_alert``."""

    def __init__(
        self,
        topic_arns: Sequence[str],
        sqs_factory: Callable[[], SQSClient],
        sns_factory: Callable[[], SNSClient],
        *,
        log_path: Path | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self._topic_arns = list(dict.fromkeys(topic_arns))
        self._sqs_factory = sqs_factory
        self._sns_factory = sns_factory
        self._log_path = log_path
        self._on_alert = on_alert
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.alerts: list[Alert] = []
        self.queue_url = ""

    def start(self) -> None:
        sqs = self._sqs_factory()
        self.queue_url = sqs.create_queue(QueueName=ALERT_QUEUE_NAME)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns = self._sns_factory()
        for topic_arn in self._topic_arns:
            sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self._thread = threading.Thread(target=self._drain, args=(sqs,), name="alert-subscriber", daemon=True)
        self._thread.start()

    def _drain(self, sqs: SQSClient) -> None:
        while not self._stopping.is_set():
            try:
                response = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
            except Exception:
                if not self._stopping.is_set():
                    log.exception("alert subscriber: receive failed")
                    self._stopping.wait(1.0)
                continue
            for message in response.get("Messages", []):
                alert = parse_sns_envelope(message.get("Body", ""))
                if alert is not None:
                    self._deliver(alert)
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _deliver(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)
            if self._log_path is not None:
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                with self._log_path.open("a", encoding="utf-8") as log_file:
                    log_file.write(alert.to_json() + "\n")
        if self._on_alert is not None:
            try:
                self._on_alert(alert)
            except Exception:
                log.exception("alert subscriber: callback failed")

    def received(self) -> list[Alert]:
        with self._lock:
            return list(self.alerts)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
