"""The hub's configuration: one TOML file, validated strictly; secrets stay in files of their own."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from hub_protocol.topics import check_prefix
from hub_protocol.validation import StrictModel, load_toml_model


class HubMqttConfig(StrictModel):
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253, description="Broker host name")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port")
    prefix: str = Field(default="cot", max_length=128, description="First level(s) of every topic")
    username: str = Field(default="hub", min_length=1, max_length=64, description="The hub's broker user")
    password_file: str = Field(
        min_length=1, max_length=4096, description="File with the hub's broker password, or a systemd credential name"
    )
    tls: bool = Field(default=False, description="Connect with TLS (off for a broker on the same machine)")
    ca_file: Path | None = Field(default=None, description="CA certificate for TLS")
    keepalive_s: int = Field(default=30, ge=5, le=600, description="MQTT keepalive in seconds")

    @field_validator("prefix")
    @classmethod
    def _prefix_levels(cls, value: str) -> str:
        return check_prefix(value)


class HttpConfig(StrictModel):
    host: str = Field(default="127.0.0.1", description="Address to listen on")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port")
    public_url: str = Field(
        default="http://127.0.0.1:8080", max_length=300, description="Base URL residents' links point to"
    )
    behind_tls: bool = Field(default=False, description="Set when a TLS proxy fronts the hub: cookies get Secure")
    session_key_file: str = Field(
        min_length=1, max_length=4096, description="File with the session signing key, or a systemd credential name"
    )
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024, description="Cap on request bodies")


class StoreConfig(StrictModel):
    path: Path = Field(default=Path("/var/lib/hub-server/hub.sqlite3"), description="SQLite database file")


class HubConfig(StrictModel):
    config_version: int = Field(default=1, ge=1, le=1, description="Config format")
    mqtt: HubMqttConfig = Field(description="Connection to the broker")
    http: HttpConfig = Field(description="Web server")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Storage")


def load_hub_config(path: Path) -> HubConfig:
    return load_toml_model(HubConfig, path)
