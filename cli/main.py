"""The ``filepipe`` command: dispatches to command groups (``local``, ``graph`` and the ops commands).

argparse keeps the CLI dependency-free beyond rich; each group registers its own sub-commands, so
adding a group is one module and one line in :data:`COMMAND_GROUPS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from filepipe.cli import graph, local_commands, ops

COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    local_commands.register,
    graph.register,
    *ops.commands(),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filepipe", description="Event-driven file-processing pipelines on AWS, and locally."
    )
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True)
    for register in COMMAND_GROUPS:
        register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
