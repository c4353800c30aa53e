"""The local pipeline runtime: endpoint + captured stack + emulated Lambda + alarms + alert subscriber.

``LocalRuntime.start()`` is what ``filepipe local up`` and ``filepipe local demo`` run; it returns the
:class:`RunningStack`:

1. start the moto endpoint on 127.0.0.1;
2. run the stack program under mocks (:mod:`filepipe.local.capture`), apply the local tuning, read
   what to emulate and create the rest on the endpoint (:mod:`filepipe.local.apply`);
3. build each function's real handler (``filepipe.handler.app.build_handler``) from its captured
   environment and start one event source mapping runner per mapping, following the mapping stored on
   the endpoint (:mod:`filepipe.local.lambda_fidelity`) and putting the function's output to its log
   group (:mod:`filepipe.local.lambda_logs`);
4. start the alarm evaluator and the alert subscriber;
5. write ``outputs.json`` (``pulumi stack output --json`` shape) and ``endpoint.json`` to the state dir.

``stop()`` stops what was started, in reverse.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from filepipe.defaults import ALARM_PERIOD_SECONDS
from filepipe.handler.settings import EnvVar
from filepipe.lambda_code import BREAKER_ENTRY_POINT
from filepipe.local import lambda_fidelity
from filepipe.local.alarms import AlarmEvaluator
from filepipe.local.alerts import Alert, AlertSubscriber
from filepipe.local.apply import (
    EVENT_SOURCE_MAPPING,
    FUNCTION,
    QUEUE,
    Emulation,
    apply_stack,
    emulate,
    referenced_function,
)
from filepipe.local.capture import CapturedResource, CapturedStack, capture_stack, stack_region
from filepipe.local.endpoint import EndpointAddress, LocalEndpoint
from filepipe.local.esm import (
    EventSourceMappingRunner,
    FunctionSpec,
    Handler,
    MappingSpec,
    visibility_timeout_seconds,
)
from filepipe.local.invocations import FunctionInvoker, ScheduleRunner
from filepipe.local.lambda_logs import LogShipper, function_output
from filepipe.local.metrics import LocalMetrics, embedded_queue_gauges
from filepipe.local.service_metrics import QueueMetricsPublisher, count_sent_messages, embedded_sent_messages

log = logging.getLogger(__name__)

_SCALED_BREAKER_SETTINGS: Final = (
    EnvVar.COOL_DOWN_SECONDS,
    EnvVar.MAX_COOL_DOWN_SECONDS,
    EnvVar.PROBE_WINDOW_SECONDS,
)
STATE_ROOT: Final = ".filepipe"
OUTPUTS_FILE: Final = "outputs.json"
ENDPOINT_FILE: Final = "endpoint.json"
ALERTS_FILE: Final = "alerts.log"


def default_state_dir(project_dir: Path, stack: str) -> Path:
    """``.filepipe/<stack>/`` under the project (git-ignored)."""
    return project_dir / STATE_ROOT / stack


@dataclass(frozen=True, slots=True)
class LocalTuning:
    """Local-only changes to the stack's timings; ``None`` keeps what the component declares.

    Production timings are minutes (visibility timeouts, retry backoff, alarm periods); tests and the
    demo shorten them so that a retry or an alarm takes seconds. Every override is explicit here.
    """

    visibility_timeout_seconds: int | None = None
    """Applied to every queue that declares one (how soon a failed or timed-out message returns);
    raised to the timeout of a function mapped to the queue if that is longer."""
    function_timeout_seconds: float | None = None
    """Replaces each function's timeout (the runner's deadline and ``get_remaining_time_in_millis``)."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Extra function environment, e.g. ``FILEPIPE_BACKOFF_BASE_SECONDS``."""
    alarm_period_seconds: float = 1.0
    """One alarm period, locally (each alarm takes one datapoint per local period). It sets the local time
    scale: one alarm period stands for the component's minute, so schedules (``rate(1 minute)``) fire
    once per local period and the circuit breaker's cool-down and probe window shrink alike."""
    concurrency: int | None = None
    """Pollers per mapping (default: the mapping's maximum concurrency, else Lambda's initial five)."""
    log_level: str | None = None
    """The handler's log level (``POWERTOOLS_LOG_LEVEL``); ``None`` keeps the stack's."""

    @classmethod
    def fast(cls, **overrides: Any) -> LocalTuning:
        """Seconds instead of minutes for retries (tests, demo), with timeouts no machine reaches.

        Only the retry backoff is short: it is what makes a failing file's retries take seconds. The
        function timeout, the visibility timeout and the lease stay far above what one invocation takes
        even on a loaded 2-core machine (well under a second for a batch of small files), so that
        timing can never change an outcome: an invocation that ran out of time while still working
        would, locally, go on working (its thread cannot be killed) while its messages came back. The
        timeout path itself is exercised on purpose, with its own short timeout. The lease outlives
        the function timeout, as the component sets it, so a live invocation never loses its lease.
        """
        values: dict[str, Any] = {
            "visibility_timeout_seconds": 30,
            "function_timeout_seconds": 30.0,
            "environment": {
                EnvVar.BACKOFF_BASE_SECONDS.value: "1",
                EnvVar.BACKOFF_MAX_SECONDS.value: "2",
                EnvVar.LEASE_SECONDS.value: "60",
                EnvVar.TIMEOUT_MARGIN_MS.value: "1000",
            },
            "log_level": "WARNING",
        }
        values.update(overrides)
        return cls(**values)

    @property
    def time_scale(self) -> float:
        """Local seconds per second of the stack's own minute-based timings."""
        return self.alarm_period_seconds / ALARM_PERIOD_SECONDS

    def applied_to(self, stack: CapturedStack) -> CapturedStack:
        """``stack`` with these timings applied to its queues and functions.

        A queue's visibility timeout is never left below the timeout of a function mapped to it (Lambda
        refuses such a mapping: a slow batch would reappear while still being processed); the tuned
        visibility timeout is raised to the longest such function timeout instead.
        """
        if self.visibility_timeout_seconds is None and self.function_timeout_seconds is None:
            return stack
        longest: dict[str, float] = {}
        for mapping in stack.of_type(EVENT_SOURCE_MAPPING.token):
            function = referenced_function(stack, str(mapping.inputs.get("functionName", "")))
            if function is None:
                continue  # reported when the stack's emulation is read
            timeout = self.function_timeout_seconds
            if timeout is None:
                timeout = FunctionSpec.from_resource(function).timeout_seconds
            source = str(mapping.inputs.get("eventSourceArn", ""))
            longest[source] = max(longest.get(source, 0.0), timeout)
        return dataclasses.replace(
            stack, resources=[self._tuned(resource, longest) for resource in stack.resources]
        )

    def _tuned(self, resource: CapturedResource, longest: Mapping[str, float]) -> CapturedResource:
        changes: dict[str, Any] = {}
        if resource.type == QUEUE.token:
            current = visibility_timeout_seconds(resource)
            visibility = current
            declared = resource.inputs.get("visibilityTimeoutSeconds") is not None
            if declared and self.visibility_timeout_seconds is not None:
                visibility = self.visibility_timeout_seconds
            visibility = max(visibility, math.ceil(longest.get(resource.get("arn"), 0.0)))
            if visibility != current:
                changes["visibilityTimeoutSeconds"] = visibility
        elif resource.type == FUNCTION.token and self.function_timeout_seconds is not None:
            changes["timeout"] = self.function_timeout_seconds
        if not changes:
            return resource
        inputs = {**resource.inputs, **changes}
        outputs = {**resource.outputs, **changes}
        return dataclasses.replace(resource, inputs=inputs, outputs=outputs)


