"""``hub-server serve``: run the hub (API, pages, ingest and background tasks) until stopped."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import IO

from hub_protocol.cli import CliError
from hub_server import app
from hub_server.commands._common import add_config_argument, open_database
from hub_server.config import load_hub_config
from hub_server.store.singleton import StoreInUse, lock_sqlite_store

NAME = "serve"
HELP = "Run the hub: web server, API, MQTT ingest and background tasks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    database = open_database(config)  # before logging that it listens: a bad store.path is one clear line
    lock = _one_instance(config.store.path) if config.store.url is None else None
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).info("hub listening on http://%s:%d", config.http.host, config.http.port)
    try:
        app.run(config, database=database)
    except OSError as exc:  # typically the port is taken
        raise CliError(f"cannot serve on {config.http.host}:{config.http.port}: {exc.strerror or exc}") from None
    finally:
        if lock is not None:
            lock.close()
    return 0


def _one_instance(path: Path) -> IO[str]:
    """The SQLite store's one-instance lock: the hub's jobs and memory assume it is the only one serving."""
    try:
        return lock_sqlite_store(path)
    except StoreInUse as exc:
        raise CliError(
            f"store.path {str(path)!r} is {exc}: SQLite keeps one instance; for several, use PostgreSQL (store.url)"
        ) from None
    except OSError as exc:
        raise CliError(f"store.path {str(path)!r}: cannot lock it: {exc.strerror or exc}") from None
