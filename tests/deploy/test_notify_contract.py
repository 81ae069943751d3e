"""`edge-agent run` as the unit runs it: credential from $CREDENTIALS_DIRECTORY, READY, watchdog, STOPPING."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import BrokerSetup
from tests.deploy.conftest import write_agent_config


def collect(sock: socket.socket, wanted: str, timeout: float) -> list[str]:
    """Datagrams until one contains ``wanted`` (or the time is up)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            seen.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if wanted in seen[-1]:
            break
    return seen


@pytest.mark.slow
def test_agent_speaks_sd_notify(tmp_path: Path, make_broker: Callable[..., BrokerSetup]) -> None:
    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(
        tmp_path, host=setup.host, port=setup.port, password=setup.device_passwords["dev-a"], site=setup.site
    )
    # As under systemd: the config names a credential, LoadCredential puts it in $CREDENTIALS_DIRECTORY (0400).
    secret = tmp_path / "mqtt-password"
    config.write_text(config.read_text().replace(f'password_file = "{secret}"', 'password_file = "mqtt-password"'))
    assert 'password_file = "mqtt-password"' in config.read_text()
    secret.chmod(0o400)
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        env = {
            **os.environ,
            "NOTIFY_SOCKET": address,
            "WATCHDOG_USEC": "2000000",
            "CREDENTIALS_DIRECTORY": str(tmp_path),
            "GPIOZERO_PIN_FACTORY": "mock",
        }
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            started = collect(sock, "READY=1", 30)
            assert any("READY=1" in m for m in started), started
            assert any("WATCHDOG=1" in m for m in collect(sock, "WATCHDOG=1", 5))
            agent.send_signal(signal.SIGTERM)
            assert any("STOPPING=1" in m for m in collect(sock, "STOPPING=1", 15))
            assert agent.wait(timeout=20) == 0
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(timeout=10)
            if agent.stderr:
                agent.stderr.close()
