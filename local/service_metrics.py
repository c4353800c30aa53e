"""The metrics AWS services publish to CloudWatch on their own, published to the local endpoint.

SQS reports its queues' depths and the age of the oldest message to CloudWatch every minute; moto's
CloudWatch has none of them. Tools that read CloudWatch (``filepipe status`` asks it for
``ApproximateAgeOfOldestMessage``, which has no SQS API) would see no data locally though AWS has it,
so :class:`QueueMetricsPublisher` puts the same gauges on the endpoint's CloudWatch each period.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from filepipe.local.metrics import SQS_GAUGES, SQS_NAMESPACE, QueueGauge

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

log = logging.getLogger(__name__)


class QueueMetricsPublisher:
    """Puts the ``AWS/SQS`` gauges of ``queue_names`` on the endpoint's CloudWatch every ``period``."""

    def __init__(
        self,
        queue_names: Sequence[str],
        gauge: QueueGauge,
        cloudwatch: Callable[[], CloudWatchClient],
        *,
        period_seconds: float,
    ) -> None:
        self._queue_names = list(queue_names)
        self._gauge = gauge
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
