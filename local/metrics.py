"""Local metrics: what the CloudWatch alarms of the stack are evaluated on.

Two sources, as in AWS: gauges the services report (SQS queue depths and ages, read from the
endpoint's queues when an alarm is evaluated) and datapoints the in-process runners record (the ``AWS/Lambda`` metrics of each
emulated function, and any custom metric put here).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

SQS_NAMESPACE: Final = "AWS/SQS"
LAMBDA_NAMESPACE: Final = "AWS/Lambda"

SQS_GAUGES: Final = (
    "ApproximateNumberOfMessagesVisible",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateAgeOfOldestMessage",
)
"""The queue metrics SQS reports to CloudWatch that the local alarms can use."""
_RETENTION_SECONDS: Final = 3600.0

MetricKey = tuple[str, str, frozenset[tuple[str, str]]]


def metric_key(namespace: str, name: str, dimensions: Mapping[str, str]) -> MetricKey:
    return (namespace, name, frozenset(dimensions.items()))


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """One metric and one statistic over a window: what an alarm asks for each period."""

    namespace: str
    metric_name: str
    dimensions: Mapping[str, str]
    statistic: str
    """``Maximum``, ``Minimum``, ``Sum``, ``Average`` or ``SampleCount``."""


def aggregate(values: list[float], statistic: str) -> float | None:
    """The CloudWatch statistic of ``values``; ``None`` (missing data) when there are none."""
    if not values:
        return None
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Sum":
        return sum(values)
    if statistic == "Average":
        return sum(values) / len(values)
    if statistic == "SampleCount":
        return float(len(values))
    raise ValueError(f"unsupported statistic {statistic!r}")


QueueGauge = Callable[[str, str], float | None]
"""``(queue name, CloudWatch metric name) -> value``; ``None`` when the queue does not exist."""


class LocalMetrics:
    """A thread-safe store of datapoints, plus the SQS gauges of the endpoint's queues."""

    def __init__(
        self, queue_gauge: QueueGauge | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._points: dict[MetricKey, deque[tuple[float, float]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._queue_gauge = queue_gauge
        self._clock = clock

    def put(self, namespace: str, name: str, dimensions: Mapping[str, str], value: float = 1.0) -> None:
        now = self._clock()
        with self._lock:
            points = self._points[metric_key(namespace, name, dimensions)]
            points.append((now, value))
            while points and points[0][0] < now - _RETENTION_SECONDS:
                points.popleft()

    def datapoint(self, query: MetricQuery, window_seconds: float) -> float | None:
        """The statistic over the last ``window_seconds``; ``None`` when the metric has no data."""
        if query.namespace == SQS_NAMESPACE and query.metric_name in SQS_GAUGES:
            queue_name = query.dimensions.get("QueueName")
            if queue_name is None or self._queue_gauge is None:
                return None
            return self._queue_gauge(queue_name, query.metric_name)
        since = self._clock() - window_seconds
        with self._lock:
            points = self._points.get(metric_key(query.namespace, query.metric_name, query.dimensions))
            values = [value for at, value in points or () if at >= since]
        return aggregate(values, query.statistic)


def embedded_queue_gauges(account_id: str, region: str) -> QueueGauge:
    """SQS's CloudWatch gauges, read from the in-process moto endpoint's queues.

    As in AWS, the service reports these itself: reading them costs the endpoint no API calls (the
    alarm evaluator would otherwise poll every queue every period), and
    ``ApproximateAgeOfOldestMessage`` has no API at all.
    """

    def gauge(queue_name: str, metric_name: str) -> float | None:
        from moto.sqs.models import sqs_backends

        try:
            queue = sqs_backends[account_id][region].get_queue(queue_name)
        except Exception:
            return None
        messages = list(queue._messages)
        if metric_name == "ApproximateNumberOfMessagesVisible":
            return float(sum(1 for m in messages if m.visible and not m.delayed))
        if metric_name == "ApproximateNumberOfMessagesNotVisible":
            return float(sum(1 for m in messages if not m.visible))
        if metric_name == "ApproximateNumberOfMessagesDelayed":
            return float(sum(1 for m in messages if m.delayed))
        sent: list[float] = []
        for message in messages:
            timestamp: float | None = message.sent_timestamp
            if timestamp is not None:
                sent.append(timestamp)
        return max(0.0, time.time() - min(sent) / 1000) if sent else 0.0

    return gauge
