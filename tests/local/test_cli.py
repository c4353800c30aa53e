from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from filepipe.cli.main import main
from filepipe.local.capture import CaptureError
from filepipe.local.demo import INVALID_STEP, VALID_STEP
from filepipe.local.emf import EmfCapture
from filepipe.local.endpoint import LOCAL_HOST
from filepipe.local.runtime import LocalRuntime, RunningStack
from tests.local.conftest import PROJECT_DIR, wait_until


def _recorded(state_file: Path) -> bool:
    """Whether ``up`` has finished writing its state file (the write is not atomic)."""
    try:
        return "pid" in json.loads(state_file.read_text())
    except (OSError, ValueError):
        return False


@pytest.mark.e2e
def test_up_serves_the_stack_env_points_clients_at_it_and_down_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN `filepipe local up` running in another process (its output read, and the process reaped, as
    # its parent shell would)
    up = subprocess.Popen(
        [
            *(sys.executable, "-m", "filepipe.cli.main", "local", "up"),
            *("--project-dir", str(PROJECT_DIR), "--state-dir", str(tmp_path), "--port", "0"),
            *("--fast", "--quiet"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reaper = threading.Thread(target=lambda: output.append(up.communicate()[0]), daemon=True)
    reaper.start()
    try:
        assert wait_until(lambda: _recorded(tmp_path / "endpoint.json") or not reaper.is_alive(), timeout=120)
        assert reaper.is_alive(), output
        # WHEN `env` prints its variables and a plain AWS client uses them
        assert main(["local", "env", "--state-dir", str(tmp_path)]) == 0
        exports = dict(re.findall(r"^export (\w+)=(.*)$", capsys.readouterr().out, re.MULTILINE))
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        buckets = [bucket["Name"] for bucket in boto3.client("s3").list_buckets()["Buckets"]]
        # THEN the client sees the stack's bucket, as the outputs name it
        outputs = json.loads((tmp_path / "outputs.json").read_text())
        assert buckets == [outputs["transactions"]["bucket"]]
        # WHEN `down` runs, THEN `up` stops cleanly and its state file is gone
        assert main(["local", "down", "--state-dir", str(tmp_path)]) == 0
        reaper.join(timeout=60)
        assert up.returncode == 0, output
        assert "stopped" in output[0].splitlines()
        assert not (tmp_path / "endpoint.json").exists()
    finally:
        up.kill()
        reaper.join(timeout=60)


def test_env_and_down_without_a_running_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "env", "--state-dir", str(tmp_path)]) == 1
    assert main(["local", "down", "--state-dir", str(tmp_path)]) == 0
    assert "nothing running" in capsys.readouterr().out


def test_a_stale_endpoint_file_is_cleaned_up(tmp_path: Path) -> None:
    (tmp_path / "endpoint.json").write_text(json.dumps({"endpoint": "http://127.0.0.1:1", "pid": 2**22 + 1}))
    assert main(["local", "env", "--state-dir", str(tmp_path)]) == 1
    assert not (tmp_path / "endpoint.json").exists()


@pytest.mark.e2e
def test_the_demo_passes_from_the_project_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["local", "demo", "--project-dir", str(PROJECT_DIR), "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "All checks passed" in out
    assert "processed/" in out
    assert VALID_STEP in out
    assert INVALID_STEP in out
    assert (tmp_path / "outputs.json").is_file()
    assert "ALARM" in (tmp_path / "alerts.log").read_text()


@pytest.mark.e2e
def test_an_unknown_stack_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["local", "demo", "--project-dir", str(PROJECT_DIR), "--stack", "nope", "--state-dir", str(tmp_path)]
    )
    assert code == 1
    assert "cannot start" in capsys.readouterr().out


@pytest.fixture
def own_stop_signals() -> Iterator[None]:
    """`local up` installs its stop signals in this process; give pytest's back afterwards."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.usefixtures("own_stop_signals")
@pytest.mark.parametrize("command", ["up", "demo"])
def test_stdout_is_captured_before_the_runtime_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # GIVEN a runtime that notes the sys.stdout its start finds (the handlers' loggers, built during the
    # start, keep it), and then cannot start
    seen: list[object] = []

    def start(runtime: LocalRuntime) -> RunningStack:
        seen.append(sys.stdout)
        raise CaptureError("stopped here")

    monkeypatch.setattr(LocalRuntime, "start", start)
    real_stdout = sys.stdout
    # WHEN the command runs
    assert main(["local", command, "--project-dir", str(PROJECT_DIR), "--state-dir", str(tmp_path)]) == 1
    # THEN the start saw the EMF capture, the failure is one line, and stdout is restored
    assert isinstance(seen[0], EmfCapture)
    assert "cannot start: stopped here" in capsys.readouterr().out
    assert sys.stdout is real_stdout


def _endpoint_file(state_dir: Path, pid: int) -> Path:
    path = state_dir / "endpoint.json"
    path.write_text(json.dumps({"endpoint": "http://127.0.0.1:1", "region": "eu-west-1", "pid": pid}))
    return path


@pytest.mark.e2e
def test_down_does_not_signal_a_reused_pid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a state file whose pid now belongs to an unrelated process and whose endpoint is gone
    other = subprocess.Popen(["sleep", "60"])
    try:
        path = _endpoint_file(tmp_path, other.pid)
        # WHEN `local down` runs
        assert main(["local", "down", "--state-dir", str(tmp_path)]) == 0
        # THEN the process is untouched and the state file is reported stale and removed
        assert other.poll() is None
        assert "stale state file" in capsys.readouterr().out
        assert not path.exists()
    finally:
        other.kill()
        other.wait()


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/cmdline").is_file(), reason="reads /proc")
@pytest.mark.parametrize("addressed_by", ["state-dir", "port"])
def test_down_stops_a_filepipe_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], addressed_by: str
) -> None:
    state_dir = tmp_path / ".filepipe" / "prod"
    state_dir.mkdir(parents=True)
    where = {
        "state-dir": ["--state-dir", str(state_dir)],
        "port": ["--project-dir", str(tmp_path), "--port", "1"],  # the stack is found by its port
    }[addressed_by]
    up = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "filepipe", "local", "up"])
    try:
        cmdline = Path(f"/proc/{up.pid}/cmdline")
        assert wait_until(lambda: b"filepipe" in cmdline.read_bytes())  # exec'd, not the forked pytest
        path = _endpoint_file(state_dir, up.pid)
        reaper = threading.Thread(target=up.wait, daemon=True)  # as its parent would: no zombie
        reaper.start()
        assert main(["local", "down", *where]) == 0
        reaper.join(timeout=30)
        assert up.returncode is not None and up.returncode != 0  # terminated by the signal
        assert "stopped" in capsys.readouterr().out
        assert not path.exists()
    finally:
        up.kill()
        up.wait()


@pytest.fixture
def listening_port(e2e_tier: None) -> Iterator[int]:
    """A port on which something answers HTTP, as a running endpoint would."""
    server = http.server.ThreadingHTTPServer((LOCAL_HOST, 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def test_env_finds_the_up_listening_on_a_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listening_port: int
) -> None:
    # GIVEN `up --stack prod --port N` running in the project (this process stands in for it)
    state_dir = tmp_path / ".filepipe" / "prod"
    state_dir.mkdir(parents=True)
    url = f"http://{LOCAL_HOST}:{listening_port}"
    (state_dir / "endpoint.json").write_text(
        json.dumps({"endpoint": url, "region": "eu-west-1", "pid": os.getpid()})
    )
    # WHEN `env --port N` runs without naming the stack, THEN it prints that endpoint's variables
    assert main(["local", "env", "--project-dir", str(tmp_path), "--port", str(listening_port)]) == 0
    assert f"export AWS_ENDPOINT_URL={url}\n" in capsys.readouterr().out
    # AND a port nothing listens on is reported, for `env` and for `down`
    other = str(listening_port + 1)
    assert main(["local", "env", "--project-dir", str(tmp_path), "--port", other]) == 1
    assert f"nothing running on port {other}" in capsys.readouterr().err
    assert main(["local", "down", "--project-dir", str(tmp_path), "--port", other]) == 0
    assert f"nothing running on port {other}" in capsys.readouterr().out


@pytest.mark.e2e
def test_run_help_prints_only_the_usage_lines() -> None:
    result = subprocess.run(
        ["bash", str(PROJECT_DIR / "run"), "help"], capture_output=True, text=True, check=True, timeout=30
    )
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["./run", "demo"],
        ["./run", "test"],
        ["./run", "test-fast"],
        ["./run", "<cmd>"],
    ]
