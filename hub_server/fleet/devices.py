"""Device provisioning: each device gets its own broker account, password and ACL; revoking cuts it off at once.

The accounts are changed through ``hub_server.fleet.broker_accounts``: Mosquitto's password file and ACL with a
reload, or its dynamic-security plugin over MQTT (``provisioning.broker_accounts``).

For the technician, ``add`` writes ``<output_dir>/<device>/agent.toml`` and ``mqtt-password`` (0600) to copy
to the Pi; the password is shown nowhere else and the hub does not keep it.

A change happens whole or not at all: what can be checked (the CA file, the password tool, the plugin's admin
session) is checked before anything is written, and when a later step fails (a full or read-only disk, a
refused reload, a refused plugin command) the database transaction rolls back and the broker's accounts and
the technician's folder are put back as they were. Expected problems become a ``ProvisioningError`` that
says what failed and where.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from hub_protocol import tomlwrite
from hub_protocol.atomic import write_atomic
from hub_protocol.topics import check_identifier
from hub_server.accounts import audit
from hub_server.config import HubConfig, ProvisioningConfig
from hub_server.fleet.broker import CLI_CLIENT_ID_PREFIX
from hub_server.fleet.broker_accounts import Reloader, broker_accounts, provisioning_settings
from hub_server.fleet.provisioning_files import Undo, io_step
from hub_server.store import provisioning
from hub_server.store.db import Database
from hub_server.store.engine import Connection
from hub_server.store.provisioning import ProvisionedDevice, ProvisioningError

CREDENTIAL_NAME = "mqtt-password"
"""File name of the device's password: also the systemd credential name the agent's config refers to."""

AGENT_CA_PATH = "/etc/edge-agent/ca.pem"
"""Where the install script puts ``ca.pem`` on the device."""


@dataclass(frozen=True, slots=True)
class Provisioned:
    device: ProvisionedDevice
    folder: Path
    config_path: Path
    credential_path: Path
    reloaded: bool


def _read_ca(settings: ProvisioningConfig) -> str | None:
    if settings.agent_ca_file is None:
        return None
    try:
        return settings.agent_ca_file.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not an ASCII PEM file"
        raise ProvisioningError(
            f"cannot read the agents' CA file {settings.agent_ca_file} (provisioning.agent_ca_file): {reason}"
        ) from None


def accounts_method(config: HubConfig) -> str:
    """``files`` or ``dynsec``: how this hub changes the broker's accounts."""
    return provisioning_settings(config).broker_accounts


def sync_broker(config: HubConfig, conn: Connection, reloader: Reloader | None = None) -> bool:
    """Make the broker's accounts and ACLs match the database; True when the change is in effect."""
    with broker_accounts(config, reloader) as accounts:
        return accounts.sync(conn)


def agent_config_text(config: HubConfig, device: ProvisionedDevice) -> str:
    settings = provisioning_settings(config)
    header = (
        f"# Edge agent config for {device.device} at {device.site}, written by `hub-server device add`.\n"
        "# Copy it to the device with the file mqtt-password beside it (see docs/deploy.md).\n"
    )
    return header + tomlwrite.dumps(
        {
            "config_version": 1,
            "device": {"id": device.device, "site": device.site},
            "mqtt": {
                "host": settings.agent_mqtt_host,
                "port": settings.agent_mqtt_port,
                "prefix": config.mqtt.prefix,
                "username": device.username,
                "password_file": CREDENTIAL_NAME,
                "tls": settings.agent_tls,
                "ca_file": AGENT_CA_PATH if settings.agent_ca_file else None,
            },
        }
    )


def add_device(
    db: Database, config: HubConfig, device: str, site: str, actor: str, reloader: Reloader | None = None
) -> Provisioned:
    """Create the device's broker account with a fresh random password; write its files for the technician."""
    settings = provisioning_settings(config)
    check_identifier(device, "device")
    check_identifier(site, "site")
    if device == config.mqtt.username:
        raise ProvisioningError(f"{device!r} is the hub's own broker user")
    if device == config.ingest.client_id or device.startswith(CLI_CLIENT_ID_PREFIX):
        # On the devices' listener the broker uses the user name as client id: this one would push the hub off.
        raise ProvisioningError(f"{device!r} is one of the hub's own MQTT client ids: choose another device name")
    # Checked before anything changes: a missing CA file, password tool or plugin must not leave half a device.
    ca_text = _read_ca(settings)
    with broker_accounts(config, reloader) as accounts:
        if device in accounts.reserved_names():
            raise ProvisioningError(f"{device!r} is the broker's account administrator: choose another device name")
        password = secrets.token_urlsafe(24)
        folder = settings.output_dir / device
        credential = folder / CREDENTIAL_NAME
        config_path = folder / "agent.toml"
        undo = Undo()
        for path in (credential, config_path, folder / "ca.pem"):
            undo.keep(path)
        try:
            with db.write() as conn:
                record = provisioning.add(conn, device, site, device, actor)
                audit.record(conn, actor, "device.add", f"device:{device}", {"site": site})
                undo.folder(settings.output_dir)
                undo.folder(folder)
                with io_step(f"write the device's files in {folder}"):
                    write_atomic(credential, password + "\n", 0o600, keep_mode=True)
                    write_atomic(config_path, agent_config_text(config, record), 0o644, keep_mode=True)
                    if ca_text is not None:
                        write_atomic(folder / "ca.pem", ca_text, 0o644, keep_mode=True)
                # Last, inside the transaction: if the broker refuses, the device is not recorded either.
                reloaded = accounts.add(conn, record, password, undo)
        except BaseException:
            undo.restore()
            raise
    return Provisioned(record, folder, config_path, credential, reloaded)


def revoke_device(
    db: Database, config: HubConfig, device: str, actor: str, reloader: Reloader | None = None
) -> tuple[ProvisionedDevice, bool]:
    """Take the device's broker account away: a connected device is dropped and refused from now on."""
    with broker_accounts(config, reloader) as accounts:
        undo = Undo()
        try:
            with db.write() as conn:
                record = provisioning.revoke(conn, device)
                audit.record(conn, actor, "device.revoke", f"device:{device}", {"site": record.site})
                reloaded = accounts.revoke(conn, record, undo)
        except BaseException:
            undo.restore()
            raise
        accounts.finish_revoke(record)
    return record, reloaded
