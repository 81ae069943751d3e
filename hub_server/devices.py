"""Device provisioning: each device gets its own broker user, password and ACL; revoking cuts it off at once.

The hub maintains Mosquitto's password file (through ``mosquitto_passwd``, so only hashes are stored) and
writes the ACL file whole from the database at every change: the hub's own block, then one block per active
device (``hub_protocol.topics.device_acl``). Then it makes Mosquitto re-read both (a configured reload
command, or SIGHUP to the pid in ``pid_file``), which also disconnects a revoked device that is connected.

For the technician, ``add`` writes ``<output_dir>/<device>/agent.toml`` and ``mqtt-password`` (0600) to copy
to the Pi; the password is shown nowhere else and the hub does not keep it.

A change happens whole or not at all: what can be checked (the CA file, the password tool) is checked before
anything is written, and when a later step fails (a full or read-only disk, a refused reload) the database
transaction rolls back and the broker's files and the technician's folder are put back as they were. Expected
I/O problems become a ``ProvisioningError`` that says what failed and where.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hub_protocol import tomlwrite
from hub_protocol.secrets import read_secret
from hub_protocol.topics import check_identifier, device_acl, hub_acl
from hub_server import audit
from hub_server.broker import CLI_CLIENT_ID_PREFIX, BrokerError, find_binary, passwd_command
from hub_server.config import HubConfig, ProvisioningConfig
from hub_server.store import provisioning
from hub_server.store.db import Database
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


def _settings(config: HubConfig) -> ProvisioningConfig:
    if config.provisioning is None:
        raise ProvisioningError("the hub config has no [provisioning] section: device credentials cannot be managed")
    return config.provisioning


def _write_atomic(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _io(what: str) -> Iterator[None]:
    """An expected I/O failure of ``what`` as a one-line ``ProvisioningError`` naming the file."""
    try:
        yield
    except (OSError, UnicodeError, subprocess.SubprocessError) as exc:
        if isinstance(exc, OSError) and exc.strerror:
            where = f" {exc.filename}" if exc.filename else ""
            reason = f"{exc.strerror}{where}"
        else:
            reason = str(exc) or type(exc).__name__
        raise ProvisioningError(f"cannot {what}: {reason}") from None


@dataclass(slots=True)
class _Undo:
    """Files as they were before a change, put back if it fails; folders it created, removed again."""

    files: dict[Path, bytes | None] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)

    def keep(self, path: Path) -> None:
        if path not in self.files:
            with _io(f"read {path}"):
                self.files[path] = path.read_bytes() if path.exists() else None

    def folder(self, path: Path) -> None:
        """Create ``path`` (private) and remember to remove it, unless it was there already."""
        if not path.exists():
            with _io("create the folder for the device's files"):
                path.mkdir(parents=True, mode=0o700)
            self.folders.append(path)

    def restore(self) -> None:
        for path, content in self.files.items():
            try:
                if content is None:
                    path.unlink(missing_ok=True)
                elif not path.exists() or path.read_bytes() != content:
                    _write_atomic_bytes(path, content, 0o600)
            except OSError as exc:
                raise ProvisioningError(f"cannot put back {path} after a failed change: {exc}") from None
        for folder in reversed(self.folders):
            shutil.rmtree(folder, ignore_errors=True)


def _write_atomic_bytes(path: Path, data: bytes, mode: int) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else mode
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _passwd(settings: ProvisioningConfig, user: str, password: str | None) -> None:
    """Set ``user``'s password (through standard input, never argv), or delete the user when it is None."""
    if not settings.passwd_file.exists():
        with _io(f"create the broker's password file {settings.passwd_file}"):
            _write_atomic(settings.passwd_file, "", 0o600)
    try:
        if password is None:
            args, stdin = [find_binary("mosquitto_passwd"), "-D", str(settings.passwd_file), user], None
        else:
            args, stdin = passwd_command(settings.passwd_file, user, password)
    except BrokerError as exc:
        raise ProvisioningError(str(exc)) from None
    with _io(f"run mosquitto_passwd on {settings.passwd_file}"):
        result = subprocess.run(  # noqa: S603 - fixed tool, arguments are validated ids
            args, input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    if result.returncode != 0:
        raise ProvisioningError(f"mosquitto_passwd failed: {(result.stderr or result.stdout).strip()}")


def _passwd_users(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with _io(f"read the broker's password file {path}"):
        text = path.read_text(encoding="utf-8")
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def acl_text(config: HubConfig, devices: list[ProvisionedDevice]) -> str:
    lines = [
        "# Written by hub-server at every device change: edits here are overwritten.",
        *hub_acl(config.mqtt.prefix, config.mqtt.username),
    ]
    for device in devices:
        if device.active:
            lines += ["", *device_acl(config.mqtt.prefix, device.site, device.device, device.username)]
    return "\n".join(lines) + "\n"


Reloader = Callable[[], None]
"""Makes the broker re-read its password file and ACL (in-process brokers of the demo and the tests)."""


def sync_broker(config: HubConfig, conn: sqlite3.Connection, reloader: Reloader | None = None) -> bool:
    """Write the ACL from the database, make sure the hub's own user exists, reload; True when reloaded."""
    settings = _settings(config)
    if config.mqtt.username not in _passwd_users(settings.passwd_file):
        hub_password = read_secret(config.mqtt.password_file, "mqtt.password_file")
        _passwd(settings, config.mqtt.username, hub_password)
    with _io(f"write the broker's ACL file {settings.acl_file}"):
        _write_atomic(settings.acl_file, acl_text(config, provisioning.list_all(conn)), 0o640)
    if reloader is not None:
        reloader()
        return True
    return reload_broker(settings)


def reload_broker(settings: ProvisioningConfig) -> bool:
    if settings.reload_command:
        with _io(f"run the broker reload command {settings.reload_command[0]}"):
            result = subprocess.run(  # noqa: S603 - the operator's configured command
                settings.reload_command, capture_output=True, text=True, timeout=60, check=False
            )
        if result.returncode != 0:
            raise ProvisioningError(f"broker reload command failed: {(result.stderr or result.stdout).strip()}")
        return True
    if settings.pid_file is not None:
        try:
            pid = int(settings.pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            raise ProvisioningError(f"cannot signal the broker through {settings.pid_file}: {exc}") from None
        return True
    return False


def agent_config_text(config: HubConfig, device: ProvisionedDevice) -> str:
    settings = _settings(config)
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
    """Create the device's broker user with a fresh random password; write its files; reload the broker."""
    settings = _settings(config)
    check_identifier(device, "device")
    check_identifier(site, "site")
    if device == config.mqtt.username:
        raise ProvisioningError(f"{device!r} is the hub's own broker user")
    if device == config.ingest.client_id or device.startswith(CLI_CLIENT_ID_PREFIX):
        # On the devices' listener the broker uses the user name as client id: this one would push the hub off.
        raise ProvisioningError(f"{device!r} is one of the hub's own MQTT client ids: choose another device name")
    # Checked before anything changes: a missing CA file or password tool must not leave half a device.
    ca_text = _read_ca(settings)
    try:
        find_binary("mosquitto_passwd")
    except BrokerError as exc:
        raise ProvisioningError(str(exc)) from None
    password = secrets.token_urlsafe(24)
    folder = settings.output_dir / device
    credential = folder / CREDENTIAL_NAME
    config_path = folder / "agent.toml"
    undo = _Undo()
    for path in (settings.passwd_file, settings.acl_file, credential, config_path, folder / "ca.pem"):
        undo.keep(path)
    try:
        with db.write() as conn:
            record = provisioning.add(conn, device, site, device, actor)
            audit.record(conn, actor, "device.add", f"device:{device}", {"site": site})
            # Inside the transaction: if the broker files cannot be written, the device is not recorded either.
            _passwd(settings, record.username, password)
            undo.folder(settings.output_dir)
            undo.folder(folder)
            with _io(f"write the device's files in {folder}"):
                _write_atomic(credential, password + "\n", 0o600)
                _write_atomic(config_path, agent_config_text(config, record), 0o644)
                if ca_text is not None:
                    _write_atomic(folder / "ca.pem", ca_text, 0o644)
            reloaded = sync_broker(config, conn, reloader)
    except BaseException:
        undo.restore()
        raise
    return Provisioned(record, folder, config_path, credential, reloaded)


def revoke_device(
    db: Database, config: HubConfig, device: str, actor: str, reloader: Reloader | None = None
) -> tuple[ProvisionedDevice, bool]:
    """Remove the device's broker user and ACL block and reload: it is refused from now on."""
    settings = _settings(config)
    undo = _Undo()
    undo.keep(settings.passwd_file)
    undo.keep(settings.acl_file)
    try:
        with db.write() as conn:
            record = provisioning.revoke(conn, device)
            audit.record(conn, actor, "device.revoke", f"device:{device}", {"site": record.site})
            if record.username in _passwd_users(settings.passwd_file):
                _passwd(settings, record.username, None)
            reloaded = sync_broker(config, conn, reloader)
    except BaseException:
        undo.restore()
        raise
    return record, reloaded
