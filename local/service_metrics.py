"""The metrics AWS services publish to CloudWatch on their own, published to the local endpoint.

SQS reports its queues' depths and the age of the oldest message to CloudWatch every minute, and how
many messages each queue was sent; moto's CloudWatch has none of them. Tools that read CloudWatch
(``filepipe status`` asks it for ``ApproximateAgeOfOldestMessage``, which has no SQS API; an operator
asks ``aws cloudwatch get-metric-statistics`` for ``NumberOfMessagesSent``) would see no data locally
though AWS has it, so :class:`QueueMetricsPublisher` puts the same metrics on the endpoint's CloudWatch
each period. The sends are counted where moto accepts a message (:func:`count_sent_messages`): the SQS
API's sends and the deliveries of S3 notifications and SNS subscriptions, as SQS counts them; a message
its redrive moves to a DLQ is not sent, in moto as in SQS.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from filepipe.local.metrics import SQS_GAUGES, SQS_NAMESPACE, QueueGauge

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

log = logging.getLogger(__name__)

SENT_METRIC: Final = "NumberOfMessagesSent"

_sent_lock = threading.Lock()
_sent: Counter[tuple[str, str, str]] = Counter()
"""Messages moto accepted since they were last published, by (account, region, queue name)."""
_COUNTING: list[bool] = []


def count_sent_messages() -> None:
    """Count every message moto's SQS accepts, per queue (once per process; moto is process-global)."""
    if _COUNTING:
        return
    from moto.sqs.models import SQSBackend

    original = SQSBackend.send_message

    def send_message(self: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        message = original(self, queue_name, *args, **kwargs)
        with _sent_lock:
            _sent[(self.account_id, self.region_name, queue_name)] += 1
        return message

    setattr(SQSBackend, "send_message", send_message)  # noqa: B010 - moto's method, replaced on purpose
    _COUNTING.append(True)


def embedded_sent_messages(account_id: str, region: str) -> Callable[[str], int]:
    """``queue name -> messages sent to it since the last call`` on the in-process endpoint (counts a
    previous endpoint of this process left are dropped: its queues are gone)."""
    with _sent_lock:
        for stale in [key for key in _sent if key[:2] == (account_id, region)]:
            del _sent[stale]

    def taken(queue_name: str) -> int:
        with _sent_lock:
            return _sent.pop((account_id, region, queue_name), 0)

    return taken


class QueueMetricsPublisher:
    """Puts the ``AWS/SQS`` gauges of ``queue_names`` on the endpoint's CloudWatch every ``period``,
    and, given ``sent``, each queue's ``NumberOfMessagesSent`` over the period."""

    def __init__(
        self,
        queue_names: Sequence[str],
        gauge: QueueGauge,
        cloudwatch: Callable[[], CloudWatchClient],
        *,
        period_seconds: float,
        sent: Callable[[str], int] | None = None,
    ) -> None:
        self._queue_names = list(queue_names)
        self._gauge = gauge
        self._sent = sent
        self._cloudwatch = cloudwatch
        self._period = period_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_once(self, cloudwatch: CloudWatchClient) -> None:
        for queue_name in self._queue_names:
            data: list[MetricDatumTypeDef] = []
            for metric_name in SQS_GAUGES:
                value = self._gauge(queue_name, metric_name)
                if value is not None:
                    data.append(
                        {
                            "MetricName": metric_name,
                            "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                            "Value": value,
                            "Unit": "Seconds" if metric_name == "ApproximateAgeOfOldestMessage" else "Count",
                        }
                    )
            if self._sent is not None and data:  # data: the queue exists
                data.append(
                    {
                        "MetricName": SENT_METRIC,
                        "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                        "Value": float(self._sent(queue_name)),
                        "Unit": "Count",
                    }
                )
            if data:
                cloudwatch.put_metric_data(Namespace=SQS_NAMESPACE, MetricData=data)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="queue-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        cloudwatch = self._cloudwatch()
        while not self._stopping.is_set():
            try:
                self.publish_once(cloudwatch)
            except Exception:
                # A failed put loses one datapoint, as a missed minute would in CloudWatch.
                log.exception("publishing the queues' metrics failed")
            self._stopping.wait(self._period)