ClientHook = Callable[[str, Any], None]
"""Called with ``(service, client)`` for each client handed to a handler (tests inject faults here)."""
HandlerFactory = Callable[[FunctionSpec, Mapping[str, str], EndpointAddress], Handler]
"""Builds the handler a function's runner invokes, from the function and its local environment."""


def _write_atomically(path: Path, document: object) -> None:
    """Write JSON so that a reader (``local env``/``down`` in another process) never sees half a file:
    a reader that found a partial ``endpoint.json`` would take it for a stale one and delete it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _write_to_stdout(service: str | None) -> None:
    """Point the service's Powertools logger at the current stdout, where its function's output is
    routed to its log group. Powertools sets up a service's logger once per process, with the stdout of
    that time (an earlier runtime's, a test's); in Lambda there is one handler per process."""
    if service is None:
        return
    for handler in logging.getLogger(service).handlers:
        if type(handler) is logging.StreamHandler and handler.stream is not sys.stderr:
            # Assigned, not setStream(): that flushes the old stream, which may be closed by now.
            handler.stream = sys.stdout


def _discard(_: object) -> None:
    """Adapts a boto3 call (which returns its response) to a callback that returns nothing."""


def materialize_code(function: FunctionSpec, root: Path) -> Path | None:
    """Write the non-handler files of the function's archive (schema, processor code) under ``root``.

    The handler itself runs from the installed ``filepipe.handler``; everything else the archive holds
    is what the function would find at ``LAMBDA_TASK_ROOT``.
    """
    if function.code is None:
        return None
    target = root / function.name
    assets: Mapping[str, Any] = getattr(function.code, "assets", {}) or {}
    for relative, asset in assets.items():
        if relative.startswith("handler/"):
            continue
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if getattr(asset, "text", None) is not None:
            path.write_text(asset.text, encoding="utf-8")
        elif getattr(asset, "path", None) is not None and Path(asset.path).is_file():
            path.write_bytes(Path(asset.path).read_bytes())
        else:
            raise RuntimeError(f"{function.name}: archive entry {relative} has no local content")
    return target


@dataclass(frozen=True, slots=True)
class RunningStack:
    """A stack running locally, as :meth:`LocalRuntime.start` returns it: every part is running until
    :meth:`LocalRuntime.stop`."""

    stack_name: str
    state_dir: Path
    endpoint: LocalEndpoint
    address: EndpointAddress
    captured: CapturedStack
    """The stack as the program declared it, with the local tuning applied."""
    emulation: Emulation
    stand_in_buckets: list[str]
    """Buckets the stack uses without creating them, created locally as stand-ins."""
    runners: Mapping[str, EventSourceMappingRunner]
    """One per mapping, by function name."""
    metrics: LocalMetrics
    evaluator: AlarmEvaluator
    subscriber: AlertSubscriber
    invoker: FunctionInvoker | None = None
    """Functions invoked by alarm actions and schedules (the circuit breaker), with their counts."""

    @property
    def outputs(self) -> dict[str, Any]:
        """The stack outputs (``pulumi stack output --json``)."""
        return dict(self.captured.outputs)

    @property
    def endpoint_requests(self) -> int:
        """Requests the endpoint has served (benchmarks)."""
        return self.endpoint.requests

    def pipeline_outputs(self, pipeline: str) -> dict[str, Any]:
        outputs = self.outputs.get(pipeline)
        if not isinstance(outputs, dict):
            raise KeyError(f"no pipeline {pipeline!r} in the stack outputs (have: {sorted(self.outputs)})")
        return outputs

    def runner(self, pipeline: str) -> EventSourceMappingRunner:
        return self.runners[self.pipeline_outputs(pipeline)["functionName"]]

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.address.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def is_idle(self) -> bool:
        """No message waiting or in flight on any mapped queue, and no batch held by a runner."""
        return all(
            not runner.busy and self.queue_depth(runner.mapping.queue_url) == 0
            for runner in self.runners.values()
        )

    def wait_until_idle(self, timeout: float = 60.0, settle: float = 0.5) -> bool:
        """Poll until :meth:`is_idle` holds twice ``settle`` seconds apart, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_idle():
                time.sleep(settle)
                if self.is_idle():
                    return True
            time.sleep(0.2)
        return False


