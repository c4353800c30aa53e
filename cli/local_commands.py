"""``filepipe local …``: the whole pipeline on this machine (moto endpoint, no cloud, no Docker).

- ``up``: start the endpoint, provision the stack from the component, run it until Ctrl-C;
- ``down``: stop a running ``up`` (from another terminal) and clean its state;
- ``env``: print the variables that point the AWS CLI / boto3 at the running endpoint;
- ``demo``: a valid file processed, an invalid one parked with an alert, checked; exit 0 only if every
  check passed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Final

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from filepipe.extras import MissingExtraError, require_local_extra
from filepipe.local.alerts import Alert
from filepipe.local.apply import RESOURCE_TYPES, ApplyError, Handling
from filepipe.local.capture import CaptureError
from filepipe.local.emf import EmfCapture
from filepipe.local.endpoint import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, EndpointAddress, EndpointError
from filepipe.local.esm import MappingConfigError
from filepipe.local.metrics import LocalMetrics
from filepipe.local.running import process_alive, running_endpoint
from filepipe.local.runtime import (
    ALERTS_FILE,
    ENDPOINT_FILE,
    OUTPUTS_FILE,
    STATE_ROOT,
    LocalRuntime,
    LocalTuning,
    RunningStack,
    default_state_dir,
)

DEFAULT_PORT: Final = 4566
"""The usual port of a local AWS endpoint; ``--port 0`` picks a free one."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = groups.add_parser("local", help="run the stack's pipelines on this machine (no cloud)")
    commands = local.add_subparsers(dest="local_command", metavar="<command>", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to run (default: dev)"
        )
        parser.add_argument(
            "--project-dir", type=Path, default=Path.cwd(), help="folder holding Pulumi.yaml (default: .)"
        )
        parser.add_argument("--state-dir", type=Path, help="default: <project>/.filepipe/<stack>")

    up = commands.add_parser("up", help="start the endpoint, provision the stack and run it until Ctrl-C")
    common(up)
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"endpoint port (default {DEFAULT_PORT})")
    up.add_argument("--fast", action="store_true", help="seconds instead of minutes for retries and timeouts")
    up.add_argument("--quiet", action="store_true", help="hide the handlers' log lines")
    up.set_defaults(command=_with_local_extra(_up))

    down = commands.add_parser("down", help="stop a running `filepipe local up`")
    env = commands.add_parser("env", help="print `export` lines for the running endpoint (eval them)")
    for command, run in ((down, _down), (env, _env)):
        common(command)
        command.add_argument(
            "--port",
            type=int,
            help="the `up` listening on this port, whatever its stack (default: the stack's)",
        )
        command.set_defaults(command=run)

    demo = commands.add_parser("demo", help="process a valid and an invalid file locally, and check it all")
    common(demo)
    demo.add_argument("--port", type=int, default=0, help="endpoint port (default: any free port)")
    demo.set_defaults(command=_with_local_extra(_demo))


