"""The ``hub-server`` command: each sub-command lives in ``hub_server/commands/``."""

from __future__ import annotations

from hub_protocol.cli import run_cli
from hub_server import __version__
from hub_server.commands import check_config, delivery, demo, device, purge, serve, user

COMMANDS = [demo, check_config, serve, user, device, delivery, purge]


def main(argv: list[str] | None = None) -> int:
    return run_cli("hub-server", "Neighbourhood hub server", __version__, COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
