"""CloudWatch alarm evaluation on the local metrics (moto stores alarms but never evaluates them).

Each alarm is evaluated once per *local period* (default one second instead of the alarm's own
period, so that a demo sees an alarm within seconds): one datapoint per period, the last
``evaluation_periods`` of them judged with CloudWatch's M-out-of-N rule and ``treat_missing_data``.
A state change publishes CloudWatch's SNS notification JSON to the alarm's actions for the new state
and is mirrored to the endpoint's alarm (``SetAlarmState``) so ``describe-alarms`` shows it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from filepipe.local.invocations import alarm_event
from filepipe.local.metrics import LocalMetrics, MetricQuery

if TYPE_CHECKING:
    from filepipe.local.capture import CapturedResource

log = logging.getLogger(__name__)

ALARM: Final = "ALARM"
OK: Final = "OK"
INSUFFICIENT_DATA: Final = "INSUFFICIENT_DATA"

_COMPARISONS: Final[dict[str, Callable[[float, float], bool]]] = {
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
_COMPARISON_WORDS: Final = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
_MISSING_DATA: Final = ("missing", "breaching", "notBreaching", "ignore")


class UnsupportedAlarmError(ValueError):
    """An alarm uses a feature the local evaluator does not emulate."""


@dataclass(frozen=True, slots=True)
class LocalAlarm:
    """A single-metric CloudWatch alarm as the local evaluator runs it (read from the captured stack)."""

    name: str
    arn: str
    namespace: str
    metric_name: str
    statistic: str
    period_seconds: int
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    datapoints_to_alarm: int | None = None
    treat_missing_data: str = "missing"
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    actions_enabled: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.comparison_operator not in _COMPARISONS:
            raise UnsupportedAlarmError(
                f"alarm {self.name}: comparison {self.comparison_operator!r} is not emulated"
            )
        if self.treat_missing_data not in _MISSING_DATA:
            raise UnsupportedAlarmError(
                f"alarm {self.name}: treatMissingData {self.treat_missing_data!r} is unknown"
            )
        if self.evaluation_periods < 1:
            raise UnsupportedAlarmError(f"alarm {self.name}: evaluationPeriods must be at least 1")

    @classmethod
    def from_resource(cls, alarm: CapturedResource) -> LocalAlarm:
        """The captured ``aws:cloudwatch/metricAlarm:MetricAlarm``, with CloudWatch's defaults."""
        inputs = alarm.inputs
        for unsupported in ("metricQueries", "extendedStatistic", "thresholdMetricId"):
            if inputs.get(unsupported):
                raise UnsupportedAlarmError(f"alarms with {unsupported} are not emulated locally")
        return cls(
            name=alarm.get("name"),
            arn=alarm.get("arn"),
            namespace=inputs["namespace"],
            metric_name=inputs["metricName"],
            dimensions={str(k): str(v) for k, v in (inputs.get("dimensions") or {}).items()},
            statistic=inputs.get("statistic") or "Average",
            period_seconds=int(alarm.number("period", 60)),
            evaluation_periods=int(alarm.number("evaluationPeriods", 1)),
            datapoints_to_alarm=int(inputs["datapointsToAlarm"]) if inputs.get("datapointsToAlarm") else None,
            threshold=alarm.number("threshold", 0),
            comparison_operator=inputs["comparisonOperator"],
            treat_missing_data=inputs.get("treatMissingData") or "missing",
            alarm_actions=tuple(inputs.get("alarmActions") or ()),
            ok_actions=tuple(inputs.get("okActions") or ()),
            insufficient_data_actions=tuple(inputs.get("insufficientDataActions") or ()),
            actions_enabled=bool(inputs.get("actionsEnabled", True)),
            description=inputs.get("alarmDescription") or "",
        )

    @property
    def query(self) -> MetricQuery:
        return MetricQuery(self.namespace, self.metric_name, self.dimensions, self.statistic)

    @property
    def required_breaches(self) -> int:
        return self.datapoints_to_alarm or self.evaluation_periods

    def actions_for(self, state: str) -> tuple[str, ...]:
        if not self.actions_enabled:
            return ()
        return {
            ALARM: self.alarm_actions,
            OK: self.ok_actions,
            INSUFFICIENT_DATA: self.insufficient_data_actions,
        }[state]


def next_state(alarm: LocalAlarm, datapoints: Sequence[float | None], current: str) -> tuple[str, str]:
    """The alarm's state after ``datapoints`` (oldest first, the last N periods) and a reason."""
    compare = _COMPARISONS[alarm.comparison_operator]
    window = list(datapoints)[-alarm.evaluation_periods :]
    verdicts: list[bool] = []
    for value in window:
        if value is not None:
            verdicts.append(compare(value, alarm.threshold))
        elif alarm.treat_missing_data == "breaching":
            verdicts.append(True)
        elif alarm.treat_missing_data == "notBreaching":
            verdicts.append(False)
    present = [value for value in window if value is not None]
    shown = ", ".join(f"{value:g}" for value in present) or "no datapoints"
    words = _COMPARISON_WORDS[alarm.comparison_operator]
    breaches = sum(verdicts)
    if breaches >= alarm.required_breaches:
        return ALARM, (
            f"Threshold Crossed: {breaches} out of the last {len(window)} datapoints [{shown}] "
            f"{'was' if breaches == 1 else 'were'} {words} the threshold ({alarm.threshold:g})."
        )
    if verdicts:
        return OK, (
            f"Threshold Crossed: {breaches} out of the last {len(window)} datapoints [{shown}] "
            f"{'was' if breaches == 1 else 'were'} {words} the threshold ({alarm.threshold:g}) "
            f"(minimum {alarm.required_breaches} datapoint(s) for ALARM)."
        )
    if alarm.treat_missing_data == "ignore" and current != INSUFFICIENT_DATA:
        return current, "no datapoints: state kept (treatMissingData=ignore)"
    return INSUFFICIENT_DATA, "Insufficient Data: no datapoints were received."


