"""The agent's configuration: one TOML file, validated strictly; secrets stay in files of their own."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edge_agent.counting.config import CountingConfig
from edge_agent.deploy.migrate import migrate_config
from edge_agent.lockers.config import LockersConfig
from edge_agent.privacy.config import PrivacyConfig, RegisterConfig
from edge_agent.setup.config import SetupConfig
from edge_agent.transport.config import HealthConfig, MqttConfig, OutboxConfig
from hub_protocol.validation import Identifier, StrictModel, read_toml, validate_data

CONFIG_VERSION = 1


class DeviceConfig(StrictModel):
    id: Identifier = Field(description="Device id, unique in the fleet; also its broker user name")
    site: Identifier = Field(description="Site (street or hub) the device belongs to")
    state_dir: Path = Field(
        default=Path("/var/lib/edge-agent"), description="Where the outbox and locker state live (SQLite)"
    )
    clock_sync: Literal["required", "trust"] = Field(
        default="required",
        description='Flow windows open once the system reports its clock synchronised ("required"), or with any '
        'clock past this version\'s release ("trust": a battery-backed clock, a lab, the demo)',
    )


class AgentConfig(StrictModel):
    config_version: int = Field(default=CONFIG_VERSION, ge=1, le=CONFIG_VERSION, description="Config format")
    device: DeviceConfig = Field(description="Who this device is")
    mqtt: MqttConfig = Field(description="Connection to the hub's broker")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Durable event store on the device")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Health telemetry")
    counting: CountingConfig | None = Field(default=None, description="Flow counting on a camera (none: no counting)")
    privacy: PrivacyConfig | None = Field(default=None, description="Flow windows and their protection")
    sensor_register: RegisterConfig | None = Field(
        default=None, description="Entry for the public sensor register; its active_until ends counting"
    )
    lockers: LockersConfig | None = Field(default=None, description="Locker bank on this device (none: no lockers)")
    setup: SetupConfig = Field(
        default_factory=SetupConfig, description="Technician's setup page (off until opened for a limited time)"
    )


def load_agent_config(path: Path) -> AgentConfig:
    """Read, upgrade an older layout (with a notice on stderr), then validate."""
    return parse_agent_config(read_toml(path), str(path))


def parse_agent_config(data: dict[str, Any], source: str, notices: list[str] | None = None) -> AgentConfig:
    """Validate a TOML dictionary; upgrade notices go to ``notices`` when given, else to stderr."""
    data, changes = migrate_config(data)
    if notices is not None:
        notices.extend(changes)
    for change in changes if notices is None else ():
        print(f"{source}: notice: {change}", file=sys.stderr)
    return validate_data(AgentConfig, data, source)
