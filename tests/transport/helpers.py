"""Shared set-up of the transport tests: agent and hub configured against the private test broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from hub_server.config import HubMqttConfig, IngestConfig
from hub_server.ingest.service import Ingest
from hub_server.store.db import Database
from tests.conftest import BrokerSetup


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


def alarm_fields(n: int) -> dict[str, Any]:
    """A small, valid event whose detail carries a producer's own number."""
    from datetime import UTC, datetime

    return {"alarm": "sensor-fault", "active": True, "at": datetime.now(UTC), "detail": f"n={n}"}


def report(title: str, sent: set[Any], stored: list[Any], resent: int) -> dict[str, int]:
    """``sent``: what producers recorded; ``stored``: the hub's rows; ``resent``: copies the hub received and ignored."""
    unique = set(stored)
    figures = {
        "sent": len(sent),
        "received_unique": len(unique & sent),
        "duplicates": resent,
        "missing": len(sent - unique),
        "extra": len(unique - sent),
        "stored_twice": len(stored) - len(unique),
    }
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


class AgentProcess:
    """``python -m tests.transport.agent_proc`` with its stdout collected line by line in a thread."""

    def __init__(self, config: AgentConfig, folder: Path, count: int, interval: float) -> None:
        import subprocess
        import sys
        import threading

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{config.device.id}-agent.json"
        path.write_text(config.model_dump_json())
        root = Path(__file__).resolve().parents[2]
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.transport.agent_proc", str(path), str(count), str(interval)],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def recorded(self) -> set[tuple[str, int]]:
        out = set()
        for line in list(self.lines):
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                out.add((parts[0], int(parts[1])))
        return out

    def has(self, marker: str) -> bool:
        return marker in self.lines

    def kill(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(5)

    def stop(self, timeout: float = 10) -> int:
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        return self.process.returncode
