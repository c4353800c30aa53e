"""How an ops command runs: find the stack, run, and turn every expected failure into one line.

An ops command is ``run(args, stack, out) -> exit code``; :func:`ops_command` wraps it for the parser.
Failures people can act on (no stack, unknown pipeline, no credentials, endpoint not reachable, an AWS
error) print one line on stderr and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from rich.console import Console

from filepipe.cli.ops.stack import OpsError, Stack, find_stack

EXIT_FAILED: Final = 1
"""The command ran and found something wrong (a failed check, an AWS error)."""
EXIT_UNUSABLE: Final = 2
"""The command could not run: no stack, unknown pipeline, no credentials, bad arguments."""


class Output:
    """What a command prints: rich for people, or one JSON document for scripts (``--json``)."""

    def __init__(self, as_json: bool, console: Console | None = None) -> None:
        self.as_json = as_json
        self.console = console or Console(highlight=False)
        self.progress = Console(stderr=True, highlight=False)
        """Spinners and progress bars go to stderr: stdout stays the result (and valid JSON)."""

    def document(self, value: Any) -> None:
        """The command's result as JSON on stdout (nothing else is printed in ``--json`` mode)."""
        sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
        sys.stdout.flush()


OpsRun = Callable[[argparse.Namespace, Stack, Output], int]


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def ops_command(run: OpsRun) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        out = Output(bool(getattr(args, "json", False)))
        try:
            stack = find_stack(args)
            return run(args, stack, out)
        except OpsError as error:
            _fail(str(error))
            return EXIT_UNUSABLE
        except NoCredentialsError:
            _fail("no AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
            return EXIT_UNUSABLE
        except EndpointConnectionError as error:
            _fail(f"cannot reach {error.kwargs.get('endpoint_url', 'the endpoint')}: is it running?")
            return EXIT_UNUSABLE
        except ClientError as error:
            details = error.response.get("Error", {})
            _fail(f"{error.operation_name}: {details.get('Code', 'error')}: {details.get('Message', '')}")
            return EXIT_FAILED
        except BotoCoreError as error:
            _fail(str(error))
            return EXIT_FAILED
        except KeyboardInterrupt:
            _fail("interrupted")
            return 130

    return command


def _fail(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"[bold red]filepipe:[/] {message}", soft_wrap=True)
