"""The circuit breaker of one pipeline: pause consumption while a downstream keeps failing.

The breaker function (entry point ``handler.breaker.lambda_handler``) is invoked three ways:

- by its CloudWatch alarms (Lambda alarm actions) on the handler's own ``FilesRetried`` metric: the *trip*
  alarm opens a closed breaker, the *probe* alarm (a lower threshold) opens a half-open one again;
- every minute by an EventBridge schedule: the timers (cool-down, probe window) and a reconciliation of
  the mapping with the recorded state, so a lost alarm action or a failed update is repaired;
- by hand (``{"command": "open" | "close" | "status"}``; the ``filepipe breaker`` command runs the same
  code with the operator's credentials).

States and what the pipeline's event source mapping is in each:

- ``CLOSED``: enabled at the configured maximum concurrency;
- ``OPEN``: disabled, for a cool-down (doubled after each failed probe, capped); messages wait in the queue
  and no delivery counts towards the DLQ. Opened by hand it stays open until closed by hand;
- ``HALF_OPEN``: enabled at the probe concurrency (Lambda's minimum, 2). Transient failures staying under
  the probe alarm's threshold for the probe window close the breaker; otherwise it opens again.

The state is one DynamoDB item, written conditionally on its revision (alarm and timer invocations race):
a lost race re-reads and decides again. Every transition is logged, recorded in the item's history and
published to the pipeline's alert topic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .settings import (
    BREAKER_HISTORY_LIMIT,
    BREAKER_ITEM_KEY,
    BreakerAttribute,
    BreakerState,
    EnvVar,
    SettingsError,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import ScalingConfigTypeDef
    from mypy_boto3_sns import SNSClient

log = logging.getLogger("filepipe.breaker")

MAPPING_DISABLED: Final = "Disabled"
MAPPING_SETTLING: Final = frozenset({"Disabling", "Enabling", "Updating", "Creating"})
ALARM: Final = "ALARM"
DISABLE_WAIT_SECONDS: Final = 45.0
"""How long one invocation waits for the mapping to report Disabled (the function timeout is 60 s); the
next timer tick checks again if Lambda is slower."""
_POLL_SECONDS: Final = 1.0
_RACE_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """What the breaker function is configured with (its environment, set by the component)."""

    pipeline_name: str
    table: str
    mapping_uuid: str
    topic_arn: str
    closed_concurrency: int | None
    """The mapping's configured ``MaximumConcurrency``; ``None``: no limit (the setting is removed)."""
    probe_concurrency: int
    cool_down_seconds: float
    max_cool_down_seconds: float
    probe_window_seconds: float
    trip_alarm: str
    probe_alarm: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BreakerSettings:
        def required(var: EnvVar) -> str:
            value = env.get(var.value, "")
            if not value:
                raise SettingsError(f"environment variable {var.value} is required")
            return value

        def number(var: EnvVar) -> float:
            raw = required(var)
            try:
                return float(raw)
            except ValueError:
                raise SettingsError(f"{var.value} must be a number, got {raw!r}") from None

        closed = env.get(EnvVar.CLOSED_CONCURRENCY.value) or None
        return cls(
            pipeline_name=required(EnvVar.PIPELINE_NAME),
            table=required(EnvVar.BREAKER_TABLE),
            mapping_uuid=required(EnvVar.MAPPING_UUID),
            topic_arn=required(EnvVar.TOPIC_ARN),
            closed_concurrency=int(closed) if closed else None,
            probe_concurrency=int(number(EnvVar.PROBE_CONCURRENCY)),
            cool_down_seconds=number(EnvVar.COOL_DOWN_SECONDS),
            max_cool_down_seconds=number(EnvVar.MAX_COOL_DOWN_SECONDS),
            probe_window_seconds=number(EnvVar.PROBE_WINDOW_SECONDS),
            trip_alarm=required(EnvVar.TRIP_ALARM),
            probe_alarm=required(EnvVar.PROBE_ALARM),
        )


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """The breaker's recorded state (a missing item is a closed breaker that never moved)."""

    state: BreakerState
    since: float
    cool_down_seconds: float
    held: bool = False
    reason: str = ""
    revision: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "since": _iso(self.since) if self.since else None,
            "coolDownSeconds": self.cool_down_seconds,
            "held": self.held,
            "reason": self.reason,
            "history": self.history,
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def read_status(dynamodb: DynamoDBClient, table: str, default_cool_down: float = 0.0) -> BreakerStatus:
    """The breaker's item, read consistently (it decides whether messages are re-sent or parked)."""
    item = dynamodb.get_item(
        TableName=table, Key={BreakerAttribute.PK: {"S": BREAKER_ITEM_KEY}}, ConsistentRead=True
    ).get("Item")
    if not item:
        return BreakerStatus(BreakerState.CLOSED, 0.0, default_cool_down)

    def text(name: BreakerAttribute, default: str = "") -> str:
        return str(item.get(name, {}).get("S", default))

    def number(name: BreakerAttribute, default: float = 0.0) -> float:
        return float(item.get(name, {}).get("N", default))

    history = json.loads(text(BreakerAttribute.HISTORY, "[]"))
    return BreakerStatus(
        state=BreakerState(text(BreakerAttribute.STATE, BreakerState.CLOSED)),
        since=number(BreakerAttribute.SINCE),
        cool_down_seconds=number(BreakerAttribute.COOL_DOWN_SECONDS, default_cool_down),
        held=bool(item.get(BreakerAttribute.HELD, {}).get("BOOL", False)),
        reason=text(BreakerAttribute.REASON),
        revision=int(number(BreakerAttribute.REVISION)),
        history=history if isinstance(history, list) else [],
    )


