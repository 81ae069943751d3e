"""``hub-server device add|revoke|list``: per-device broker credentials, written for the technician to copy."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from hub_protocol.cli import CliError
from hub_server import devices
from hub_server.commands._common import add_config_argument, cli_actor, open_store
from hub_server.store import provisioning
from hub_server.store.provisioning import ProvisioningError

NAME = "device"
HELP = "Provision a device (own broker password and ACL), revoke it, or list devices with their status"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create the device's broker user; write its agent config and credential file")
    add.add_argument("device", help="device id: a-z 0-9 -, also its broker user name")
    add.add_argument("--site", required=True, help="site (street or hub) id")
    revoke = sub.add_parser("revoke", help="cut the device off the broker at once")
    revoke.add_argument("device")
    sub.add_parser("list", help="devices with status (active/revoked) and last message seen")


def run(args: argparse.Namespace) -> int:
    config, db = open_store(args)
    try:
        match args.action:
            case "add":
                done = devices.add_device(db, config, args.device, args.site, cli_actor())
                print(f"device {done.device.device} at {done.device.site} provisioned.")
                print(f"copy to the device: {done.config_path} and {done.credential_path} (secret, mode 600)")
                _reload_note(done.reloaded)
            case "revoke":
                record, reloaded = devices.revoke_device(db, config, args.device, cli_actor())
                print(f"device {record.device} revoked at {record.revoked_at}")
                _reload_note(reloaded)
            case "list":
                last_seen = devices.last_seen(db.conn)
                now = datetime.now(UTC)
                for item in provisioning.list_all(db.conn):
                    state = "revoked" if item.revoked_at else "active"
                    seen = last_seen.get(item.device)
                    seen_text = f"last seen {int((now - seen).total_seconds())} s ago" if seen else "never seen"
                    print(f"{item.device:<24} {item.site:<24} {state:<8} {seen_text}")
    except ProvisioningError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0


def _reload_note(reloaded: bool) -> None:
    if not reloaded:
        print("note: no reload_command or pid_file configured: reload Mosquitto now (systemctl reload mosquitto)")
