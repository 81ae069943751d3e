"""Config changes without SSH: the hub sends ``push-config`` (a whole new agent config) or ``reload-config``.

The device validates, applies on trial and rolls back when it does not come back healthy; it answers with a
``CommandResult`` that the ingest stores (``command_results``). The hub checks only what it can without the
agent's code: the text is TOML and names the device it is sent to.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub_protocol.codec import encode
from hub_protocol.commands import CommandBase, PushConfig, ReloadConfig, command_header
from hub_protocol.secrets import read_secret
from hub_protocol.topics import Channel, device_topic
from hub_protocol.validation import ConfigError, parse_toml
from hub_server.config import HubConfig
from hub_server.fleet.broker import CLI_CLIENT_ID_PREFIX
from hub_server.store import events
from hub_server.store.engine import Connection

COMMAND_TTL = timedelta(minutes=10)
MAX_CONFIG_CHARS = 32_000


class ConfigPushError(ValueError):
    """The config text cannot be sent as it is (not TOML, another device's, too long)."""


def check_config_text(device: str, text: str) -> None:
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigPushError(f"the config has {len(text)} characters; at most {MAX_CONFIG_CHARS} fit in a command")
    try:
        data = parse_toml(text, "config")
    except ConfigError as exc:
        raise ConfigPushError("; ".join(exc.problems)) from None
    section = data.get("device")
    named = section.get("id") if isinstance(section, dict) else None
    if named != device:
        raise ConfigPushError(f"the config's [device] id is {named!r}, not {device!r}: wrong file?")


def push_command(device: str, text: str, operator: str, now: datetime | None = None) -> PushConfig:
    check_config_text(device, text)
    header = command_header(device, COMMAND_TTL, operator, prefix="cfg", now=now)
    return PushConfig(action="push-config", **header, config_toml=text)


def reload_command(device: str, operator: str, now: datetime | None = None) -> ReloadConfig:
    return ReloadConfig(
        action="reload-config", **command_header(device, COMMAND_TTL, operator, prefix="reload", now=now)
    )


def audit_detail(command: CommandBase) -> dict[str, Any]:
    detail: dict[str, Any] = {"command": command.id}
    if isinstance(command, PushConfig):
        # The text itself stays out of the log; its hash tells which version was sent.
        detail["sha256"] = hashlib.sha256(command.config_toml.encode()).hexdigest()
    return detail


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    command_id: str
    device: str
    status: str | None
    detail: str | None
    at: datetime | None


def outcome(conn: Connection, device: str, command_id: str) -> CommandOutcome:
    """The device's answer as the ingest stored it; status None while none has arrived."""
    row = events.latest_command_result(conn, device, command_id)
    if row is None:
        return CommandOutcome(command_id, device, None, None, None)
    return CommandOutcome(command_id, device, row["status"], row["detail"], datetime.fromtimestamp(row["at"], UTC))


def publish_once(config: HubConfig, site: str, command: CommandBase, timeout: float = 10.0) -> None:
    """For the CLI, outside the running server: one short MQTT session as the hub's broker user."""
    import paho.mqtt.client as mqtt  # only the CLI path needs it here
    from paho.mqtt.enums import CallbackAPIVersion

    password = read_secret(config.mqtt.password_file, "mqtt.password_file")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{CLI_CLIENT_ID_PREFIX}{secrets.token_hex(6)}", protocol=mqtt.MQTTv311
    )
    client.username_pw_set(config.mqtt.username, password)
    if config.mqtt.tls:
        client.tls_set(ca_certs=str(config.mqtt.ca_file) if config.mqtt.ca_file else None)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: connected.set() if not reason.is_failure else None
    try:
        client.connect(config.mqtt.host, config.mqtt.port, keepalive=30)
    except OSError as exc:
        raise ConnectionError(f"cannot reach the broker at {config.mqtt.host}:{config.mqtt.port}: {exc}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise ConnectionError("the broker did not accept the hub's credentials in time")
        topic = device_topic(config.mqtt.prefix, site, command.device, Channel.COMMAND)
        info = client.publish(topic, encode(command), qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise ConnectionError("the broker did not acknowledge the command in time")
    finally:
        client.disconnect()
        client.loop_stop()
