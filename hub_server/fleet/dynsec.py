"""Mosquitto's dynamic-security plugin: broker accounts changed over MQTT, from any hub instance, no files.

The plugin (``mosquitto_dynamic_security.so``, shipped with Mosquitto 2) keeps clients, roles and ACLs in its
own JSON file and takes commands as JSON published on ``$CONTROL/dynamic-security/v1`` by an admin account;
it answers each on ``.../response`` with the command's ``correlationData``. Deleting or disabling a client
disconnects it at once.

``DynsecAdmin`` is that admin session: one command at a time, each waited for with a timeout, a refused one
raised as ``DynsecError`` with the plugin's reason. Roles are made from the same ACL lines the file method
writes (``hub_protocol.topics``), so both methods give a device exactly the same rights.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub_protocol.guard import guarded

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

PLUGIN_NAME = "mosquitto_dynamic_security.so"
_PLUGIN_GLOBS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                 "/usr/local/lib/mosquitto_dynamic_security.so")  # fmt: skip

_SALT_BYTES = 12  # what the plugin of Mosquitto 2.0 stores and expects back when it loads its file
_HASH_BYTES = 64
ADMIN_ITERATIONS = 100_000
"""PBKDF2 rounds of the admin's hash in a generated file."""
CLIENT_ITERATIONS = 101
"""The rounds the plugin of Mosquitto 2.0 uses for the clients it creates itself."""


class DynsecError(RuntimeError):
    """The plugin refused a command, did not answer in time, or the admin session could not be opened."""


def find_plugin() -> Path | None:
    """The plugin's shared library where Debian (and a source install) put it, or None."""
    for pattern in _PLUGIN_GLOBS:
        for found in sorted(glob.glob(pattern)):
            return Path(found)
    return None


def password_hash(password: str, iterations: int = ADMIN_ITERATIONS) -> dict[str, Any]:
    """A client's ``password``, ``salt`` and ``iterations`` as the plugin stores them (PBKDF2-HMAC-SHA512)."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, _HASH_BYTES)
    return {
        "password": base64.b64encode(digest).decode("ascii"),
        "salt": base64.b64encode(salt).decode("ascii"),
        "iterations": iterations,
    }


def passwd_hashes(text: str, source: str) -> dict[str, dict[str, Any]]:
    """The clients' stored hashes from a Mosquitto 2 password file (``user:$7$rounds$salt$hash``): the same
    PBKDF2-HMAC-SHA512 the plugin uses, so accounts move over with their passwords unchanged."""
    found: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        user, _, stored = line.partition(":")
        parts = stored.split("$")
        try:
            if len(parts) != 5 or parts[:2] != ["", "7"]:
                raise ValueError
            iterations = int(parts[2])
            salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
            if len(salt) != _SALT_BYTES or len(digest) != _HASH_BYTES or iterations < 1:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{source} line {number}: the hash of {user!r} is not Mosquitto 2's PBKDF2-SHA512 ($7$...):"
                " set its password again with mosquitto_passwd first"
            ) from None
        found[user] = {"password": parts[4], "salt": parts[3], "iterations": iterations}
    return found


def acl_entries(lines: list[str]) -> list[dict[str, Any]]:
    """The plugin's ACLs for Mosquitto ACL-file lines (``topic read|write TOPIC``; ``user`` lines skipped).

    ``write`` is publishing; ``read`` is subscribing to that filter and receiving on it, as in the ACL file.
    """
    entries: list[dict[str, Any]] = []
    for line in lines:
        words = line.split(maxsplit=2)
        if not words or words[0] == "user":
            continue
        if len(words) != 3 or words[0] != "topic" or words[1] not in {"read", "write", "readwrite"}:
            raise ValueError(f"not an ACL line this hub writes: {line!r}")
        access, topic = words[1], words[2]
        if access in {"write", "readwrite"}:
            entries.append({"acltype": "publishClientSend", "topic": topic, "allow": True})
        if access in {"read", "readwrite"}:
            entries.append({"acltype": "subscribePattern", "topic": topic, "allow": True})
            entries.append({"acltype": "publishClientReceive", "topic": topic, "allow": True})
    return entries


def acl_blocks(lines: list[str]) -> dict[str, list[str]]:
    """An ACL file's lines grouped by the ``user`` line above them."""
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        words = line.split()
        if words and words[0] == "user" and len(words) == 2:
            current = blocks.setdefault(words[1], [])
        elif words and not line.lstrip().startswith("#") and current is not None:
            current.append(line)
    return blocks


def role_name(username: str) -> str:
    """The role holding one account's ACLs (a role per account, named after it)."""
    return f"account-{username}"


ADMIN_ROLE = "hub-dynsec-admin"
ADMIN_ACLS = acl_entries([f"topic write {CONTROL_TOPIC}", f"topic read {RESPONSE_TOPIC}"])
"""The admin account may send plugin commands and read the answers, nothing else (no device topic)."""

