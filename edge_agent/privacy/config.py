"""Config sections of the privacy domain: how flow windows are protected, and the sensor-register entry."""

from __future__ import annotations

import re
from datetime import date

from pydantic import Field, HttpUrl, field_validator, model_validator

from hub_protocol.flows import DP_KINDS, MAX_DAILY_BUDGET, PolicyKind, PrivacyPolicy
from hub_protocol.validation import StrictModel

SECONDS_PER_DAY = 86_400
DEFAULT_DAILY_BUDGET = 96.0
"""Default epsilon per UTC day: a person in view in every 15-minute window at the defaults (charge 1)."""

# A house number at the end ("Schieweg 15a", "Main St 12-14") or a Dutch/UK-style postcode is finer than a
# street, so such a location is refused rather than silently trimmed.
_HOUSE_NUMBER = re.compile(r"\s\d+\s*[a-zA-Z]?(?:\s*[-/]\s*\d+\s*[a-zA-Z]?)?$")
_POSTCODE = re.compile(r"\b\d{4}\s?[A-Za-z]{2}\b|\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b")


class PrivacyConfig(StrictModel):
    """How crossings become published windows. Defaults are the project's recommendation (see docs/privacy.md)."""

    window_seconds: int = Field(
        default=900, ge=60, le=SECONDS_PER_DAY, description="Window length; must divide a day (default 15 min)"
    )
    policy: PolicyKind = Field(
        default=PolicyKind.DP,
        description="none, threshold, dp or dp-threshold (noise, then suppression of small noisy counts)",
    )
    k: int = Field(default=5, ge=2, le=100, description="Threshold policies: counts 0..k-1 are withheld")
    epsilon: float = Field(
        default=0.5,
        ge=0.01,
        le=10,
        description="DP policies: privacy loss per crossing; a window costs epsilon x max_crossings per person",
    )
    max_crossings: int = Field(
        default=2,
        ge=1,
        le=20,
        description="Crossings one tracked object may add to a window, over all lines; beyond that it is capped",
    )
    day_share: float = Field(
        default=0.3,
        ge=0,
        le=0.9,
        description="dp policy: share of each window's epsilon spent on a noisy daily total per line",
    )
    daily_budget: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DAILY_BUDGET,
        description=f"DP policies: epsilon the device may spend per UTC day (default {DEFAULT_DAILY_BUDGET:g})",
    )

    @field_validator("window_seconds")
    @classmethod
    def _divides_day(cls, value: int) -> int:
        if SECONDS_PER_DAY % value:
            raise ValueError("must divide 86400 so that windows stay aligned to the clock (e.g. 300, 900, 3600)")
        return value

    @model_validator(mode="after")
    def _budget_pays_one_window(self) -> PrivacyConfig:
        if self.policy in DP_KINDS and self.daily_budget is not None and self.daily_budget < self.window_charge:
            raise ValueError(
                f"daily_budget {self.daily_budget} cannot pay even one window "
                f"(epsilon {self.epsilon} x max_crossings {self.max_crossings})"
            )
        return self

    @property
    def windows_per_day(self) -> int:
        return SECONDS_PER_DAY // self.window_seconds

    @property
    def window_charge(self) -> float:
        """Epsilon one window costs: what one person can lose in it (each object adds at most max_crossings)."""
        return round(self.epsilon * self.max_crossings, 9)

    @property
    def day_epsilon(self) -> float:
        """Per-crossing epsilon of the daily total; only the dp policy with windows shorter than a day has one."""
        if self.policy is not PolicyKind.DP or self.window_seconds >= SECONDS_PER_DAY:
            return 0.0
        return self.epsilon * self.day_share

    @property
    def cell_epsilon(self) -> float:
        """Per-crossing epsilon of each window's own counts: what the daily total leaves."""
        return self.epsilon - self.day_epsilon

    @property
    def effective_budget(self) -> float:
        """A fixed default, not derived from the other settings: it bounds what a person present all day can
        lose, so shorter windows, a larger epsilon or max_crossings run it out instead of raising it."""
        return self.daily_budget if self.daily_budget is not None else DEFAULT_DAILY_BUDGET

    def policy_model(self) -> PrivacyPolicy:
        """The policy as published (without the day's spending, which the budget ledger adds)."""
        kind = self.policy
        return PrivacyPolicy(
            kind=kind,
            k=self.k if kind in (PolicyKind.THRESHOLD, PolicyKind.DP_THRESHOLD) else None,
            epsilon=self.epsilon if kind in DP_KINDS else None,
            daily_budget=self.effective_budget if kind in DP_KINDS else None,
            max_crossings=self.max_crossings,
            day_share=round(self.day_epsilon / self.epsilon, 6) if kind in DP_KINDS else None,
        )


class RegisterConfig(StrictModel):
    """The sensor-register entry (Amsterdam register fields). What leaves the device is derived, not configured."""

    sensor_type: str = Field(
        default="optical sensor (camera) with on-device counting",
        min_length=1,
        max_length=100,
        description="Kind of sensor as the register names it",
    )
    measures: list[str] = Field(
        default_factory=lambda: ["pedestrians and cyclists crossing counting lines, per direction"],
        min_length=1,
        max_length=20,
        description="What it measures",
    )
    purpose: str = Field(min_length=1, max_length=500, description="Why it measures")
    legal_ground: str = Field(
        default="public task (GDPR art. 6(1)(e))", min_length=1, max_length=200, description="Legal basis"
    )
    organisation: str = Field(min_length=1, max_length=200, description="Who runs the sensor")
    contact: str = Field(min_length=3, max_length=200, description="E-mail address or phone number for residents")
    website: HttpUrl | None = Field(default=None, description="More information")
    retention: str | None = Field(
        default=None,
        max_length=200,
        description="Not used (accepted so that older configs load): the hub fills in its own retention settings",
    )
    active_until: date = Field(description="Last day the device counts; after it, counting stops")
    street: str = Field(min_length=1, max_length=120, description="Street name only: no house number, no postcode")
    city: str = Field(min_length=1, max_length=80, description="Town or city")

    @field_validator("street", "city")
    @classmethod
    def _street_level(cls, value: str) -> str:
        value = " ".join(value.split())
        if _HOUSE_NUMBER.search(value) or _POSTCODE.search(value):
            raise ValueError("give the street name only: a house number or postcode is finer than street level")
        return value

    def is_active(self, today: date) -> bool:
        """True up to and including ``active_until``; after it the device must not count."""
        return today <= self.active_until
