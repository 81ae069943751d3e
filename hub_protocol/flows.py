"""Aggregated flow windows: the only counting data that ever leaves a device.

A window holds one count per line x direction x class (zeros included) and, per line, the margins: the
total per direction, per class and for the whole line. Small-count protection is applied on the device, so
the hub can add up what it receives without ever learning a protected count. Under the dp policies a count
is noisy and may be negative: sums stay unbiased, and displays clip at zero. Under ``dp`` a window of a whole
day (``window_seconds`` 86400, starting at midnight UTC) that follows windows shorter than a day is the day's
correction: adding it to the day's windows gives the best estimate of the day's total (docs/privacy.md).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from hub_protocol.envelope import MAX_SEQ, EventHeader
from hub_protocol.validation import Identifier, StrictModel, Time


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
    DP_THRESHOLD = "dp-threshold"


MAX_DAILY_BUDGET = 15_000.0
"""Enough for epsilon 10 in every 1-minute window of a day."""

THRESHOLD_KINDS = frozenset({PolicyKind.THRESHOLD, PolicyKind.DP_THRESHOLD})
DP_KINDS = frozenset({PolicyKind.DP, PolicyKind.DP_THRESHOLD})


class PrivacyPolicy(StrictModel):
    """The protection applied to a window, with its parameters; travels with every window."""

    kind: PolicyKind = Field(
        description="none; threshold (each cell below k withheld on its own, no totals); "
        "dp (two-sided geometric noise); dp-threshold (noise, then suppression of small noisy counts)"
    )
    k: int | None = Field(default=None, ge=2, le=100, description="Threshold: the device withholds counts 0..k-1")
    epsilon: float | None = Field(
        default=None, gt=0, le=10, description="DP: privacy loss per crossing; a window costs epsilon x max_crossings"
    )
    daily_budget: float | None = Field(
        default=None, gt=0, le=MAX_DAILY_BUDGET, description="DP: epsilon allowed per UTC day"
    )
    max_crossings: int | None = Field(
        default=None, ge=1, le=20, description="Most crossings one tracked object adds to a window (all lines)"
    )
    day_share: float | None = Field(
        default=None, ge=0, le=0.9, description="dp: share of epsilon spent on the daily total per line"
    )
    spent_today: float | None = Field(default=None, ge=0, description="DP: epsilon spent today, this window incl.")
    budget_exhausted: bool = Field(
        default=False, description="DP: the day's budget could not pay for this window, so every count is withheld"
    )

    @model_validator(mode="after")
    def _parameters_match_kind(self) -> PrivacyPolicy:
        if self.kind in THRESHOLD_KINDS and self.k is None:
            raise ValueError(f"{self.kind.value} policy needs k")
        if self.kind in DP_KINDS and (self.epsilon is None or self.daily_budget is None):
            raise ValueError(f"{self.kind.value} policy needs epsilon and daily_budget")
        charge = (self.epsilon or 0) * (self.max_crossings or 1)
        if self.epsilon is not None and self.daily_budget is not None and charge > self.daily_budget + 1e-9:
            raise ValueError("epsilon x max_crossings (the cost of a window) cannot exceed the daily budget")
        if self.budget_exhausted and self.kind not in DP_KINDS:
            raise ValueError("budget_exhausted applies to dp policies only")
        return self


class FlowCell(StrictModel):
    """One count: crossings of one line in one direction by one class in the window."""

    line: Identifier = Field(description="Line name")
    direction: Direction = Field(description="in or out (see docs/counting.md for the convention)")
    object_class: ObjectClass = Field(description="pedestrian or cyclist")
    count: int | None = Field(
        ge=-1_000_000, le=1_000_000, description="The published count (negative only under dp); null when suppressed"
    )

    @property
    def suppressed(self) -> bool:
        return self.count is None


class FlowTotal(StrictModel):
    """A margin of one line: per direction (all classes), per class (both directions) or the whole line."""

    line: Identifier = Field(description="Line name")
    direction: Direction | None = Field(default=None, description="Direction summed over, or null for both")
    object_class: ObjectClass | None = Field(default=None, description="Class summed over, or null for all")
    count: int | None = Field(
        ge=-4_000_000, le=4_000_000, description="The published total (negative only under dp); null when suppressed"
    )

    @model_validator(mode="after")
    def _is_a_margin(self) -> FlowTotal:
        if self.direction is not None and self.object_class is not None:
            raise ValueError("a total with both direction and object_class is a cell; put it in cells")
        return self


class WindowQuality(StrictModel):
    """How far the counts of a window can be trusted."""

    observed_fraction: float = Field(ge=0, le=1, description="Share of the window the camera was observing")
    mean_fps: float = Field(
        ge=0, le=1000, description="Frames per second the camera delivered while observing, in whole fps"
    )
    dropped_frames: int = Field(
        ge=0,
        le=MAX_SEQ,
        description="Frames skipped because processing fell behind, rounded down to whole minutes of frames",
    )
    clock_stepped: bool = Field(
        default=False,
        description="The device's clock stepped during this window: its counts may include minutes from the other "
        "side of the step (the window was not fully observed on one clock)",
    )
    capped_tracks: int | None = Field(
        default=None,
        ge=-1_000_000,
        le=1_000_000,
        description="Objects that crossed more than max_crossings times (counted for max_crossings - 1), "
        "protected like a cell; null when suppressed, withheld or not reported",
    )


def _small(count: int | None, k: int) -> bool:
    return count is not None and 0 < count < k


class FlowWindow(EventHeader):
    """Event on ``flow``: all cells of one clock-aligned window of one camera."""

    kind: Literal["flow"] = Field(default="flow", description="Payload kind")
    window_start: Time = Field(description="Start of the window (UTC, aligned to the clock)")
    window_seconds: int = Field(ge=60, le=86_400, description="Length of the window")
    cells: list[FlowCell] = Field(max_length=512, description="Every line x direction x class, even zeros")
    totals: list[FlowTotal] = Field(
        default_factory=list, max_length=1024, description="Margins per line: per direction, per class, line total"
    )
    quality: WindowQuality = Field(description="Data-quality envelope")
    policy: PrivacyPolicy = Field(description="Protection applied before publishing")

    @model_validator(mode="after")
    def _consistent(self) -> FlowWindow:
        keys = [(c.line, c.direction, c.object_class) for c in self.cells]
        if len(set(keys)) != len(keys):
            raise ValueError("cells: each line x direction x class appears once")
        margin_keys = [(t.line, t.direction, t.object_class) for t in self.totals]
        if len(set(margin_keys)) != len(margin_keys):
            raise ValueError("totals: each margin appears once")
        kind = self.policy.kind
        if kind is PolicyKind.NONE and any(c.count is None for c in self.cells):
            raise ValueError("policy none publishes every cell")
        counts = [*(c.count for c in self.cells), *(t.count for t in self.totals), self.quality.capped_tracks]
        if kind not in DP_KINDS and any(n is not None and n < 0 for n in counts):
            raise ValueError(f"policy {kind.value}: counts cannot be negative (only dp noise makes them so)")
        if kind in THRESHOLD_KINDS and self.policy.k is not None:
            k = self.policy.k
            if (
                any(_small(c.count, k) for c in self.cells)
                or any(_small(t.count, k) for t in self.totals)
                or _small(self.quality.capped_tracks, k)
            ):
                raise ValueError(f"policy {kind.value} with k={k}: no published count may lie in 1..{k - 1}")
        if self.policy.budget_exhausted and (
            any(c.count is not None for c in self.cells) or any(t.count is not None for t in self.totals)
        ):
            raise ValueError("a window whose budget is exhausted publishes no count")
        # Margins are sums of the published cells (under dp of the noisy ones, which are never clipped).
        for total in self.totals:
            parts = [
                c
                for c in self.cells
                if c.line == total.line
                and total.direction in (None, c.direction)
                and total.object_class in (None, c.object_class)
            ]
            published = [c.count for c in parts if c.count is not None]
            if total.count is not None and parts and len(published) == len(parts) and sum(published) != total.count:
                raise ValueError(f"totals: margin of line {total.line} disagrees with its published cells")
        return self