class LocalRuntime:
    """One stack run locally: ``with LocalRuntime(...) as running:``, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        project_dir: Path,
        stack: str = "dev",
        *,
        port: int = 0,
        state_dir: Path | None = None,
        tuning: LocalTuning | None = None,
        on_alert: Callable[[Alert], None] | None = None,
        client_hook: ClientHook | None = None,
        handler_factory: HandlerFactory | None = None,
    ) -> None:
        self.project_dir = project_dir.resolve()
        self.stack_name = stack
        self.state_dir = (state_dir or default_state_dir(self.project_dir, stack)).resolve()
        self.tuning = tuning or LocalTuning()
        self._endpoint = LocalEndpoint(port, region=stack_region(self.project_dir, stack))
        self.metrics = LocalMetrics(embedded_queue_gauges(self._endpoint.account_id, self._endpoint.region))
        """Before the start already: an EMF capture installed before the handlers are built feeds it."""
        self._on_alert = on_alert
        self._client_hook = client_hook
        self._handler_factory = handler_factory or self._real_handler
        self._started = ExitStack()
        """How to stop what :meth:`start` started, in reverse."""

    def start(self) -> RunningStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._start(self._started)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._started.close()

    def __enter__(self) -> RunningStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start(self, started: ExitStack) -> RunningStack:
        count_sent_messages()  # before anything is sent: SQS's NumberOfMessagesSent counts every send
        address = self._endpoint.start()
        started.callback(self._endpoint.stop)
        captured = self.tuning.applied_to(capture_stack(self.project_dir, self.stack_name, address))
        emulation = emulate(captured)
        stand_ins = apply_stack(captured, address)
        shipper = LogShipper(lambda: address.client("logs"))
        shipper.start()
        started.callback(shipper.stop)  # after the runners have stopped: their last lines are sent too
        # Before the handlers are built: their loggers keep the stdout they find.
        started.enter_context(function_output())
        runners = {
            mapping.function_name: self._runner(
                mapping, emulation.functions[mapping.function_name], address, shipper
            )
            for mapping in emulation.mappings
        }
        invoker = FunctionInvoker(address.region)
        mapped = {mapping.function_name for mapping in emulation.mappings}
        for function in emulation.functions.values():
            if function.name not in mapped:
                invoker.add(function, self._invoked_handler(function, address))
        started.callback(invoker.stop)
        subscriber = AlertSubscriber(
            emulation.alert_topics,
            lambda: address.client("sqs"),
            lambda: address.client("sns"),
            log_path=self.state_dir / ALERTS_FILE,
            on_alert=self._on_alert,
        )
        subscriber.start()
        started.callback(subscriber.stop)
        sns = address.client("sns")
        cloudwatch = address.client("cloudwatch")
        evaluator = AlarmEvaluator(
            emulation.alarms,
            self.metrics,
            lambda arn, subject, message: _discard(
                sns.publish(TopicArn=arn, Subject=subject, Message=message)
            ),
            account_id=address.account_id,
            region=address.region,
            local_period_seconds=self.tuning.alarm_period_seconds,
            state_sink=lambda name, state, reason: cloudwatch.set_alarm_state(
                AlarmName=name,
                StateValue=state,  # type: ignore[arg-type]
                StateReason=reason[:1023],
            ),
            invoke=invoker.invoke,
        )
        for runner in runners.values():
            runner.start()
            started.callback(runner.stop)
            self._follow_endpoint(runner, address, started)
        evaluator.start()
        started.callback(evaluator.stop)
        schedules = ScheduleRunner(
            emulation.schedules,
            invoker.invoke,
            account_id=address.account_id,
            region=address.region,
            time_scale=self.tuning.time_scale,
        )
        schedules.start()
        started.callback(schedules.stop)
        # SQS publishes its queues' gauges to CloudWatch each minute; locally each local period.
        queue_metrics = QueueMetricsPublisher(
            [str(queue.get("url")).rsplit("/", 1)[-1] for queue in captured.of_type(QUEUE.token)],
            embedded_queue_gauges(address.account_id, address.region),
            lambda: address.client("cloudwatch"),
            period_seconds=self.tuning.alarm_period_seconds,
            sent=embedded_sent_messages(address.account_id, address.region),
        )
        queue_metrics.start()
        started.callback(queue_metrics.stop)
        running = RunningStack(
            stack_name=self.stack_name,
            state_dir=self.state_dir,
            endpoint=self._endpoint,
            address=address,
            captured=captured,
            emulation=emulation,
            stand_in_buckets=stand_ins,
            runners=runners,
            metrics=self.metrics,
            evaluator=evaluator,
            subscriber=subscriber,
            invoker=invoker,
        )
        self._write_state_files(running)
        # Only this runtime's own endpoint.json is removed: another runtime may own the state dir.
        started.callback((self.state_dir / ENDPOINT_FILE).unlink, missing_ok=True)
        return running

    def _runner(
        self, mapping: MappingSpec, function: FunctionSpec, address: EndpointAddress, logs: LogShipper
    ) -> EventSourceMappingRunner:
        environment = self._environment(function, self.state_dir / "functions")
        return EventSourceMappingRunner(
            mapping,
            function,
            self._handler_factory(function, environment, address),
            lambda: address.client("sqs"),
            region=address.region,
            metrics=self.metrics,
            concurrency=self.tuning.concurrency,
            logs=logs,
        )

    @staticmethod
    def _follow_endpoint(
        runner: EventSourceMappingRunner, address: EndpointAddress, started: ExitStack
    ) -> None:
        """The endpoint's mapping drives ``runner`` (an update from any process reaches it at once, and
        the mapping reports its state); the runner's own ``set_enabled`` updates the mapping."""
        uuid = runner.mapping.uuid
        lambda_fidelity.attach(address.account_id, address.region, uuid, runner)
        started.callback(lambda_fidelity.detach, address.account_id, address.region, uuid)
        client = address.client("lambda")
        runner.bind(lambda enabled: _discard(client.update_event_source_mapping(UUID=uuid, Enabled=enabled)))

    def _environment(self, function: FunctionSpec, code_root: Path) -> dict[str, str]:
        environment = {**function.environment, **self.tuning.environment}
        if self.tuning.log_level is not None:
            environment[EnvVar.POWERTOOLS_LOG_LEVEL.value] = self.tuning.log_level
        code_dir = materialize_code(function, code_root)
        if code_dir is not None:
            schema = environment.get(EnvVar.SCHEMA_FILE.value)
            if schema and (code_dir / schema).is_file():
                environment[EnvVar.SCHEMA_FILE.value] = str(code_dir / schema)
            has_processor = any(
                environment.get(var.value) for var in (EnvVar.PROCESSOR, EnvVar.FILE_PROCESSOR)
            )
            if has_processor and str(code_dir) not in sys.path:
                # The processor is imported from the archive root, as Lambda imports from its task root.
                sys.path.append(str(code_dir))
        return environment

    def _real_handler(
        self, function: FunctionSpec, environment: Mapping[str, str], address: EndpointAddress
    ) -> Handler:
        from filepipe.handler.app import build_handler
        from filepipe.handler.clients import Clients
        from filepipe.handler.settings import HandlerSettings

        clients = Clients(
            s3=address.client("s3"), sqs=address.client("sqs"), dynamodb=address.client("dynamodb")
        )
        if self._client_hook is not None:
            for service in ("s3", "sqs", "dynamodb"):
                self._client_hook(service, getattr(clients, service))
        handler: Handler = build_handler(HandlerSettings.from_env(environment), clients)
        _write_to_stdout(getattr(handler, "service", None))
        return handler

    def _invoked_handler(self, function: FunctionSpec, address: EndpointAddress) -> Handler:
        """The handler of a function invoked by alarms or schedules, by its entry point."""
        environment = self._environment(function, self.state_dir / "functions")
        if function.entry_point != BREAKER_ENTRY_POINT:
            return self._handler_factory(function, environment, address)
        from filepipe.handler.breaker import DISABLE_WAIT_SECONDS, Breaker, BreakerSettings

        # The breaker's timers are minutes, like the alarms it reacts to: scaled alike.
        for variable in _SCALED_BREAKER_SETTINGS:
            if environment.get(variable.value):
                environment[variable.value] = str(float(environment[variable.value]) * self.tuning.time_scale)
        breaker = Breaker(
            BreakerSettings.from_env(environment),
            lambda_client=address.client("lambda"),
            dynamodb=address.client("dynamodb"),
            sns=address.client("sns"),
            cloudwatch=address.client("cloudwatch"),
        )

        def handle(event: dict[str, Any], context: Any) -> Any:
            remaining = context.get_remaining_time_in_millis() / 1000
            return breaker.handle(event, wait_seconds=max(0.0, min(DISABLE_WAIT_SECONDS, remaining - 10)))

        return handle

    def _write_state_files(self, running: RunningStack) -> None:
        _write_atomically(self.state_dir / OUTPUTS_FILE, running.outputs)
        endpoint = {
            "endpoint": running.address.url,
            "region": running.address.region,
            "accountId": running.address.account_id,
            "stack": self.stack_name,
            "pid": os.getpid(),
            "startedAt": datetime.now(UTC).isoformat(),
        }
        _write_atomically(self.state_dir / ENDPOINT_FILE, endpoint)
