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


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_second_serve_on_one_sqlite_store_is_refused(
    managed_broker: tuple[BrokerSetup, Path, Any], tmp_path: Path
) -> None:
    _, config_path, config = managed_broker
    if config.store.url is not None:
        pytest.skip("the one-instance rule is SQLite's; PostgreSQL serves several")
    data = tomllib.loads(config_path.read_text())
    port = free_port()
    data["http"]["port"] = port
    config_path.write_text(tomlwrite.dumps(data))
    serve = [sys.executable, "-m", "hub_server.cli", "serve", "--config", str(config_path)]
    first = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:
            try:
                get_json(f"http://127.0.0.1:{port}/api/v1/health")
                break
            except OSError:
                time.sleep(0.2)
        second = subprocess.run(serve, capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"hub-server: error: store.path '{config.store.path}' is in use by another hub instance "
            f"(pid {first.pid}): SQLite keeps one instance; for several, use PostgreSQL (store.url)"
        ]
        secret = tmp_path / "pw"
        secret.write_text("a long enough password\n")
        secret.chmod(0o600)
        user = [sys.executable, "-m", "hub_server.cli", "user", "--config", str(config_path)]
        added = subprocess.run(
            [*user, "add", "alice", "--role", "admin", "--password-file", str(secret)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert added.returncode == 0, added.stderr  # short commands run beside the serving hub
        assert first.poll() is None, "the first hub serves on"
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=30)
        assert first.returncode == 0, output.decode(errors="replace")[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=10)
