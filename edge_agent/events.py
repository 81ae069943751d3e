"""The seam between what produces events (counting windows, lockers, alarms) and what delivers them.

Producers know only ``EventSink``: they hand over a channel and the payload's own fields; the sink adds
device, boot and sequence number, validates against the contract and stores the event durably before
``emit`` returns. The transport's outbox is the real sink; ``MemorySink`` serves unit tests of producers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel

from hub_protocol.codec import PAYLOAD_TYPES
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import SEQUENCED_CHANNELS, Channel


class EventSink(Protocol):
    def emit(self, channel: Channel, fields: dict[str, Any]) -> int:
        """Store one event durably; returns its sequence number. Raises ValueError if it breaks the contract."""
        ...


class HandoffSink(EventSink, Protocol):
    """A sink that takes events from a producer's own store exactly once (the outbox): the producer passes an
    increasing key with each event and, after a crash, skips what ``handed_upto`` says was taken."""

    def emit(self, channel: Channel, fields: dict[str, Any], *, handoff: tuple[str, int] | None = None) -> int: ...

    def handed_upto(self, source: str) -> int: ...


CommandOutcome = tuple[ResultStatus, str]
CommandHandler = Callable[[Any], CommandOutcome]
"""Executes one validated command model (see ``hub_protocol.commands``) and says what happened."""


def build_event(channel: Channel, device: str, boot: str, seq: int, fields: dict[str, Any]) -> BaseModel:
    """Validate an event of ``channel`` with its header filled in (raises pydantic.ValidationError)."""
    if channel not in SEQUENCED_CHANNELS:
        raise ValueError(f"{channel.value} is not an event channel")
    model: type[BaseModel] = PAYLOAD_TYPES[channel]
    return model.model_validate({**fields, "device": device, "boot": boot, "seq": seq})


class MemorySink:
    """Keeps validated events in a list: for unit tests of producers, never for delivery."""

    def __init__(self, device: str = "test-device", boot: str = "test-boot") -> None:
        self.device = device
        self.boot = boot
        self.events: list[tuple[Channel, BaseModel]] = []
        self._lock = threading.Lock()

    def emit(self, channel: Channel, fields: dict[str, Any]) -> int:
        with self._lock:
            seq = len(self.events) + 1
            self.events.append((channel, build_event(channel, self.device, self.boot, seq, fields)))
            return seq

    def of(self, channel: Channel) -> list[Any]:
        return [event for ch, event in self.events if ch is channel]
