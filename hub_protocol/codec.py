"""Bytes <-> models for each channel, with the size cap; the only way either program reads the wire."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, TypeAdapter, ValidationError

from hub_protocol import MAX_PAYLOAD_BYTES
from hub_protocol.accuracy import ValidationRecord
from hub_protocol.alarms import DeviceAlarm
from hub_protocol.commands import Command
from hub_protocol.envelope import Ack, Availability, CommandResult, Health, OutboxGap
from hub_protocol.flows import FlowWindow
from hub_protocol.lockers import LockerEvent
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import Channel
from hub_protocol.validation import describe_errors


class ProtocolError(ValueError):
    """A payload that does not fit the contract; ``reason`` is one line for logs and counters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


PAYLOAD_TYPES: Final[dict[Channel, Any]] = {
    Channel.STATUS: Availability,
    Channel.REGISTER: RegisterEntry,
    Channel.HEALTH: Health,
    Channel.FLOW: FlowWindow,
    Channel.LOCKER: LockerEvent,
    Channel.ALARM: DeviceAlarm,
    Channel.GAP: OutboxGap,
    Channel.RESULT: CommandResult,
    Channel.VALIDATION: ValidationRecord,
    Channel.COMMAND: Command,
    Channel.ACK: Ack,
}
"""The payload model of every channel (``Command`` is a union discriminated by ``action``)."""

_ADAPTERS: Final[dict[Channel, TypeAdapter[Any]]] = {ch: TypeAdapter(t) for ch, t in PAYLOAD_TYPES.items()}


def encode(message: BaseModel) -> bytes:
    data = message.model_dump_json(exclude_none=False).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(data)} bytes exceeds the cap of {MAX_PAYLOAD_BYTES}")
    return data


def decode(channel: Channel, payload: bytes) -> Any:
    """Validate ``payload`` as the model of ``channel``; raises ProtocolError with a one-line reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the cap of {MAX_PAYLOAD_BYTES}")
    try:
        return _ADAPTERS[channel].validate_json(payload)
    except ValidationError as exc:
        problems = describe_errors(exc)
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ProtocolError("; ".join(problems[:3]) + more) from None
