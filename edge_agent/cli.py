"""The ``edge-agent`` command: each sub-command lives in ``edge_agent/commands/``."""

from __future__ import annotations

from edge_agent import __version__
from edge_agent.commands import calibrate, check_config, count, doctor, evaluate, run, setup, validate
from hub_protocol.cli import run_cli

COMMANDS = [check_config, run, count, evaluate, calibrate, doctor, setup, validate]


def main(argv: list[str] | None = None) -> int:
    return run_cli("edge-agent", "Neighbourhood hub edge agent", __version__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
