"""The frame both command-line programs share: sub-commands in modules, clear errors, no tracebacks for input."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from hub_protocol.errors import ConfigError

Handler = Callable[[argparse.Namespace], int]


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (an id beyond 64 bits is a usage error, not an
    overflow deep in the database)."""

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low} to {high}, got {text[:40]}")
        return value

    return whole_number


def seconds_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds from ``low`` to ``high`` (not nan, not inf)."""

    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text[:40]!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"expected {low:g} to {high:g} seconds, got {text[:40]}")
        return value

    return seconds


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
