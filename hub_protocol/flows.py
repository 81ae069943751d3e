"""Aggregated flow windows: the only counting data that ever leaves a device."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field, model_validator

from hub_protocol.envelope import EventHeader
from hub_protocol.validation import Identifier, StrictModel


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class ObjectClass(StrEnum):
    PEDESTRIAN = "pedestrian"
    CYCLIST = "cyclist"


class PolicyKind(StrEnum):
    NONE = "none"
    THRESHOLD = "threshold"
    DP = "dp"


class PrivacyPolicy(StrictModel):
    """The protection applied to a window, with its parameters; travels with every window."""

    kind: PolicyKind = Field(description="none, threshold (suppression below k) or dp (geometric noise)")
    k: int | None = Field(default=None, ge=2, le=100, description="Threshold: cells below k are suppressed")
    epsilon: float | None = Field(default=None, gt=0, le=10, description="DP: privacy loss spent per window")
    daily_budget: float | None = Field(default=None, gt=0, le=1000, description="DP: epsilon allowed per day")
    spent_today: float | None = Field(default=None, ge=0, description="DP: epsilon spent today, this window incl.")

    @model_validator(mode="after")
    def _parameters_match_kind(self) -> PrivacyPolicy:
        if self.kind is PolicyKind.THRESHOLD and self.k is None:
            raise ValueError("threshold policy needs k")
        if self.kind is PolicyKind.DP and (self.epsilon is None or self.daily_budget is None):
            raise ValueError("dp policy needs epsilon and daily_budget")
        return self


class FlowCell(StrictModel):
    """One count: crossings of one line in one direction by one class in the window."""

    line: Identifier = Field(description="Line name")
    direction: Direction = Field(description="in or out (see docs/counting.md for the convention)")
    object_class: ObjectClass = Field(description="pedestrian or cyclist")
    count: int | None = Field(ge=0, le=1_000_000, description="The published count; null when suppressed")

    @property
    def suppressed(self) -> bool:
        return self.count is None


class WindowQuality(StrictModel):
    """How far the counts of a window can be trusted."""

    observed_fraction: float = Field(ge=0, le=1, description="Share of the window the camera was observing")
    mean_fps: float = Field(ge=0, le=1000, description="Mean processed frames per second while observing")
    dropped_frames: int = Field(ge=0, description="Frames skipped because processing fell behind")


class FlowWindow(EventHeader):
    """Event on ``flow``: all cells of one clock-aligned window of one camera."""

    kind: Literal["flow"] = Field(default="flow", description="Payload kind")
    window_start: AwareDatetime = Field(description="Start of the window (UTC, aligned to the clock)")
    window_seconds: int = Field(ge=60, le=86_400, description="Length of the window")
    cells: list[FlowCell] = Field(max_length=512, description="Every line x direction x class, even zeros")
    quality: WindowQuality = Field(description="Data-quality envelope")
    policy: PrivacyPolicy = Field(description="Protection applied before publishing")
