"""The broker's accounts, changed one of two ways (``provisioning.broker_accounts``):

- ``files``: Mosquitto's password file (through ``mosquitto_passwd``, so only hashes are stored) and the ACL
  file, written whole from the database at every change (the hub's block, then one block per active device),
  then a reload (a configured command, or SIGHUP to the pid in ``pid_file``). The hub must run beside the
  broker. Mosquitto 2 checks every connected client against the re-read files, so a revoked device that is
  connected is dropped by the reload.
- ``dynsec``: Mosquitto's dynamic-security plugin, over MQTT as its own admin account, from any hub instance.
  A revoked device's account is disabled (which disconnects it at once) and, once the revocation is
  recorded, deleted.

Both give every account the same rights, from ``hub_protocol.topics``: a device writes its own channels and
reads its own ``cmd`` and ``ack``, nothing else. Each change registers how to undo it in the caller's ``Undo``,
which puts everything back when a later step or the database transaction fails.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from hub_protocol.atomic import write_atomic
from hub_protocol.secrets import read_secret
from hub_protocol.topics import device_acl, hub_acl
from hub_server.config import DynsecConfig, HubConfig, ProvisioningConfig
from hub_server.fleet import dynsec
from hub_server.fleet.broker import CLI_CLIENT_ID_PREFIX, BrokerError, find_binary, passwd_command
from hub_server.fleet.provisioning_files import Undo, io_step
from hub_server.store import provisioning
from hub_server.store.engine import Connection
from hub_server.store.provisioning import ProvisionedDevice, ProvisioningError

log = logging.getLogger(__name__)

Reloader = Callable[[], None]
"""Makes the broker re-read its password file and ACL (in-process brokers of the demo and the tests)."""


class BrokerAccounts(Protocol):
    """Open it (``with``) before anything changes: what it needs (a tool, the plugin's answer) is checked then."""

    def __enter__(self) -> BrokerAccounts: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def reserved_names(self) -> set[str]:
        """Account names no device may take."""
        ...

    def add(self, conn: Connection, device: ProvisionedDevice, password: str, undo: Undo) -> bool:
        """Create the device's account inside the caller's transaction; True when it is in effect already."""
        ...

    def revoke(self, conn: Connection, device: ProvisionedDevice, undo: Undo) -> bool:
        """Cut the device off (a connected one too) inside the caller's transaction; True when in effect."""
        ...

    def finish_revoke(self, device: ProvisionedDevice) -> None:
        """After the revocation is recorded: remove what was kept only to undo it."""
        ...

    def sync(self, conn: Connection) -> bool:
        """Make the broker's accounts and ACLs match the database (the hub's account included)."""
        ...


def broker_accounts(config: HubConfig, reloader: Reloader | None = None) -> BrokerAccounts:
    settings = provisioning_settings(config)
    if settings.broker_accounts == "dynsec":
        assert settings.dynsec is not None  # the config's validation makes sure of it
        return DynsecAccounts(config, settings.dynsec)
    return FileAccounts(config, settings, reloader)


def provisioning_settings(config: HubConfig) -> ProvisioningConfig:
    if config.provisioning is None:
        raise ProvisioningError("the hub config has no [provisioning] section: device credentials cannot be managed")
    return config.provisioning


def _device_acl(config: HubConfig, device: ProvisionedDevice) -> list[str]:
    return device_acl(config.mqtt.prefix, device.site, device.device, device.username)


# --- password file, ACL file and reload ---------------------------------------------------------------------


def acl_text(config: HubConfig, devices: list[ProvisionedDevice]) -> str:
    lines = [
        "# Written by hub-server at every device change: edits here are overwritten.",
        *hub_acl(config.mqtt.prefix, config.mqtt.username),
    ]
    for device in devices:
        if device.active:
            lines += ["", *_device_acl(config, device)]
    return "\n".join(lines) + "\n"


def reload_broker(settings: ProvisioningConfig) -> bool:
    if settings.reload_command:
        with io_step(f"run the broker reload command {settings.reload_command[0]}"):
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


class FileAccounts:
    def __init__(self, config: HubConfig, settings: ProvisioningConfig, reloader: Reloader | None) -> None:
        self.config, self.settings, self.reloader = config, settings, reloader

    def __enter__(self) -> FileAccounts:
        try:
            find_binary("mosquitto_passwd")
        except BrokerError as exc:
            raise ProvisioningError(str(exc)) from None
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def reserved_names(self) -> set[str]:
        return set()

    def add(self, conn: Connection, device: ProvisionedDevice, password: str, undo: Undo) -> bool:
        undo.keep(self.settings.passwd_file)
        undo.keep(self.settings.acl_file)
        self._passwd(device.username, password)
        return self.sync(conn)

    def revoke(self, conn: Connection, device: ProvisionedDevice, undo: Undo) -> bool:
        undo.keep(self.settings.passwd_file)
        undo.keep(self.settings.acl_file)
        if device.username in self._users():
            self._passwd(device.username, None)
        return self.sync(conn)

    def finish_revoke(self, device: ProvisionedDevice) -> None:
        pass

    def sync(self, conn: Connection) -> bool:
        """Write the ACL from the database, make sure the hub's own user exists, reload; True when reloaded."""
        if self.config.mqtt.username not in self._users():
            self._passwd(self.config.mqtt.username, read_secret(self.config.mqtt.password_file, "mqtt.password_file"))
        with io_step(f"write the broker's ACL file {self.settings.acl_file}"):
            write_atomic(
                self.settings.acl_file, acl_text(self.config, provisioning.list_all(conn)), 0o640, keep_mode=True
            )
        if self.reloader is not None:
            self.reloader()
            return True
        return reload_broker(self.settings)

    def _passwd(self, user: str, password: str | None) -> None:
        """Set ``user``'s password (through standard input, never argv), or delete the user when it is None."""
        path = self.settings.passwd_file
        if not path.exists():
            with io_step(f"create the broker's password file {path}"):
                write_atomic(path, "", 0o600)
        try:
            if password is None:
                args, stdin = [find_binary("mosquitto_passwd"), "-D", str(path), user], None
            else:
                args, stdin = passwd_command(path, user, password)
        except BrokerError as exc:
            raise ProvisioningError(str(exc)) from None
        with io_step(f"run mosquitto_passwd on {path}"):
            result = subprocess.run(  # noqa: S603 - fixed tool, arguments are validated ids
                args, input=stdin, capture_output=True, text=True, timeout=30, check=False
            )
        if result.returncode != 0:
            raise ProvisioningError(f"mosquitto_passwd failed: {(result.stderr or result.stdout).strip()}")

    def _users(self) -> set[str]:
        path = self.settings.passwd_file
        if not path.exists():
            return set()
        with io_step(f"read the broker's password file {path}"):
            text = path.read_text(encoding="utf-8")
        return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


# --- the dynamic-security plugin ----------------------------------------------------------------------------


def _acl_key(entry: dict[str, Any]) -> tuple[str, str, bool]:
    return (str(entry.get("acltype")), str(entry.get("topic")), bool(entry.get("allow")))


class DynsecAccounts:
    """One admin session for the whole change; undo steps use it too."""

    def __init__(self, config: HubConfig, settings: DynsecConfig) -> None:
        self.config, self.settings = config, settings
        self._admin: dynsec.DynsecAdmin | None = None

    def __enter__(self) -> DynsecAccounts:
        try:
            password = read_secret(self.settings.admin_password_file, "provisioning.dynsec.admin_password_file")
        except ValueError as exc:
            raise ProvisioningError(str(exc)) from None
        mqtt = self.config.mqtt
        tls = mqtt.tls if self.settings.tls is None else self.settings.tls
        admin = dynsec.DynsecAdmin(
            self.settings.host or mqtt.host,
            self.settings.port or mqtt.port,
            self.settings.admin_username,
            password,
            client_id=f"{CLI_CLIENT_ID_PREFIX}{secrets.token_hex(6)}",
            tls=tls,
            ca_file=self.settings.ca_file or mqtt.ca_file,
            timeout=self.settings.timeout_s,
        )
        try:
            self._admin = admin.__enter__()
        except dynsec.DynsecError as exc:
            raise ProvisioningError(str(exc)) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    @property
    def admin(self) -> dynsec.DynsecAdmin:
        assert self._admin is not None, "open DynsecAccounts with 'with' first"
        return self._admin

    def _run(self, what: str, name: str, **arguments: Any) -> dict[str, Any]:
        try:
            return self.admin.command(name, **arguments)
        except dynsec.DynsecError as exc:
            raise ProvisioningError(f"cannot {what}: {exc}") from None

    def reserved_names(self) -> set[str]:
        return {self.settings.admin_username}

    def add(self, conn: Connection, device: ProvisionedDevice, password: str, undo: Undo) -> bool:
        self._ensure_hub()
        role = dynsec.role_name(device.username)
        acls = dynsec.acl_entries(_device_acl(self.config, device))
        what = f"create the broker account of {device.device}"
        self._run(what, "createRole", rolename=role, acls=acls)
        undo.step(f"the role {role}", lambda: self.admin.command("deleteRole", rolename=role))
        self._run(what, "createClient", username=device.username, password=password, roles=[{"rolename": role}])
        undo.step(
            f"the account {device.username}", lambda: self.admin.command("deleteClient", username=device.username)
        )
        return True

    def revoke(self, conn: Connection, device: ProvisionedDevice, undo: Undo) -> bool:
        if self._get_client(device.username) is None:
            return True  # nothing left to cut off (revoked before, or removed by hand)
        # Disabling disconnects the device at once and can be undone; deleting cannot (the password is gone).
        self._run(f"disable the broker account of {device.device}", "disableClient", username=device.username)
        undo.step(
            f"the account {device.username}", lambda: self.admin.command("enableClient", username=device.username)
        )
        return True

    def finish_revoke(self, device: ProvisionedDevice) -> None:
        try:
            self._delete(device.username)
        except ProvisioningError as exc:
            # Revoked and disabled already: the leftover account is refused; sync-acl removes it later.
            log.warning("device %s is revoked and its account disabled, but not deleted: %s", device.device, exc)

    def sync(self, conn: Connection) -> bool:
        self._ensure_hub()
        missing = []
        for device in provisioning.list_all(conn):
            if not device.active:
                self._delete(device.username)
                continue
            client = self._get_client(device.username)
            if client is None:
                missing.append(device.device)
                continue
            role = dynsec.role_name(device.username)
            self._set_role(role, dynsec.acl_entries(_device_acl(self.config, device)))
            self._client_has_role(client, device.username, role)
        if missing:
            raise ProvisioningError(
                f"active devices without a broker account (the plugin's file was replaced?): {', '.join(missing)};"
                " revoke them and add them again under new ids"
            )
        return True

    def _get_client(self, username: str) -> dict[str, Any] | None:
        try:
            return self.admin.get_client(username)
        except dynsec.DynsecError as exc:
            raise ProvisioningError(f"cannot look up the broker account {username}: {exc}") from None

    def _get_role(self, role: str) -> dict[str, Any] | None:
        try:
            return self.admin.get_role(role)
        except dynsec.DynsecError as exc:
            raise ProvisioningError(f"cannot look up the role {role}: {exc}") from None

    def _delete(self, username: str) -> None:
        if self._get_client(username) is not None:
            self._run(f"delete the broker account {username}", "deleteClient", username=username)
        role = dynsec.role_name(username)
        if self._get_role(role) is not None:
            self._run(f"delete the role {role}", "deleteRole", rolename=role)

    def _ensure_hub(self) -> None:
        """The hub's own account, with its password from mqtt.password_file, created when it is missing."""
        username = self.config.mqtt.username
        role = dynsec.role_name(username)
        self._set_role(role, dynsec.acl_entries(hub_acl(self.config.mqtt.prefix, username)))
        client = self._get_client(username)
        if client is None:
            try:
                password = read_secret(self.config.mqtt.password_file, "mqtt.password_file")
            except ValueError as exc:
                raise ProvisioningError(f"cannot create the hub's broker account: {exc}") from None
            self._run("create the hub's broker account", "createClient", username=username, password=password,
                      roles=[{"rolename": role}])  # fmt: skip
        else:
            self._client_has_role(client, username, role)

    def _set_role(self, role: str, wanted: list[dict[str, Any]]) -> None:
        """The role with exactly ``wanted`` ACLs: new ones added before stale ones go, so no right lapses."""
        found = self._get_role(role)
        if found is None:
            self._run(f"create the role {role}", "createRole", rolename=role, acls=wanted)
            return
        have = {_acl_key(entry) for entry in found.get("acls", []) if isinstance(entry, dict)}
        want = {_acl_key(entry) for entry in wanted}
        for acltype, topic, allow in sorted(want - have):
            self._run(f"update the role {role}", "addRoleACL", rolename=role, acltype=acltype, topic=topic, allow=allow)
        for acltype, topic, _ in sorted(have - want):
            self._run(f"update the role {role}", "removeRoleACL", rolename=role, acltype=acltype, topic=topic)

    def _client_has_role(self, client: dict[str, Any], username: str, role: str) -> None:
        """Give ``username`` (the plugin's ``client`` object, looked up already) its role if it lacks it."""
        names = {r.get("rolename") for r in client.get("roles", []) if isinstance(r, dict)}
        if role not in names:
            self._run(f"give {username} its role", "addClientRole", username=username, rolename=role)


def dynsec_initial_file(config: HubConfig, path: Path, conn: Connection, passwd_file: Path | None = None) -> list[str]:
    """Write the plugin's first file: the admin account (its password from its secret file) and, from the
    file method's ``passwd_file``, the hub's account and every active device's with their passwords unchanged
    (roles from ``hub_protocol.topics``). Returns the accounts moved over."""
    settings = provisioning_settings(config)
    if settings.dynsec is None:
        raise ProvisioningError('dynsec-init needs broker_accounts = "dynsec" and a [provisioning.dynsec] section')
    if path.exists():
        raise ProvisioningError(f"{path} exists already: the plugin's accounts are never overwritten")
    password = read_secret(settings.dynsec.admin_password_file, "provisioning.dynsec.admin_password_file")
    data = dynsec.initial_config(settings.dynsec.admin_username, password)
    moved: list[str] = []
    if passwd_file is not None:
        with io_step(f"read the broker's password file {passwd_file}"):
            hashes = dynsec.passwd_hashes(passwd_file.read_text(encoding="utf-8"), str(passwd_file))
        accounts = {config.mqtt.username: hub_acl(config.mqtt.prefix, config.mqtt.username)}
        accounts |= {d.username: _device_acl(config, d) for d in provisioning.list_all(conn) if d.active}
        for username, lines in accounts.items():
            if username not in hashes:
                continue
            role = dynsec.role_name(username)
            data["roles"].append({"rolename": role, "acls": dynsec.acl_entries(lines)})
            data["clients"].append({"username": username, **hashes[username], "roles": [{"rolename": role}]})
            moved.append(username)
    with io_step(f"write {path}"):
        write_atomic(path, json.dumps(data, indent=1), 0o600)
    return moved
