"""The MQTT topic tree: ``<prefix>/v1/<site>/<device>/<channel>``.

Devices publish on their own device topics only and subscribe only to their own ``cmd`` and ``ack``; the
broker enforces this with one ACL block per device (``device_acl``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hub_protocol import PROTOCOL_VERSION
from hub_protocol.validation import IDENTIFIER_PATTERN

_ID = re.compile(IDENTIFIER_PATTERN)


class Channel(StrEnum):
    """The last level of every topic. Device channels first, then the hub's."""

    STATUS = "status"
    REGISTER = "register"
    HEALTH = "health"
    FLOW = "flow"
    LOCKER = "locker"
    ALARM = "alarm"
    GAP = "gap"
    RESULT = "result"
    VALIDATION = "validation"
    COMMAND = "cmd"
    ACK = "ack"


DEVICE_CHANNELS = frozenset(
    {
        Channel.STATUS,
        Channel.REGISTER,
        Channel.HEALTH,
        Channel.FLOW,
        Channel.LOCKER,
        Channel.ALARM,
        Channel.GAP,
        Channel.RESULT,
        Channel.VALIDATION,
    }
)
"""Channels a device publishes on."""

HUB_CHANNELS = frozenset({Channel.COMMAND, Channel.ACK})
"""Channels the hub publishes on, one per device."""

RETAINED_CHANNELS = frozenset({Channel.STATUS, Channel.REGISTER})
"""Channels whose last message the broker keeps for late subscribers."""

SEQUENCED_CHANNELS = frozenset(
    {Channel.FLOW, Channel.LOCKER, Channel.ALARM, Channel.GAP, Channel.RESULT, Channel.VALIDATION}
)
"""Channels whose messages are events: stored in the device outbox, numbered, acknowledged by the hub."""


def check_identifier(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match [a-z0-9-]{{1,64}}")
    return value


def check_prefix(prefix: str) -> str:
    parts = prefix.split("/")
    if not all(_ID.fullmatch(p) for p in parts):
        raise ValueError(f"topic prefix {prefix!r}: each level must match [a-z0-9-]{{1,64}}")
    return prefix


def device_topic(prefix: str, site: str, device: str, channel: Channel) -> str:
    check_identifier(site, "site")
    check_identifier(device, "device")
    return f"{prefix}/v{PROTOCOL_VERSION}/{site}/{device}/{channel.value}"


@dataclass(frozen=True, slots=True)
class TopicParts:
    site: str
    device: str
    channel: Channel


def parse_topic(prefix: str, topic: str) -> TopicParts | None:
    """Split a topic of this contract into its parts; None for anything else (never raises)."""
    head = f"{prefix}/v{PROTOCOL_VERSION}/"
    if not topic.startswith(head):
        return None
    rest = topic[len(head) :].split("/")
    if len(rest) != 3:
        return None
    site, device, channel = rest
    if not (_ID.fullmatch(site) and _ID.fullmatch(device)):
        return None
    try:
        return TopicParts(site, device, Channel(channel))
    except ValueError:
        return None


def device_acl(prefix: str, site: str, device: str, username: str | None = None) -> list[str]:
    """Mosquitto ACL lines for one device: write its own channels, read its own cmd and ack, nothing else."""
    lines = [f"user {username or device}"]
    for channel in sorted(DEVICE_CHANNELS):
        lines.append(f"topic write {device_topic(prefix, site, device, channel)}")
    for channel in sorted(HUB_CHANNELS):
        lines.append(f"topic read {device_topic(prefix, site, device, channel)}")
    return lines


def hub_acl(prefix: str, username: str) -> list[str]:
    """Mosquitto ACL lines for the hub: read everything of the contract, write only cmd and ack topics."""
    base = f"{prefix}/v{PROTOCOL_VERSION}/+/+"
    return [
        f"user {username}",
        f"topic read {prefix}/v{PROTOCOL_VERSION}/#",
        "topic read $SYS/broker/uptime",  # the hub tells a broker restart (every session closed) from it
        f"topic write {base}/{Channel.COMMAND.value}",
        f"topic write {base}/{Channel.ACK.value}",
    ]
