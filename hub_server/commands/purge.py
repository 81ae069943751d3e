"""``hub-server purge``: roll up flow windows and delete what has aged out, now (the hub also does it daily)."""

from __future__ import annotations

import argparse

from hub_server.commands._common import add_config_argument, open_store
from hub_server.records.retention import Retention

NAME = "purge"
HELP = "Apply the retention rules now: roll up flows, delete old raw windows, residents' data and alarms"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def run(args: argparse.Namespace) -> int:
    config, db = open_store(args)
    report = Retention(db, config).purge()
    print(
        f"kept raw flow windows {config.retention.raw_days} days, hourly totals {config.retention.hourly_days} days, "
        f"residents' data {config.logistics.personal_data_days} days after collection"
    )
    for line in report.lines():
        print(line)
    return 0