def _with_local_extra(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command``, refused in one line when the ``local`` extra is not installed. Only the commands that
    run the embedded AWS need it: ``down`` and ``env`` read state files and work without it."""

    def checked(args: argparse.Namespace) -> int:
        try:
            require_local_extra("filepipe local")
        except MissingExtraError as error:
            print(error, file=sys.stderr)
            return 2
        return command(args)

    return checked


def _state_dir(args: argparse.Namespace) -> Path:
    state_dir: Path | None = args.state_dir
    return state_dir or default_state_dir(args.project_dir.resolve(), args.stack)


def _addressed(
    args: argparse.Namespace, console: Console | None = None
) -> tuple[Path, dict[str, object]] | None:
    """The state directory and state of the running ``up`` that ``down`` / ``env`` address, if any.

    Without ``--port``: the stack's. With it: the ``up`` listening on that port among the project's
    stacks (or in ``--state-dir``), since the port is what ``up --port`` printed and people remember.
    """
    port: int | None = args.port
    if port is None:
        state_dir = _state_dir(args)
        running = running_endpoint(state_dir, console)
        return None if running is None else (state_dir, running)
    root = args.project_dir.resolve() / STATE_ROOT
    candidates = [args.state_dir] if args.state_dir else sorted(p for p in root.glob("*") if p.is_dir())
    for state_dir in candidates:
        running = running_endpoint(state_dir, console)
        if running is not None and _port(running.get("endpoint")) == port:
            return state_dir, running
    return None


def _port(endpoint: object) -> int | None:
    try:
        return int(str(endpoint).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def _nothing_running(args: argparse.Namespace) -> str:
    if args.port is not None:
        return f"nothing running on port {args.port}"
    return f"nothing running for stack {args.stack} ({_state_dir(args)})"


def print_alert(console: Console, alert: Alert) -> None:
    if alert.alarm is None:
        console.print(f"[bold magenta]ALERT[/] {alert.subject or alert.topic_arn}: {alert.message[:200]}")
        return
    old = alert.alarm.get("OldStateValue")
    if old == "INSUFFICIENT_DATA" and alert.state == "OK":
        return  # every alarm's first evaluation; logged to alerts.log, not worth a line
    style = "bold red" if alert.state == "ALARM" else "bold green"
    console.print(
        f"[{style}]ALERT {alert.state}[/] {alert.alarm_name}  ({old} -> {alert.state})  "
        f"[dim]{alert.alarm.get('NewStateReason', '')}[/]"
    )


def print_resources(console: Console, running: RunningStack) -> None:
    """What the component declared, by type, and how each type runs locally."""
    counts: dict[str, int] = {}
    for resource in running.captured.resources:
        if RESOURCE_TYPES[resource.type].handling is not Handling.COMPONENT:
            counts[resource.type] = counts.get(resource.type, 0) + 1
    table = Table(title=f"stack {running.stack_name}: {sum(counts.values())} resources from the component")
    table.add_column("type")
    table.add_column("n", justify="right")
    table.add_column("locally")
    for token, count in counts.items():
        short = token.split(":")[1] if token.count(":") == 2 else token
        table.add_row(short, str(count), RESOURCE_TYPES[token].handling.value)
    console.print(table)
    if running.stand_in_buckets:
        names = ", ".join(running.stand_in_buckets)
        console.print(f"[dim]existing buckets the stack uses, created locally: {names}[/]")


def print_pipelines(console: Console, running: RunningStack) -> None:
    table = Table(title="pipelines")
    for column in ("pipeline", "input", "queue / dlq", "function"):
        table.add_column(column, overflow="fold")
    for name, outputs in running.outputs.items():
        if not isinstance(outputs, dict) or "queueUrl" not in outputs:
            continue
        table.add_row(
            name,
            f"s3://{outputs['bucket']}/{outputs.get('inputPrefix', '')}",
            f"{outputs['queueUrl'].rsplit('/', 1)[-1]} / {outputs['dlqUrl'].rsplit('/', 1)[-1]}",
            str(outputs.get("functionName", "")),
        )
    console.print(table)


def export_lines(address: EndpointAddress) -> list[str]:
    """``export`` lines that point the AWS CLI and boto3 at the endpoint (``eval`` them)."""
    return [f"export {name}={value}" for name, value in address.environment().items()]


def print_endpoint(console: Console, running: RunningStack) -> None:
    address = running.address
    console.print(f"[bold]endpoint[/] {address.url}   region {address.region}   account {address.account_id}")
    console.print(f"[bold]outputs[/]  {running.state_dir / OUTPUTS_FILE}")
    console.print(f"[bold]alerts[/]   {running.state_dir / ALERTS_FILE}")
    console.print("[dim]Use it from another shell:[/]")
    for line in export_lines(address):
        console.print(f"  {line}")
    queue: object = next(iter(running.outputs.values()), {})
    if isinstance(queue, dict) and queue.get("bucket"):
        console.print(
            f"  aws s3 cp ./file.json s3://{queue['bucket']}/{queue.get('inputPrefix', '')}file.json"
        )


def _start(console: Console, runtime: LocalRuntime, status: str) -> RunningStack | None:
    """Start the runtime; a configuration problem is one red line, not a traceback."""
    try:
        # Not console.status(): its Live would swap sys.stdout for a proxy while the handlers (and
        # their loggers, which keep the stream they find) are built, bypassing an installed capture.
        with Live(
            Spinner("dots", text=status),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        ):
            return runtime.start()
    except (EndpointError, CaptureError, ApplyError, MappingConfigError) as error:
        console.print(f"[bold red]cannot start[/]: {error}")
        return None


@contextmanager
def _captured_stdout(metrics: LocalMetrics, *, echo: bool) -> Iterator[None]:
    """EMF lines on stdout go to the runtime's metrics (and other lines only if ``echo``).

    Entered before ``runtime.start()``: the handlers' loggers are built during the start and write to
    whatever ``sys.stdout`` is then, so a capture installed afterwards would not see their lines.
    """
    real_stdout = sys.stdout
    sys.stdout = EmfCapture(real_stdout, metrics, echo=echo)
    try:
        yield
    finally:
        sys.stdout = real_stdout


@contextmanager
def _running(
    args: argparse.Namespace,
    console: Console,
    *,
    tuning: LocalTuning,
    on_alert: Callable[[Alert], None],
    echo: bool,
    status: str,
) -> Iterator[RunningStack | None]:
    """``up`` and ``demo``: the stack started with stdout captured and its resources listed, then
    stopped; ``None`` (after one red line) when it cannot start."""
    runtime = LocalRuntime(
        args.project_dir,
        args.stack,
        port=args.port,
        state_dir=_state_dir(args),
        tuning=tuning,
        on_alert=on_alert,
    )
    with _captured_stdout(runtime.metrics, echo=echo):
        running = _start(console, runtime, status)
        if running is None:
            yield None
            return
        try:
            print_resources(console, running)
            yield running
        finally:
            runtime.stop()


def _install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _up(args: argparse.Namespace) -> int:
    console = Console(file=sys.stdout)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    other = running_endpoint(_state_dir(args))
    if other is not None:
        console.print(
            f"[red]already running[/]: {other['endpoint']} (pid {other['pid']}); `filepipe local down` first"
        )
        return 1
    stop = threading.Event()
    _install_stop_signals(stop)
    with _running(
        args,
        console,
        tuning=LocalTuning.fast() if args.fast else LocalTuning(),
        on_alert=lambda alert: print_alert(console, alert),
        echo=not args.quiet,
        status="starting the endpoint and provisioning the stack…",
    ) as running:
        if running is None:
            return 1
        try:
            print_pipelines(console, running)
            print_endpoint(console, running)
            console.print("[bold green]running[/] — Ctrl-C (or `filepipe local down`) to stop")
            while not stop.wait(0.5):
                pass
        finally:
            console.print("stopping…")
    console.print("stopped")
    return 0


def _down(args: argparse.Namespace) -> int:
    console = Console()
    addressed = _addressed(args, console)
    if addressed is None:
        console.print(_nothing_running(args))
        return 0
    state_dir, running = addressed
    pid = int(str(running["pid"]))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if process_alive(pid):
        console.print(f"[red]pid {pid} did not stop within 30 s[/]")
        return 1
    (state_dir / ENDPOINT_FILE).unlink(missing_ok=True)
    console.print(f"stopped {running['endpoint']} (pid {pid})")
    return 0


def _env(args: argparse.Namespace) -> int:
    addressed = _addressed(args)
    if addressed is None:
        print(f"# {_nothing_running(args)}", file=sys.stderr)
        return 1
    _, running = addressed
    address = EndpointAddress(
        url=str(running["endpoint"]),
        region=str(running.get("region", DEFAULT_REGION)),
        account_id=str(running.get("accountId", DEFAULT_ACCOUNT_ID)),
    )
    print("\n".join(export_lines(address)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from filepipe.local.demo import print_summary, run_demo

    console = Console(file=sys.stdout)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    alerts: list[Alert] = []

    def on_alert(alert: Alert) -> None:
        alerts.append(alert)
        print_alert(console, alert)

    started = time.monotonic()
    with _running(
        args,
        console,
        tuning=LocalTuning.fast(log_level="CRITICAL"),
        on_alert=on_alert,
        echo=False,
        status="starting a local AWS endpoint and provisioning the stack from the component…",
    ) as running:
        if running is None:
            return 1
        console.print(f"[bold]endpoint[/] {running.address.url}")
        result = run_demo(running, console, alerts)
    print_summary(console, result, time.monotonic() - started)
    return 0 if result.passed else 1
