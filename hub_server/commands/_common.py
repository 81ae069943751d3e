"""What the operator commands share: the config option, opening the store, the CLI actor, reading a password."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from hub_protocol.cli import CliError
from hub_protocol.secrets import read_secret
from hub_server.config import HubConfig, load_hub_config
from hub_server.store.db import Database, StoreError
from hub_server.store.engine import DatabaseError

DEFAULT_CONFIG = Path(os.environ.get("HUB_SERVER_CONFIG", "/etc/hub-server/hub.toml"))


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"hub config (TOML); default {DEFAULT_CONFIG} or $HUB_SERVER_CONFIG",
    )


def open_store(args: argparse.Namespace) -> tuple[HubConfig, Database]:
    config = load_hub_config(args.config)
    return config, open_database(config)


def open_database(config: HubConfig) -> Database:
    """The store, or a CliError naming ``store.path`` (a folder, a device file, a damaged database...) or
    ``store.url`` (no server there, refused login...)."""
    key = "store.url" if config.store.url is not None else "store.path"
    try:
        return Database(config.store.location)
    except (DatabaseError, StoreError) as exc:
        raise CliError(f"{key} {str(config.store.location)!r}: cannot open the database: {exc}") from None


def cli_actor() -> str:
    """Audit name of whoever runs the command on the hub."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


def read_new_password(password_file: str | None) -> str:
    """From a 0600 file, or typed twice at a terminal; never from the command line (it would show in ps)."""
    if password_file is not None:
        return read_secret(password_file, "--password-file")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for the password: use --password-file FILE (mode 600)")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CliError("the passwords differ")
    return first
