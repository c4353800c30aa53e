"""Finding a running ``filepipe local up`` from another process, through the files it writes.

``up`` records its endpoint in ``<state dir>/endpoint.json`` and the stack outputs in ``outputs.json``
(:mod:`filepipe.local.runtime`). ``local down``/``env`` and the ops commands read them here; a file
left behind by a crashed ``up`` is recognised as stale and removed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from rich.console import Console

from filepipe.local.runtime import ENDPOINT_FILE


def running_endpoint(state_dir: Path, console: Console | None = None) -> dict[str, object] | None:
    """The state of the ``up`` recorded in ``state_dir``, if it is really running.

    After a crash the recorded pid may belong to an unrelated process: the pid counts only if the
    recorded endpoint answers or the process is a filepipe one; otherwise the file is stale.
    """
    path = state_dir / ENDPOINT_FILE
    if not path.is_file():
        return None
    try:
        state: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        state = {}
    pid = state.get("pid")
    endpoint = state.get("endpoint")
    if (
        isinstance(pid, int)
        and process_alive(pid)
        and ((isinstance(endpoint, str) and _answers(endpoint)) or _is_filepipe_process(pid))
    ):
        return state
    if console is not None:
        console.print(
            f"[yellow]stale state file[/] {path} (pid {pid} is not a running `filepipe local up`); removed"
        )
    path.unlink(missing_ok=True)  # a crashed `up` left it behind
    return None


def _answers(url: str) -> bool:
    """Whether a local endpoint answers HTTP at ``url`` (any status counts)."""
    if not url.startswith("http://127.0.0.1:"):
        return False
    try:
        with urllib.request.urlopen(f"{url}/", timeout=2) as response:
            response.read(0)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def _is_filepipe_process(pid: int) -> bool:
    """Whether the process's command line mentions filepipe (Linux ``/proc``; elsewhere: unknown, no)."""
    try:
        command_line = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"filepipe" in command_line


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
