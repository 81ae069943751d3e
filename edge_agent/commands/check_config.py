"""``edge-agent check-config FILE``: OK, or every problem with its key path."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.config import load_agent_config

NAME = "check-config"
HELP = "Validate an agent config file: prints OK or one line per problem with its key path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="agent config (TOML)")


def run(args: argparse.Namespace) -> int:
    config = load_agent_config(args.file)
    for warning in config.counting.lines_outside_frame() if config.counting else []:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    print("OK")
    return 0
