"""Local metrics: what the CloudWatch alarms of the stack are evaluated on.

Two sources, as in AWS: gauges the services report (SQS queue depths, read from the endpoint when an
alarm is evaluated) and datapoints the in-process runners record (the ``AWS/Lambda`` metrics of each
emulated function, and any custom metric put here).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

SQS_NAMESPACE: Final = "AWS/SQS"
LAMBDA_NAMESPACE: Final = "AWS/Lambda"

_SQS_GAUGES: Final[dict[str, QueueAttributeNameType]] = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}
"""CloudWatch metric name -> the SQS attribute it is an approximation of."""

OLDEST_MESSAGE_AGE: Final = "ApproximateAgeOfOldestMessage"
"""Not an SQS attribute: read from the embedded endpoint's queue (see :func:`oldest_message_age`)."""
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


class LocalMetrics:
    """A thread-safe store of datapoints plus the SQS gauges of the endpoint."""

    def __init__(
        self,
        sqs_factory: Callable[[], SQSClient] | None = None,
        *,
        queue_age: Callable[[str], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._points: dict[MetricKey, deque[tuple[float, float]]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._sqs_factory = sqs_factory
        self._queue_age = queue_age
        self._sqs: SQSClient | None = None
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
        if query.namespace == SQS_NAMESPACE and (
            query.metric_name in _SQS_GAUGES or query.metric_name == OLDEST_MESSAGE_AGE
        ):
            return self._sqs_gauge(query)
        since = self._clock() - window_seconds
        with self._lock:
            points = self._points.get(metric_key(query.namespace, query.metric_name, query.dimensions))
            values = [value for at, value in points or () if at >= since]
        return aggregate(values, query.statistic)

    def _sqs_gauge(self, query: MetricQuery) -> float | None:
        queue_name = query.dimensions.get("QueueName")
        if queue_name is None:
            return None
        if query.metric_name == OLDEST_MESSAGE_AGE:
            return self._queue_age(queue_name) if self._queue_age is not None else None
        if self._sqs_factory is None:
            return None
        if self._sqs is None:
            self._sqs = self._sqs_factory()
        try:
            url = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            attribute = _SQS_GAUGES[query.metric_name]
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[attribute],
            )["Attributes"]
        except self._sqs.exceptions.QueueDoesNotExist:
            return None
        return float(attributes[attribute])


def oldest_message_age(account_id: str, region: str) -> Callable[[str], float | None]:
    """``ApproximateAgeOfOldestMessage`` of a queue on the in-process moto endpoint, in seconds.

    SQS has no API for it (CloudWatch computes it), so it is read from moto's queue directly: the
    endpoint runs in this process. ``None`` (missing data) if the queue does not exist.
    """

    def age(queue_name: str) -> float | None:
        from moto.sqs.models import sqs_backends

        try:
            queue = sqs_backends[account_id][region].get_queue(queue_name)
        except Exception:
            return None
        sent: list[float] = []
        for message in list(queue._messages):
            timestamp: float | None = message.sent_timestamp
            if timestamp is not None:
                sent.append(timestamp)
        return max(0.0, time.time() - min(sent) / 1000) if sent else 0.0

    return age
