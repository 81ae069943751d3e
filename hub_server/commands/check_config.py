"""``hub-server check-config FILE``: OK, or every problem with its key path."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub_server.config import load_hub_config

NAME = "check-config"
HELP = "Validate a hub config file: prints OK or one line per problem with its key path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="hub config (TOML)")


def run(args: argparse.Namespace) -> int:
    load_hub_config(args.file)
    print("OK")
    return 0
