"""Config sections of the transport: the broker connection, the outbox and health reporting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hub_protocol.topics import check_prefix
from hub_protocol.validation import StrictModel


class MqttConfig(StrictModel):
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253, description="Broker host name")
    port: int = Field(default=8883, ge=1, le=65535, description="Broker port (8883 with TLS, 1883 without)")
    prefix: str = Field(default="cot", max_length=128, description="First level(s) of every topic")
    username: str | None = Field(default=None, max_length=64, description="Broker user; default: the device id")
    password_file: str = Field(
        min_length=1,
        max_length=4096,
        description="Path of the file holding the broker password, or a systemd credential name",
    )
    tls: bool = Field(default=True, description="Connect with TLS")
    ca_file: Path | None = Field(default=None, description="CA certificate for TLS; default: the system's CAs")
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keepalive; the will fires after 1.5x")
    reconnect_min_s: float = Field(default=1.0, ge=0.05, le=60, description="First reconnect delay ceiling")
    reconnect_max_s: float = Field(default=120.0, ge=0.1, le=3600, description="Largest reconnect delay ceiling")
    max_inflight: int = Field(default=50, ge=1, le=1000, description="Events published and not yet PUBACKed")
    window: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="Events sent and not yet acknowledged by the hub; keep below the broker's queue limit",
    )
    ack_timeout_s: float = Field(
        default=30.0, ge=0.5, le=3600, description="Resend the unacknowledged window after this long without an ack"
    )
    ack_stall_s: float = Field(
        default=10.0,
        ge=0.5,
        le=3600,
        description="...or sooner, after this long while the hub acknowledges newer events but not the oldest "
        "(one of several hub instances died with them)",
    )

    @field_validator("prefix")
    @classmethod
    def _prefix_levels(cls, value: str) -> str:
        return check_prefix(value)

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be at least reconnect_min_s")
        return self


class OutboxConfig(StrictModel):
    max_events: int = Field(default=100_000, ge=10, le=10_000_000, description="Cap on stored, unacked events")
    overflow: Literal["drop-oldest", "drop-newest"] = Field(
        default="drop-oldest", description="What to drop at the cap (always counted and reported)"
    )


class HealthConfig(StrictModel):
    interval_s: float = Field(default=60, ge=1, le=3600, description="Seconds between health messages")
