"""``hub-server device add|revoke|list|push-config|reload-config``: per-device broker credentials, written for
the technician to copy; config changes sent over the broker (the device tries a new config and rolls back)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from hub_protocol.cli import CliError, seconds_in
from hub_protocol.commands import CommandBase
from hub_server.accounts import audit
from hub_server.api.registry import utc_text
from hub_server.commands._common import add_config_argument, cli_actor, open_store
from hub_server.config import HubConfig
from hub_server.fleet import device_config, devices
from hub_server.fleet.broker_accounts import dynsec_initial_file
from hub_server.store import readings
from hub_server.store.db import Database

NAME = "device"
HELP = "Provision a device (own broker password and ACL), revoke it, list devices, push or reload its config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create the device's broker user; write its agent config and credential file")
    add.add_argument("device", help="device id: a-z 0-9 -, also its broker user name")
    add.add_argument("--site", required=True, help="site (street or hub) id")
    revoke = sub.add_parser("revoke", help="cut the device off the broker at once")
    revoke.add_argument("device")
    sub.add_parser("list", help="devices with status (active/revoked) and last message seen")
    sub.add_parser(
        "sync-acl", help="make the broker's accounts and ACLs match the database (after an upgrade adds a channel)"
    )
    init = sub.add_parser(
        "dynsec-init", help="write the dynamic-security plugin's first file, holding only its admin account"
    )
    init.add_argument("file", type=Path, help="the plugin's plugin_opt_config_file (never overwritten)")
    init.add_argument(
        "--import-passwd",
        type=Path,
        metavar="PASSWD",
        help="move the hub's and the active devices' accounts over from this Mosquitto password file",
    )
    push = sub.add_parser("push-config", help="send a new agent config; the device tries it and rolls back if bad")
    push.add_argument("device")
    push.add_argument("file", type=Path, help="the complete agent config (TOML)")
    push.add_argument(
        "--wait", type=seconds_in(0, 3600), default=0, metavar="S", help="wait up to S seconds for the answer"
    )
    reload = sub.add_parser("reload-config", help="make the agent re-read its config file")
    reload.add_argument("device")
    reload.add_argument(
        "--wait", type=seconds_in(0, 3600), default=0, metavar="S", help="wait up to S seconds for the answer"
    )


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
                assert record.revoked_at is not None  # revoke() sets it
                print(f"device {record.device} revoked at {utc_text(record.revoked_at)}")
                _reload_note(reloaded)
            case "list":
                now = datetime.now(UTC)
                for row in readings.list_devices(db.conn):
                    state = "revoked" if row.revoked else "active" if row.provisioned else "unmanaged"
                    online = "online" if row.online else "offline"
                    seen = (
                        f"last seen {int((now - row.last_seen).total_seconds())} s ago"
                        if row.last_seen
                        else "never seen"
                    )
                    print(f"{row.device:<24} {row.site:<24} {state:<9} {online:<7} {seen}")
            case "sync-acl":
                _reload_note(devices.sync_broker(config, db.conn))
                what = "broker ACL rewritten" if devices.accounts_method(config) == "files" else "broker roles synced"
                print(f"{what}: every active device may publish on every channel of this version")
            case "dynsec-init":
                moved = dynsec_initial_file(config, args.file, db.conn, args.import_passwd)
                print(f"wrote {args.file} with the admin account{' and ' if moved else ''}{', '.join(moved)}")
                print("give it to the mosquitto user (chown mosquitto:mosquitto), load the plugin, restart Mosquitto,")
                print("then run `hub-server device sync-acl` (it also creates the hub's own account if missing)")
            case "push-config" | "reload-config":
                _send_command(args, config, db)
    except ValueError as exc:  # ProvisioningError is one, as are bad ids and settings
        raise CliError(str(exc)) from None
    return 0


def _send_command(args: argparse.Namespace, config: HubConfig, db: Database) -> None:
    known = readings.get_device(db.conn, args.device)
    if known is None:
        raise CliError(f"device {args.device!r} is unknown to the hub")
    actor = cli_actor()
    if args.action == "push-config":
        try:
            text = args.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {args.file}: {exc}") from None
        try:
            command: CommandBase = device_config.push_command(args.device, text, actor)
        except device_config.ConfigPushError as exc:
            raise CliError(str(exc)) from None
    else:
        command = device_config.reload_command(args.device, actor)
    try:
        device_config.publish_once(config, known.site, command)
    except ConnectionError as exc:
        raise CliError(str(exc)) from None
    with db.write() as conn:
        audit.record(conn, actor, f"device.{args.action}", f"device:{args.device}", device_config.audit_detail(command))
    print(f"sent {args.action} {command.id} to {args.device} (expires {command.expires_at:%H:%M:%S} UTC)")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        found = device_config.outcome(db.conn, args.device, command.id)
        if found.status is not None:
            print(f"{args.device} answered {found.status}: {found.detail}")
            if found.status != "done":
                raise CliError(f"the device did not apply it ({found.status})")
            return
        time.sleep(0.5)
    if args.wait:
        raise CliError(f"no answer within {args.wait:g} s (is the device online? see hub-server device list)")


def _reload_note(reloaded: bool) -> None:
    if not reloaded:
        print("note: no reload_command or pid_file configured: reload Mosquitto now (systemctl reload mosquitto)")
