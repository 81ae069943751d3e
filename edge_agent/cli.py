"""The ``edge-agent`` command: each sub-command lives in ``edge_agent/commands/``.

Only the chosen sub-command's module is imported: each pulls in its own libraries (the pydantic configs,
the transport, network probes), and ``edge-agent count`` on a Pi should not carry the others' memory
(about 20 MiB of peak memory, docs/counting.md). Help, ``--version`` and unknown names load them all.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from edge_agent import __version__
from hub_protocol.cli import run_cli

# The name typed -> the module in edge_agent/commands/ (whose NAME is that name), in the order help lists them.
COMMAND_MODULES = {
    "check-config": "check_config",
    "run": "run",
    "count": "count",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
    "doctor": "doctor",
    "setup": "setup",
    "validate": "validate",
}


def commands(argv: list[str] | None = None) -> list[ModuleType]:
    """The modules the parser needs for ``argv``: the named sub-command's only, or all of them."""
    # The top-level parser has options without values only (-h, --version): the first other word is the command.
    chosen = next((word for word in argv or [] if not word.startswith("-")), None)
    names = [chosen] if chosen in COMMAND_MODULES else list(COMMAND_MODULES)
    return [importlib.import_module(f"edge_agent.commands.{COMMAND_MODULES[name]}") for name in names]


def __getattr__(name: str) -> list[ModuleType]:
    if name == "COMMANDS":  # every sub-command module, as hub_server.cli.COMMANDS (imports them all)
        return commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_cli("edge-agent", "Neighbourhood hub edge agent", __version__, commands(argv), argv)


if __name__ == "__main__":
    raise SystemExit(main())