def notification(
    alarm: LocalAlarm,
    *,
    old_state: str,
    new_state: str,
    reason: str,
    account_id: str,
    region: str,
    at: datetime,
) -> tuple[str, str]:
    """CloudWatch's SNS notification for a state change: ``(subject, message JSON)``."""
    timestamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"
    message: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description or None,
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": timestamp,
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": timestamp,
        "Region": region,
        "AlarmArn": alarm.arn,
        "OldStateValue": old_state,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "Trigger": {
            "MetricName": alarm.metric_name,
            "Namespace": alarm.namespace,
            "StatisticType": "Statistic",
            "Statistic": alarm.statistic.upper(),
            "Unit": None,
            "Dimensions": [{"value": value, "name": name} for name, value in alarm.dimensions.items()],
            "Period": alarm.period_seconds,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.required_breaches,
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": alarm.threshold,
            "TreatMissingData": alarm.treat_missing_data,
            "EvaluateLowSampleCountPercentile": "",
        },
    }
    subject = f'{new_state}: "{alarm.name}" in {region}'
    if len(subject) > 100:  # SNS caps subjects at 100 characters
        subject = subject[:97] + "..."
    return subject, json.dumps(message)


Publisher = Callable[[str, str, str], None]
"""``(topic_arn, subject, message)``: an SNS publish."""
Invoker = Callable[[str, dict[str, Any]], None]
"""``(function_arn, event)``: an asynchronous Lambda invocation (an alarm's Lambda action)."""
StateSink = Callable[[str, str, str], None]
"""``(alarm_name, state, reason)``: where state changes are mirrored (the endpoint's alarm)."""


@dataclass(frozen=True, slots=True)
class StateChange:
    alarm: str
    old_state: str
    new_state: str
    reason: str


class AlarmEvaluator:
    """Evaluates every alarm each ``local_period_seconds`` on a background thread."""

    def __init__(
        self,
        alarms: Sequence[LocalAlarm],
        metrics: LocalMetrics,
        publish: Publisher,
        *,
        account_id: str,
        region: str,
        local_period_seconds: float = 1.0,
        state_sink: StateSink | None = None,
        invoke: Invoker | None = None,
    ) -> None:
        self.alarms = list(alarms)
        self._invoke = invoke
        self._metrics = metrics
        self._publish = publish
        self._state_sink = state_sink
        self._account_id = account_id
        self._region = region
        self._period = local_period_seconds
        self._datapoints: dict[str, deque[float | None]] = {
            alarm.name: deque(maxlen=alarm.evaluation_periods) for alarm in self.alarms
        }
        self.states: dict[str, str] = {alarm.name: INSUFFICIENT_DATA for alarm in self.alarms}
        self.history: list[StateChange] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def evaluate_once(self) -> list[StateChange]:
        """Take one datapoint per alarm and apply any state change (the thread calls this each period)."""
        changes: list[StateChange] = []
        for alarm in self.alarms:
            try:
                value = self._metrics.datapoint(alarm.query, self._period)
            except Exception:
                log.exception("alarm %s: metric unavailable", alarm.name)
                value = None
            points = self._datapoints[alarm.name]
            points.append(value)
            with self._lock:
                old = self.states[alarm.name]
                new, reason = next_state(alarm, list(points), old)
                if new == old:
                    continue
                self.states[alarm.name] = new
                change = StateChange(alarm.name, old, new, reason)
                self.history.append(change)
            changes.append(change)
            self._notify(alarm, change)
        return changes

    def _notify(self, alarm: LocalAlarm, change: StateChange) -> None:
        if self._state_sink is not None:
            try:
                self._state_sink(alarm.name, change.new_state, change.reason)
            except Exception:
                log.exception("alarm %s: could not mirror the state to the endpoint", alarm.name)
        subject, message = notification(
            alarm,
            old_state=change.old_state,
            new_state=change.new_state,
            reason=change.reason,
            account_id=self._account_id,
            region=self._region,
            at=datetime.now(UTC),
        )
        for action in alarm.actions_for(change.new_state):
            if action.startswith("arn:aws:lambda:") and self._invoke is not None:
                self._invoke_action(alarm, change, action)
                continue
            if not action.startswith("arn:aws:sns:"):
                log.warning("alarm %s: action %s is not an SNS topic; not emulated", alarm.name, action)
                continue
            try:
                self._publish(action, subject, message)
            except Exception:
                log.exception("alarm %s: publishing to %s failed", alarm.name, action)

    def _invoke_action(self, alarm: LocalAlarm, change: StateChange, function_arn: str) -> None:
        assert self._invoke is not None
        event = alarm_event(
            alarm_name=alarm.name,
            alarm_arn=alarm.arn,
            state=change.new_state,
            reason=change.reason,
            previous=change.old_state,
            account_id=self._account_id,
            region=self._region,
        )
        try:
            self._invoke(function_arn, event)
        except Exception:
            log.exception("alarm %s: invoking %s failed", alarm.name, function_arn)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._period):
            self.evaluate_once()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
