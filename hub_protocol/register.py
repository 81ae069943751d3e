"""The sensor-register entry each device publishes (retained) so anyone can see what it does."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, HttpUrl

from hub_protocol.flows import PrivacyPolicy
from hub_protocol.validation import Identifier, StrictModel


class RegisterEntry(StrictModel):
    """Follows the fields of the Amsterdam sensor register; built from the device config, nothing else."""

    v: Literal[1] = Field(default=1, description="Payload version")
    device: Identifier = Field(description="Device id")
    site: Identifier = Field(description="Site id")
    sensor_type: str = Field(max_length=100, description="e.g. 'optical sensor (camera), on-device counting'")
    measures: list[str] = Field(max_length=20, description="What it measures")
    purpose: str = Field(max_length=500, description="Why it measures")
    legal_ground: str = Field(max_length=200, description="Legal basis for processing")
    organisation: str = Field(max_length=200, description="Who runs the sensor")
    contact: str = Field(max_length=200, description="How to reach them (e-mail or phone)")
    website: HttpUrl | None = Field(default=None, description="More information")
    leaves_device: list[str] = Field(max_length=20, description="Every kind of data that leaves the device")
    never_leaves: list[str] = Field(max_length=20, description="What stays on the device, always")
    privacy: PrivacyPolicy | None = Field(description="Protection applied to counts (none if it counts nothing)")
    retention: str | None = Field(
        default=None,
        max_length=200,
        description="How long the hub keeps what it receives: devices send null, the hub fills in its own settings",
    )
    active_until: date = Field(description="After this date the device stops counting")
    location: str = Field(max_length=200, description="Street-level location, never finer")
