"""The ``filepipe`` ops commands: see and steer deployed pipelines, the same against AWS and locally.

Each command is one module with a ``register(groups)``; :data:`COMMANDS` lists them in help order.
Every command finds its stack the same way (:mod:`.stack`) and runs through :func:`.command.ops_command`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def commands() -> list[Register]:
    """The ops commands' ``register`` functions, in help order."""
    from filepipe.cli.ops import breaker, doctor, failed, logs, mapping, reprocess, send, status

    return [
        status.register,
        send.register,
        logs.register,
        mapping.register,
        failed.register,
        reprocess.register,
        doctor.register,
        breaker.register,
    ]
