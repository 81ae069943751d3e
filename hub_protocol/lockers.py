"""Locker-bank events: every compartment state transition, sent through the outbox."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from hub_protocol.envelope import EventHeader
from hub_protocol.validation import Identifier


class CompartmentState(StrEnum):
    FREE = "free"
    RESERVED = "reserved"
    OCCUPIED = "occupied"
    OUT_OF_SERVICE = "out-of-service"


class CompartmentSize(StrEnum):
    S = "S"
    M = "M"
    L = "L"


class LockerEvent(EventHeader):
    """Event on ``locker``: one compartment changed state, or its door or lock did something worth telling."""

    kind: Literal["locker"] = Field(default="locker", description="Payload kind")
    at: AwareDatetime = Field(description="When it happened on the device")
    compartment: int = Field(ge=1, le=999, description="Compartment number, 1-based")
    state: CompartmentState = Field(description="State after the event")
    previous: CompartmentState | None = Field(description="State before the event (null at first report)")
    cause: str = Field(
        max_length=64,
        description="What drove it: dropoff, pickup, reservation, cancel, service, recovered, remote-open, ...",
    )
    reservation: Identifier | None = Field(default=None, description="Reservation id involved, if any")
    operator: str | None = Field(default=None, max_length=64, description="Operator id for hub commands")
    door_open: bool = Field(description="Door sensor reading after the event")
