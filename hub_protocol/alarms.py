"""Alarms a device raises and clears; each is an event through the outbox."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from hub_protocol.envelope import EventHeader
from hub_protocol.validation import Time


class AlarmKind(StrEnum):
    DOOR_LEFT_OPEN = "door-left-open"
    FORCED_OPEN = "forced-open"
    OPEN_NOT_OPENED = "open-not-opened"
    SENSOR_FAULT = "sensor-fault"
    LOCKOUT = "lockout"
    CAMERA_DOWN = "camera-down"
    OUTBOX_DROPPING = "outbox-dropping"
    DISK_FULL = "disk-full"
    STATE_DAMAGED = "state-damaged"
    CODE_GUESSING = "code-guessing"


class DeviceAlarm(EventHeader):
    """Event on ``alarm``: ``active`` true when raised, false when cleared."""

    kind: Literal["alarm"] = Field(default="alarm", description="Payload kind")
    alarm: AlarmKind = Field(description="What is wrong")
    active: bool = Field(description="Raised (true) or cleared (false)")
    at: Time = Field(description="When the device noticed")
    compartment: int | None = Field(default=None, ge=1, le=999, description="Compartment concerned, if any")
    detail: str = Field(default="", max_length=500, description="Plain-language detail")
