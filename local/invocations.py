"""Functions invoked by something other than a queue: CloudWatch alarm actions and EventBridge schedules.

moto stores alarms, rules and targets but never fires them (and would run a function in Docker). Locally:

- :class:`FunctionInvoker` runs a function's real handler in-process, asynchronously like Lambda's
  ``Event`` invocations (an alarm action or a schedule never waits for the function), each invocation on
  its own thread bounded by the function timeout;
- :class:`ScheduleRunner` fires each ``rate(...)`` rule's Lambda targets with EventBridge's scheduled
  event, with time scaled like the alarm evaluator's (one local alarm period stands for one minute).

The alarm evaluator hands an alarm's Lambda actions to the invoker with CloudWatch's alarm event.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from filepipe.local.esm import FunctionSpec, Handler, LambdaContext

log = logging.getLogger(__name__)

SECONDS_PER_UNIT: Final = {
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
    "days": 86400,
}
_RATE: Final = re.compile(r"rate\((\d+) (minutes?|hours?|days?)\)")


class UnsupportedScheduleError(ValueError):
    """A schedule expression the local runner does not emulate (only ``rate(...)``)."""


def rate_seconds(expression: str) -> int:
    """``rate(5 minutes)`` -> 300."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        raise UnsupportedScheduleError(
            f"schedule {expression!r}: only rate(...) expressions are emulated locally"
        )
    return int(match.group(1)) * SECONDS_PER_UNIT[match.group(2)]


@dataclass(slots=True)
class LocalSchedule:
    """An EventBridge schedule rule and the Lambda functions it targets."""

    rule: str
    rule_arn: str
    period_seconds: int
    target_arns: list[str] = field(default_factory=list)


@dataclass(slots=True)
class InvocationStats:
    invocations: int = 0
    errors: int = 0


class FunctionInvoker:
    """In-process asynchronous invocations of functions by ARN or name."""

    def __init__(self, region: str) -> None:
        self._region = region
        self._functions: dict[str, tuple[FunctionSpec, Handler]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.stats: dict[str, InvocationStats] = {}

    def add(self, function: FunctionSpec, handler: Handler) -> None:
        self._functions[function.arn] = self._functions[function.name] = (function, handler)
        self.stats[function.name] = InvocationStats()

    def __contains__(self, reference: str) -> bool:
        return reference in self._functions

    def invoke(self, reference: str, event: Mapping[str, Any]) -> None:
        """Invoke asynchronously (``InvocationType=Event``): returns at once."""
        function, handler = self._functions[reference]

        def run() -> None:
            context = LambdaContext(function, time.monotonic() + function.timeout_seconds, self._region)
            try:
                handler(dict(event), context)
            except Exception:
                log.exception("%s: invocation failed", function.name)
                with self._lock:
                    self.stats[function.name].errors += 1

        with self._lock:
            self.stats[function.name].invocations += 1
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            thread = threading.Thread(target=run, name=f"invoke-{function.name}", daemon=True)
            self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def alarm_event(
    *, alarm_name: str, alarm_arn: str, state: str, reason: str, previous: str, account_id: str, region: str
) -> dict[str, Any]:
    """The event CloudWatch sends a Lambda alarm action."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {
        "source": "aws.cloudwatch",
        "alarmArn": alarm_arn,
        "accountId": account_id,
        "time": now,
        "region": region,
        "alarmData": {
            "alarmName": alarm_name,
            "state": {"value": state, "reason": reason, "timestamp": now},
            "previousState": {"value": previous},
        },
    }


def scheduled_event(rule_arn: str, account_id: str, region: str) -> dict[str, Any]:
    """EventBridge's event for a schedule rule's target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class ScheduleRunner:
    """Fires every schedule's targets each ``period_seconds * time_scale`` on one background thread."""

    def __init__(
        self,
        schedules: list[LocalSchedule],
        invoke: Callable[[str, Mapping[str, Any]], None],
        *,
        account_id: str,
        region: str,
        time_scale: float,
    ) -> None:
        self.schedules = schedules
        self._invoke = invoke
        self._account_id = account_id
        self._region = region
        self._time_scale = time_scale
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.schedules:
            return
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        due = {schedule.rule: time.monotonic() + self._interval(schedule) for schedule in self.schedules}
        while not self._stopping.wait(min(0.1, *(self._interval(s) for s in self.schedules))):
            now = time.monotonic()
            for schedule in self.schedules:
                if now < due[schedule.rule]:
                    continue
                due[schedule.rule] = now + self._interval(schedule)
                event = scheduled_event(schedule.rule_arn, self._account_id, self._region)
                for target in schedule.target_arns:
                    try:
                        self._invoke(target, event)
                    except Exception:
                        log.exception("schedule %s: invoking %s failed", schedule.rule, target)

    def _interval(self, schedule: LocalSchedule) -> float:
        return schedule.period_seconds * self._time_scale

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
