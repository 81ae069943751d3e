"""Field validation records: how far one sensor's counts agreed with a technician's tally on site.

A technician taps every crossing they see for some minutes while the device counts the same minutes. Only
the totals of that period travel: per line, direction and class, what the device counted and what the
technician tallied, protected like any flow window when the device's policy asks for it. No image and no
time of a single crossing is part of a record.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hub_protocol.envelope import EventHeader
from hub_protocol.flows import DP_KINDS, Direction, ObjectClass, PrivacyPolicy
from hub_protocol.validation import Identifier, StrictModel, Time

MAX_VALIDATION_MINUTES = 240.0


class ValidationCell(StrictModel):
    """One line x direction x class of the period: the device's count and the technician's tally."""

    line: Identifier = Field(description="Line name")
    direction: Direction = Field(description="in or out (see docs/counting.md for the convention)")
    object_class: ObjectClass = Field(description="pedestrian or cyclist")
    counted: int | None = Field(
        ge=-1_000_000,
        le=1_000_000,
        description="Crossings the device counted (negative only under dp); null when suppressed",
    )
    tallied: int | None = Field(
        ge=-1_000_000,
        le=1_000_000,
        description="Crossings the technician tallied (negative only under dp); null when suppressed",
    )


class ValidationLine(StrictModel):
    """One line and direction, all classes: the count error the published figures show."""

    line: Identifier = Field(description="Line name")
    direction: Direction = Field(description="in or out")
    counted: int | None = Field(
        ge=-4_000_000, le=4_000_000, description="Device's total (negative only under dp); null when suppressed"
    )
    tallied: int | None = Field(
        ge=-4_000_000, le=4_000_000, description="Technician's total (negative only under dp); null when suppressed"
    )
    error: float | None = Field(
        ge=-4_000_000,
        le=4_000_000,
        description="(counted - tallied) / tallied; null when either is suppressed or tallied is not positive",
    )


class ValidationRecord(EventHeader):
    """Event on ``validation``: one field validation by tally, as totals for the whole period."""

    kind: Literal["validation"] = Field(default="validation", description="Payload kind")
    started_at: Time = Field(description="Start of the validation period (to the minute)")
    minutes: float = Field(gt=0, le=MAX_VALIDATION_MINUTES, description="Length of the period")
    cells: list[ValidationCell] = Field(max_length=512, description="Every line x direction x class, even zeros")
    lines: list[ValidationLine] = Field(max_length=256, description="Per line and direction: totals and count error")
    error: float | None = Field(
        ge=0,
        le=4_000_000,
        description="Overall count error: sum of |counted - tallied| over lines and directions / sum of tallied; "
        "null when nothing published was tallied",
    )
    policy: PrivacyPolicy = Field(description="Protection applied to the counts before publishing")

    @model_validator(mode="after")
    def _consistent(self) -> ValidationRecord:
        keys = [(c.line, c.direction, c.object_class) for c in self.cells]
        if len(set(keys)) != len(keys):
            raise ValueError("cells: each line x direction x class appears once")
        line_keys = [(v.line, v.direction) for v in self.lines]
        if len(set(line_keys)) != len(line_keys):
            raise ValueError("lines: each line x direction appears once")
        if self.policy.kind not in DP_KINDS:
            numbers = [n for c in self.cells for n in (c.counted, c.tallied)]
            numbers += [n for v in self.lines for n in (v.counted, v.tallied)]
            if any(n is not None and n < 0 for n in numbers):
                raise ValueError(
                    f"policy {self.policy.kind.value}: counts cannot be negative (only dp noise makes them so)"
                )
        for v in self.lines:
            if v.error is not None and (v.counted is None or not v.tallied):
                raise ValueError(f"lines: {v.line} {v.direction.value} has an error without both published totals")
        return self


def count_error(counted: int | None, tallied: int | None) -> float | None:
    """(counted - tallied) / tallied, rounded; None when it cannot be said."""
    if counted is None or tallied is None or tallied <= 0:
        return None
    return round((counted - tallied) / tallied, 4)


def overall_error(lines: list[ValidationLine]) -> float | None:
    """Sum of absolute differences over the sum of tallies, over the lines with both totals published."""
    pairs = [(v.counted, v.tallied) for v in lines if v.counted is not None and v.tallied is not None]
    tallied = sum(t for _, t in pairs)
    if tallied <= 0:
        return None
    return round(sum(abs(c - t) for c, t in pairs) / tallied, 4)
