"""The frame both command-line programs share: sub-commands in modules, clear errors, no tracebacks for input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from hub_protocol.errors import ConfigError

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A problem with the user's input or environment, shown as one plain line and exit status 1."""


def run_cli(prog: str, description: str, version: str, commands: Sequence[ModuleType], argv: list[str] | None) -> int:
    """Each module in ``commands`` has ``NAME``, ``HELP`` and ``add_arguments(parser)`` and ``run(args) -> int``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in commands:
        command_parser = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(handler=module.run)
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 1
    except CliError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
