"""Config sections of the privacy domain: how flow windows are protected, and the sensor-register entry."""

from __future__ import annotations

import re
from datetime import date

from pydantic import Field, HttpUrl, field_validator, model_validator

from hub_protocol.flows import DP_KINDS, MAX_DAILY_BUDGET, PolicyKind, PrivacyPolicy
from hub_protocol.validation import StrictModel

SECONDS_PER_DAY = 86_400

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
    k: int = Field(default=5, ge=2, le=100, description="Threshold policies: counts 1..k-1 are suppressed")
    epsilon: float = Field(default=1.0, gt=0, le=10, description="DP policies: privacy loss spent per window")
    daily_budget: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DAILY_BUDGET,
        description="DP policies: epsilon the device may spend per UTC day; default epsilon x windows per day",
    )

    @field_validator("window_seconds")
    @classmethod
    def _divides_day(cls, value: int) -> int:
        if SECONDS_PER_DAY % value:
            raise ValueError("must divide 86400 so that windows stay aligned to the clock (e.g. 300, 900, 3600)")
        return value

    @model_validator(mode="after")
    def _budget_pays_one_window(self) -> PrivacyConfig:
        if self.policy in DP_KINDS and self.daily_budget is not None and self.daily_budget < self.epsilon:
            raise ValueError(f"daily_budget {self.daily_budget} cannot pay even one window of epsilon {self.epsilon}")
        return self

    @property
    def windows_per_day(self) -> int:
        return SECONDS_PER_DAY // self.window_seconds

    @property
    def effective_budget(self) -> float:
        """Enough for every window of a day unless a smaller budget is configured."""
        if self.daily_budget is not None:
            return self.daily_budget
        return round(self.epsilon * self.windows_per_day, 9)

    def policy_model(self) -> PrivacyPolicy:
        """The policy as published (without the day's spending, which the budget ledger adds)."""
        kind = self.policy
        return PrivacyPolicy(
            kind=kind,
            k=self.k if kind in (PolicyKind.THRESHOLD, PolicyKind.DP_THRESHOLD) else None,
            epsilon=self.epsilon if kind in DP_KINDS else None,
            daily_budget=self.effective_budget if kind in DP_KINDS else None,
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
