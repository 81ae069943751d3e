"""``hub-server serve`` runs the real thing: HTTP, ingest connected to the broker, clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hub_protocol import tomlwrite
from hub_server.fleet.broker import free_port
from tests.conftest import BrokerSetup


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_serve_answers_connects_and_stops_cleanly(managed_broker: tuple[BrokerSetup, Path, Any]) -> None:
    _, config_path, _ = managed_broker
    data = tomllib.loads(config_path.read_text())
    port = free_port()
    data["http"]["port"] = port
    config_path.write_text(tomlwrite.dumps(data))
    process = subprocess.Popen(
        [sys.executable, "-m", "hub_server.cli", "serve", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        health: Any = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = get_json(f"http://127.0.0.1:{port}/api/v1/health")
                if health["broker_connected"]:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert health is not None and health["status"] == "ok" and health["broker_connected"] is True, health
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output.decode(errors="replace")[-3000:]
        assert b"Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