class Breaker:
    """Decides and applies the breaker's transitions for one pipeline."""

    def __init__(
        self,
        settings: BreakerSettings,
        *,
        lambda_client: LambdaClient,
        dynamodb: DynamoDBClient,
        sns: SNSClient,
        cloudwatch: CloudWatchClient,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._lambda = lambda_client
        self._dynamodb = dynamodb
        self._sns = sns
        self._cloudwatch = cloudwatch
        self._clock = clock
        self._sleep = sleep

    # -- reading ---------------------------------------------------------------------------------

    def status(self) -> BreakerStatus:
        return read_status(self._dynamodb, self.settings.table, self.settings.cool_down_seconds)

    def mapping(self) -> dict[str, Any]:
        """The mapping's ``State`` and ``MaximumConcurrency`` as Lambda reports them."""
        mapping = self._lambda.get_event_source_mapping(UUID=self.settings.mapping_uuid)
        return {
            "state": str(mapping.get("State", "Unknown")),
            "maximumConcurrency": (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"),
        }

    def _alarm_state(self, alarm: str) -> str:
        alarms = self._cloudwatch.describe_alarms(AlarmNames=[alarm]).get("MetricAlarms", [])
        return str(alarms[0]["StateValue"]) if alarms else "MISSING"

    # -- events ----------------------------------------------------------------------------------

    def handle(self, event: Mapping[str, Any], wait_seconds: float = DISABLE_WAIT_SECONDS) -> dict[str, Any]:
        """One invocation: an alarm action, the timer, or a command."""
        if "alarmData" in event:
            data = event["alarmData"]
            state = data.get("state") or {}
            self.on_alarm(
                str(data.get("alarmName", "")),
                str(state.get("value", "")),
                str(state.get("reason", "")),
                wait_seconds,
            )
        elif event.get("command") == "open":
            self.open(str(event.get("reason") or "opened by hand"), held=True, wait_seconds=wait_seconds)
        elif event.get("command") == "close":
            self.close(str(event.get("reason") or "closed by hand"))
        elif event.get("command") not in (None, "status"):
            raise ValueError(f"unknown breaker command {event.get('command')!r}")
        else:
            self.tick(wait_seconds)
        return self.status().as_dict()

    def on_alarm(
        self, alarm: str, value: str, reason: str, wait_seconds: float = DISABLE_WAIT_SECONDS
    ) -> None:
        if value != ALARM:
            return  # recovery is judged by the timer over the probe window, not by one OK datapoint
        status = self.status()
        if alarm == self.settings.trip_alarm and status.state is BreakerState.CLOSED:
            self._open(status, f"{alarm}: {reason}", wait_seconds=wait_seconds)
        elif alarm in (self.settings.trip_alarm, self.settings.probe_alarm) and (
            status.state is BreakerState.HALF_OPEN
        ):
            self._open(status, f"probes failed ({alarm}: {reason})", wait_seconds=wait_seconds)

    def tick(self, wait_seconds: float = DISABLE_WAIT_SECONDS) -> None:
        """The timers, and the mapping brought back in line with the state if it drifted."""
        status = self.status()
        now = self._clock()
        if status.state is BreakerState.CLOSED:
            # A trip alarm that went to ALARM while the breaker was being closed raised no new action.
            if self._alarm_state(self.settings.trip_alarm) == ALARM:
                self._open(status, f"{self.settings.trip_alarm} is still in ALARM", wait_seconds=wait_seconds)
        elif status.state is BreakerState.OPEN:
            if not status.held and now >= status.since + status.cool_down_seconds:
                self._half_open(status)
            else:
                self._disable(wait_seconds)
        elif self._alarm_state(self.settings.probe_alarm) == ALARM:
            self._open(
                status, f"probes failed ({self.settings.probe_alarm} in ALARM)", wait_seconds=wait_seconds
            )
        elif now >= status.since + self.settings.probe_window_seconds:
            self._close(
                status,
                f"no more than the probe threshold of transient failures for "
                f"{self.settings.probe_window_seconds:g} s",
            )
        else:
            self._enable(self.settings.probe_concurrency)

    def open(
        self, reason: str, *, held: bool = False, wait_seconds: float = DISABLE_WAIT_SECONDS
    ) -> BreakerStatus:
        """Open now (by hand: ``held``, no automatic probing until closed by hand)."""
        return self._open(self.status(), reason, held=held, wait_seconds=wait_seconds)

    def close(self, reason: str) -> BreakerStatus:
        """Close now: the configured concurrency, whatever the state."""
        return self._close(self.status(), reason)

    # -- transitions -----------------------------------------------------------------------------

    def _open(
        self,
        status: BreakerStatus,
        reason: str,
        *,
        held: bool = False,
        wait_seconds: float = DISABLE_WAIT_SECONDS,
    ) -> BreakerStatus:
        if status.state is BreakerState.HALF_OPEN:
            cool_down = min(status.cool_down_seconds * 2, self.settings.max_cool_down_seconds)
        else:
            cool_down = self.settings.cool_down_seconds
        # Recorded first: from now on the handler re-sends instead of parking (batches still arrive
        # until the mapping reports Disabled).
        written = self._write(status, BreakerState.OPEN, reason, cool_down=cool_down, held=held)
        if written is None:
            return self._retry_open(reason, held, wait_seconds)
        state = self._disable(wait_seconds)
        settled = (
            f"mapping {state}"
            if state == MAPPING_DISABLED
            else f"mapping still {state} after {wait_seconds:g} s (checked again every minute)"
        )
        probing = "held open until closed by hand" if held else f"probing in {cool_down:g} s"
        self._alert(status.state, written, f"{reason}; {settled}; {probing}")
        return written

    def _retry_open(self, reason: str, held: bool, wait_seconds: float) -> BreakerStatus:
        status = self.status()
        if status.state is BreakerState.OPEN and not held:
            return status  # another invocation opened it
        return self._open(status, reason, held=held, wait_seconds=wait_seconds)

    def _half_open(self, status: BreakerStatus) -> None:
        reason = f"cool-down of {status.cool_down_seconds:g} s over"
        written = self._write(status, BreakerState.HALF_OPEN, reason, cool_down=status.cool_down_seconds)
        if written is None:
            return  # another invocation moved it; the next tick looks again
        self._enable(self.settings.probe_concurrency)
        self._alert(
            status.state,
            written,
            f"{reason}; probing with maximum concurrency {self.settings.probe_concurrency} for "
            f"{self.settings.probe_window_seconds:g} s",
        )

    def _close(self, status: BreakerStatus, reason: str) -> BreakerStatus:
        for _ in range(_RACE_ATTEMPTS):
            written = self._write(
                status, BreakerState.CLOSED, reason, cool_down=self.settings.cool_down_seconds
            )
            if written is not None:
                break
            status = self.status()
        else:
            raise RuntimeError("the breaker's state kept changing under a close; try again")
        concurrency = self.settings.closed_concurrency
        self._enable(concurrency)
        shown = "no limit" if concurrency is None else str(concurrency)
        self._alert(status.state, written, f"{reason}; maximum concurrency {shown}")
        return written

    def _write(
        self, status: BreakerStatus, state: BreakerState, reason: str, *, cool_down: float, held: bool = False
    ) -> BreakerStatus | None:
        """Record a transition if nobody else wrote since ``status`` was read; ``None`` if someone did."""
        now = self._clock()
        entry = {"at": _iso(now), "from": status.state.value, "to": state.value, "reason": reason}
        history = [*status.history, entry][-BREAKER_HISTORY_LIMIT:]
        written = BreakerStatus(state, now, cool_down, held, reason, status.revision + 1, history)
        item: dict[str, Any] = {
            BreakerAttribute.PK: {"S": BREAKER_ITEM_KEY},
            BreakerAttribute.STATE: {"S": state.value},
            BreakerAttribute.SINCE: {"N": repr(now)},
            BreakerAttribute.COOL_DOWN_SECONDS: {"N": repr(cool_down)},
            BreakerAttribute.HELD: {"BOOL": held},
            BreakerAttribute.REASON: {"S": reason[:1000] or "-"},
            BreakerAttribute.REVISION: {"N": str(written.revision)},
            BreakerAttribute.HISTORY: {"S": json.dumps(history)},
        }
        try:
            self._dynamodb.put_item(
                TableName=self.settings.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk) OR #revision = :revision",
                ExpressionAttributeNames={"#pk": BreakerAttribute.PK, "#revision": BreakerAttribute.REVISION},
                ExpressionAttributeValues={":revision": {"N": str(status.revision)}},
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return None
        log.warning(
            "circuit breaker %s -> %s: %s",
            status.state.value,
            state.value,
            reason,
            extra={
                "pipeline": self.settings.pipeline_name,
                "breaker_from": status.state.value,
                "breaker_to": state.value,
            },
        )
        return written

    # -- the mapping and the topic ---------------------------------------------------------------

    def _disable(self, wait_seconds: float) -> str:
        """Disable the mapping (if it is not already) and wait, bounded, until it reports Disabled."""
        state = str(self.mapping()["state"])
        if state not in (MAPPING_DISABLED, "Disabling"):
            state = str(
                self._lambda.update_event_source_mapping(UUID=self.settings.mapping_uuid, Enabled=False).get(
                    "State", "Unknown"
                )
            )
        deadline = self._clock() + wait_seconds
        while state != MAPPING_DISABLED and self._clock() < deadline:
            self._sleep(_POLL_SECONDS)
            state = str(self.mapping()["state"])
        return state

    def _enable(self, concurrency: int | None) -> None:
        current = self.mapping()
        if current["state"] in ("Enabled", "Enabling") and current["maximumConcurrency"] == concurrency:
            return
        # An empty ScalingConfig removes the limit (Lambda's documented way to unset it).
        scaling: ScalingConfigTypeDef = {} if concurrency is None else {"MaximumConcurrency": concurrency}
        self._lambda.update_event_source_mapping(
            UUID=self.settings.mapping_uuid, Enabled=True, ScalingConfig=scaling
        )

    def _alert(self, old: BreakerState, new: BreakerStatus, message: str) -> None:
        subject = f"filepipe {self.settings.pipeline_name}: circuit breaker {new.state.value}"
        body = {
            "pipeline": self.settings.pipeline_name,
            "breaker": new.state.value,
            "previous": old.value,
            "at": _iso(new.since),
            "reason": message,
        }
        try:
            self._sns.publish(
                TopicArn=self.settings.topic_arn, Subject=subject[:100], Message=json.dumps(body)
            )
        except Exception:
            # The transition stands (and is in the history) even when the alert cannot be sent.
            log.exception("could not publish the breaker's alert")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The breaker function's entry point: settings from the environment, clients per container."""
    import os

    global _breaker  # noqa: PLW0603 - the per-container singleton Lambda expects
    if _breaker is None:
        import boto3

        _breaker = Breaker(
            BreakerSettings.from_env(os.environ),
            lambda_client=boto3.client("lambda"),
            dynamodb=boto3.client("dynamodb"),
            sns=boto3.client("sns"),
            cloudwatch=boto3.client("cloudwatch"),
        )
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else DISABLE_WAIT_SECONDS
    return _breaker.handle(event, wait_seconds=max(0.0, min(DISABLE_WAIT_SECONDS, remaining - 10)))


_breaker: Breaker | None = None
