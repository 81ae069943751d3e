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


def _spawn(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _reap(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        agent.kill()
        agent.wait(timeout=10)
    if agent.stderr:
        agent.stderr.close()


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
        agent = _spawn(config, env)
        try:
            started = collect(sock, "READY=1", 30)
            assert any("READY=1" in m for m in started), started
            assert any("WATCHDOG=1" in m for m in collect(sock, "WATCHDOG=1", 5))
            agent.send_signal(signal.SIGTERM)
            assert any("STOPPING=1" in m for m in collect(sock, "STOPPING=1", 15))
            assert agent.wait(timeout=20) == 0
        finally:
            _reap(agent)


def _catches(pid: int, signum: int) -> bool:
    """The process has a handler for ``signum`` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask >> (signum - 1) & 1)


@pytest.mark.slow
def test_a_stop_at_the_first_moment_the_agent_takes_one_ends_it_cleanly(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup]
) -> None:
    """systemd may stop a unit that is still importing OpenCV: the agent exits 0 through its own shutdown. (Its
    handler is installed before the heavy imports, so the window where the signal's default action applies is
    only the interpreter's own start.)"""
    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(
        tmp_path, host=setup.host, port=setup.port, password=setup.device_passwords["dev-a"], site=setup.site
    )
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    agent = _spawn(config, env)
    try:
        deadline = time.monotonic() + 30
        while not _catches(agent.pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert _catches(agent.pid, signal.SIGTERM), "the agent never installed its stop handler"
        agent.send_signal(signal.SIGTERM)  # the first moment it can be asked to stop: imports still running
        assert agent.wait(timeout=30) == 0
    finally:
        _reap(agent)
