"""The ``[setup]`` section of the agent config: where the setup page listens once a technician opens it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub_protocol.validation import StrictModel


class SetupConfig(StrictModel):
    host: str = Field(
        default="0.0.0.0",  # noqa: S104 - the page answers local-network addresses only (see setup/app.py)
        min_length=1,
        max_length=253,
        description="Address the setup page binds to while open; it answers private network addresses only",
    )
    port: int = Field(default=8089, ge=0, le=65535, description="Port of the setup page (0: any free port)")
    language: Literal["nl", "de", "en"] = Field(default="nl", description="Default language of the page")
    background_frames: int = Field(
        default=300, ge=50, le=10_000, description="Frames the background picture is learned from (people fade out)"
    )
