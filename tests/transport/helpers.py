"""Shared set-up of the transport tests: agent and hub configured against the private test broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from hub_server.config import HubMqttConfig, IngestConfig
from hub_server.ingest import Ingest
from hub_server.store.db import Database
from tests.conftest import BrokerSetup


def write_secret(path: Path, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    path.chmod(0o600)
    return path


def agent_config(setup: BrokerSetup, device: str, folder: Path, **sections: dict[str, Any]) -> AgentConfig:
    secret = write_secret(folder / f"{device}.password", setup.device_passwords[device])
    mqtt = {
        "host": setup.host,
        "port": setup.port,
        "prefix": setup.prefix,
        "password_file": str(secret),
        "tls": False,
        "keepalive_s": 5,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 2.0,
        "ack_timeout_s": 3.0,
        **sections.pop("mqtt", {}),
    }
    data = {
        "device": {"id": device, "site": setup.site, "state_dir": str(folder / device)},
        "mqtt": mqtt,
        **sections,
    }
    return AgentConfig.model_validate(data)


def hub_mqtt(setup: BrokerSetup) -> HubMqttConfig:
    return HubMqttConfig(
        host=setup.host, port=setup.port, prefix=setup.prefix, username=setup.hub_user, password_file="unused"
    )


def start_ingest(setup: BrokerSetup, db_path: Path, **settings: Any) -> Ingest:
    Database(db_path)
    ingest = Ingest(db_path, hub_mqtt(setup), IngestConfig(**settings), password=setup.hub_password)
    ingest.start()
    assert ingest.mqtt is not None and ingest.mqtt.wait_connected(10), "hub did not connect"
    return ingest


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def alarm_fields(n: int) -> dict[str, Any]:
    """A small, valid event whose detail carries a producer's own number."""
    from datetime import UTC, datetime

    return {"alarm": "sensor-fault", "active": True, "at": datetime.now(UTC), "detail": f"n={n}"}


def report(title: str, sent: set[Any], received: list[Any]) -> dict[str, int]:
    unique = set(received)
    figures = {
        "sent": len(sent),
        "received_unique": len(unique & sent),
        "duplicates": len(received) - len(unique),
        "missing": len(sent - unique),
        "unexpected": len(unique - sent),
    }
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    return figures
