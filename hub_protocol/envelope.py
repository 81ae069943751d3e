"""Messages every device sends or receives, whatever it does: availability, events' header, health, acks."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from hub_protocol.validation import Identifier, StrictModel, Time

MAX_SEQ = 2**53 - 1
"""Sequence numbers stay within what JSON readers represent exactly."""

SeqNumber = Annotated[int, Field(ge=1, le=MAX_SEQ)]


class EventHeader(StrictModel):
    """Carried by every event: who sent it, in which boot, and its place in that boot's sequence."""

    v: Literal[1] = Field(default=1, description="Payload version")
    device: Identifier = Field(description="Device id")
    boot: Identifier = Field(description="Random id chosen at each start of the agent")
    seq: int = Field(ge=1, le=MAX_SEQ, description="Per-boot sequence number, from 1, no gaps at the source")


class AvailabilityState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class Availability(StrictModel):
    """Retained on ``status``: ``online`` at every connect; ``offline`` as last will and on a clean stop."""

    v: Literal[1] = Field(default=1, description="Payload version")
    device: Identifier = Field(description="Device id")
    boot: Identifier = Field(description="Boot id of the agent that set this state")
    state: AvailabilityState = Field(description="online or offline")
    graceful: bool = Field(default=False, description="True when a clean stop, not the last will, set offline")


class Ack(StrictModel):
    """Hub to device on ``ack``: every event of ``boot`` up to ``upto`` is stored; delete them."""

    v: Literal[1] = Field(default=1, description="Payload version")
    boot: Identifier = Field(description="Boot whose events are acknowledged")
    upto: int = Field(ge=0, le=MAX_SEQ, description="Watermark: every sequence number <= upto is stored")


class CameraState(StrEnum):
    ABSENT = "absent"
    OK = "ok"
    REOPENING = "reopening"
    FAILED = "failed"


class Health(StrictModel):
    """Telemetry on ``health`` every interval; not an event (the latest one is all that matters)."""

    v: Literal[1] = Field(default=1, description="Payload version")
    device: Identifier = Field(description="Device id")
    boot: Identifier = Field(description="Boot id")
    at: Time = Field(description="When the figures were read")
    uptime_s: float = Field(ge=0, description="Seconds since the agent started")
    version: str = Field(max_length=32, description="Agent version")
    cpu_temp_c: float | None = Field(default=None, ge=-60, le=150, description="CPU temperature, if known")
    load1: float = Field(
        ge=0,
        description="Load average over 15 minutes, in steps of 0.5 (the name is kept; the one-minute average "
        "followed who was in view, docs/privacy.md)",
    )
    mem_used_fraction: float = Field(ge=0, le=1, description="Share of memory in use")
    disk_free_bytes: int = Field(ge=0, le=MAX_SEQ, description="Free bytes on the state directory's file system")
    disk_full: bool = Field(
        default=False, description="Writes to the state directory failed for lack of space (recently)"
    )
    outbox_depth: int = Field(ge=0, le=MAX_SEQ, description="Events stored and not yet acknowledged")
    outbox_oldest_age_s: float = Field(ge=0, description="Age of the oldest unacknowledged event (0 if none)")
    dropped_total: int = Field(ge=0, le=MAX_SEQ, description="Events the outbox dropped at its cap since install")
    camera_state: CameraState = Field(description="Camera state (absent when the device counts nothing)")
    fps: float = Field(ge=0, description="Frames the camera delivered per second since the last report, whole fps")
    clock_sync: Literal["synced", "unsynced", "unknown"] | None = Field(
        default=None,
        description="Whether the device's clock is synchronised (flow windows wait for it); absent without counting",
    )


MAX_GAP_RANGES = 100
"""Ranges one notice may declare; a device with more declares the rest when the hub's ack shows it waits."""


class OutboxGap(EventHeader):
    """Event on ``gap``: the outbox dropped events at its cap; the hub counts them and moves its watermark.

    Every declared number was really dropped (or never stored): the hub may acknowledge past it. Without
    ``ranges`` the notice declares ``first_seq..last_seq``; with it, exactly those ranges (the numbers between
    them are events the device still holds), and ``first_seq``/``last_seq`` are the first and last of them."""

    dropped_boot: Identifier = Field(description="Boot of the dropped events")
    first_seq: int = Field(ge=1, le=MAX_SEQ, description="First dropped sequence number")
    last_seq: int = Field(ge=1, le=MAX_SEQ, description="Last dropped sequence number (inclusive)")
    dropped_total: int = Field(ge=0, le=MAX_SEQ, description="All events dropped since install, this notice included")
    ranges: list[tuple[SeqNumber, SeqNumber]] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_GAP_RANGES,
        exclude_if=lambda value: value is None,
        description="Exact dropped ranges [first, last] (each a sequence number), ascending and apart; absent: first_seq..last_seq",
    )

    @model_validator(mode="after")
    def _ranges_agree(self) -> OutboxGap:
        if self.first_seq > self.last_seq:
            raise ValueError(f"first_seq {self.first_seq} is after last_seq {self.last_seq}")
        if self.ranges is None:
            return self
        previous = -1
        for first, last in self.ranges:
            if first > last:
                raise ValueError(f"range [{first}, {last}] ends before it starts")
            if first <= previous + 1:
                raise ValueError(f"range [{first}, {last}] overlaps or touches the one before (to {previous})")
            previous = last
        if (self.ranges[0][0], self.ranges[-1][1]) != (self.first_seq, self.last_seq):
            raise ValueError("first_seq and last_seq must be the first and last number of the ranges")
        return self

    def declared(self) -> list[tuple[int, int]]:
        """The dropped ranges this notice declares."""
        return list(self.ranges) if self.ranges is not None else [(self.first_seq, self.last_seq)]


class ResultStatus(StrEnum):
    DONE = "done"
    FAILED = "failed"
    REFUSED_EXPIRED = "refused-expired"
    REFUSED_REPLAY = "refused-replay"
    REFUSED_INVALID = "refused-invalid"


class CommandResult(EventHeader):
    """Event on ``result``: what the device did with one command id."""

    command_id: Identifier = Field(description="Id of the command answered")
    status: ResultStatus = Field(description="Outcome")
    detail: str = Field(default="", max_length=500, description="Plain-language reason or outcome")
    at: Time = Field(description="When the device decided")
