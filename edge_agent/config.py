"""The agent's configuration: one TOML file, validated strictly; secrets stay in files of their own."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edge_agent.transport.config import HealthConfig, MqttConfig, OutboxConfig
from hub_protocol.validation import Identifier, StrictModel, load_toml_model

CONFIG_VERSION = 1


class DeviceConfig(StrictModel):
    id: Identifier = Field(description="Device id, unique in the fleet; also its broker user name")
    site: Identifier = Field(description="Site (street or hub) the device belongs to")
    state_dir: Path = Field(
        default=Path("/var/lib/edge-agent"), description="Where the outbox and locker state live (SQLite)"
    )


class AgentConfig(StrictModel):
    config_version: int = Field(default=CONFIG_VERSION, ge=1, le=CONFIG_VERSION, description="Config format")
    device: DeviceConfig = Field(description="Who this device is")
    mqtt: MqttConfig = Field(description="Connection to the hub's broker")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Durable event store on the device")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Health telemetry")


def load_agent_config(path: Path) -> AgentConfig:
    return load_toml_model(AgentConfig, path)