DEFAULT_ACCESS = {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True}
"""Everything not granted by a role is refused, receiving included (the ACL file's behaviour)."""


def initial_config(admin_username: str, admin_password: str) -> dict[str, Any]:
    """The plugin's first ``dynamic-security.json``: only the admin account. The hub adds its own account
    and the devices' over MQTT (``hub-server device sync-acl``, ``device add``)."""
    return {
        "clients": [
            {
                "username": admin_username,
                "textName": "hub-server's account administrator",
                **password_hash(admin_password),
                "roles": [{"rolename": ADMIN_ROLE}],
            }
        ],
        "roles": [{"rolename": ADMIN_ROLE, "acls": ADMIN_ACLS}],
        "groups": [],
        "defaultACLAccess": DEFAULT_ACCESS,
    }


@dataclass
class _Pending:
    done: threading.Condition = field(default_factory=threading.Condition)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


class DynsecAdmin:
    """One admin session with the plugin. Use as a context manager; every method waits for the answer."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        client_id: str,
        tls: bool = False,
        ca_file: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.where = f"{host}:{port}"
        self.host, self.port, self.timeout = host, port, timeout
        self._pending = _Pending()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._subscription_refused = False
        self._refused: str | None = None
        self._lost = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        client.username_pw_set(username, password)
        if tls:
            client.tls_set(ca_certs=str(ca_file) if ca_file else None)
        client.on_connect = guarded(self._on_connect, "dynsec admin on_connect", log)
        client.on_subscribe = guarded(self._on_subscribe, "dynsec admin on_subscribe", log)
        client.on_disconnect = guarded(self._on_disconnect, "dynsec admin on_disconnect", log)
        client.on_message = guarded(self._on_message, "dynsec admin on_message", log)
        self.client = client
        self.username = username

    def __enter__(self) -> DynsecAdmin:
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise DynsecError(f"cannot reach the broker at {self.where} for account changes: {exc}") from None
        self.client.loop_start()
        try:
            if not self._connected.wait(self.timeout):
                raise DynsecError(f"the broker at {self.where} did not accept {self.username!r} in time")
            if self._refused is not None:
                raise DynsecError(
                    f"the broker at {self.where} refused the account administrator {self.username!r}: {self._refused}"
                )
            result, _ = self.client.subscribe(RESPONSE_TOPIC, qos=1)
            if result != mqtt.MQTT_ERR_SUCCESS or not self._subscribed.wait(self.timeout):
                raise DynsecError(f"no answer to the subscription to {RESPONSE_TOPIC} at {self.where}")
            if self._subscription_refused:
                raise DynsecError(f"the broker at {self.where} does not let {self.username!r} read {RESPONSE_TOPIC}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._subscription_refused = any(reason.is_failure for reason in reasons)
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._pending.done:
            self._lost = True
            self._pending.done.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            answers = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("an answer on %s that is not the plugin's JSON was ignored", message.topic)
            return
        with self._pending.done:
            for answer in answers if isinstance(answers, list) else []:
                if isinstance(answer, dict) and isinstance(answer.get("correlationData"), str):
                    self._pending.answers[answer["correlationData"]] = answer
            self._pending.done.notify_all()

    def command(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Send one command; its ``data`` (empty for most) once the plugin accepted it, else ``DynsecError``."""
        correlation = secrets.token_hex(8)
        payload = json.dumps({"commands": [{"command": name, **arguments, "correlationData": correlation}]})
        info = self.client.publish(CONTROL_TOPIC, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DynsecError(f"lost the connection to the broker at {self.where} sending {name}")
        with self._pending.done:
            self._pending.done.wait_for(lambda: correlation in self._pending.answers or self._lost, self.timeout)
            answer = self._pending.answers.pop(correlation, None)
        if answer is None and self._lost:
            raise DynsecError(f"the broker at {self.where} closed the session before answering {name}")
        if answer is None:
            raise DynsecError(
                f"no answer to {name} from the dynamic-security plugin at {self.where} within {self.timeout:g} s:"
                " is the plugin loaded (plugin ... mosquitto_dynamic_security.so in mosquitto.conf) and may"
                f" {self.username!r} use {CONTROL_TOPIC}?"
            )
        if answer.get("error"):
            raise DynsecError(f"the broker refused {name}: {answer['error']}")
        data = answer.get("data")
        return data if isinstance(data, dict) else {}

    # --- the commands the hub uses ------------------------------------------------------------------------

    def get_client(self, username: str) -> dict[str, Any] | None:
        return self._get("getClient", "client", username=username)

    def get_role(self, rolename: str) -> dict[str, Any] | None:
        return self._get("getRole", "role", rolename=rolename)

    def _get(self, name: str, key: str, **args: Any) -> dict[str, Any] | None:
        """The plugin's ``key`` object of a ``get…`` command, or None when it does not exist."""
        try:
            found = self.command(name, **args).get(key)
        except DynsecError as exc:
            if "not found" in str(exc).lower():
                return None
            raise
        return found if isinstance(found, dict) else None
