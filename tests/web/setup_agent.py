"""An agent as ``edge-agent run`` under systemd, for the setup page's browser tests: restarted while it
exits with the restart code (a saved config), with the config the tests write."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.deploy.config_update import RESTART_EXIT_CODE
from edge_agent.deploy.service import ServiceLifecycle
from tests.conftest import BrokerSetup, wait_for, write_secret


@dataclass
class Service:
    """``edge-agent run`` under a stand-in for systemd: started again while it exits with the restart code."""

    installed: Path
    agents: list[Agent] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="agent-service", daemon=True)
        self.thread.start()
        wait_for(lambda: self.agents, timeout=30, what="the agent to start")

    def _run(self) -> None:
        while not self.stopping.is_set():
            lifecycle = ServiceLifecycle(self.installed, trial_timeout_s=60)
            agent = Agent(lifecycle.load_config(), lifecycle=lifecycle)
            agent.start()
            self.agents.append(agent)
            agent.serve()
            self.exit_codes.append(lifecycle.exit_code)
            if lifecycle.exit_code != RESTART_EXIT_CODE:
                break

    def stop(self) -> None:
        self.stopping.set()
        if self.agents:
            self.agents[-1].request_stop()
        if self.thread is not None:
            self.thread.join(30)


def agent_toml(
    broker: BrokerSetup, folder: Path, device: str, source: str, setup_port: int, language: str = "en"
) -> str:
    """Counting ``source`` with one line, threshold protection (k=2, 1-minute windows), a register entry."""
    secret = write_secret(folder / "mqtt-password", broker.device_passwords[device])
    until = (date.today() + timedelta(days=30)).isoformat()
    return f"""config_version = 1
[device]
id = "{device}"
site = "{broker.site}"
state_dir = "{folder / "state"}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
prefix = "{broker.prefix}"
password_file = "{secret}"
tls = false
keepalive_s = 5
reconnect_min_s = 0.2
reconnect_max_s = 2.0
ack_timeout_s = 3.0

[counting]
source = "{source}"
fps = 14

[[counting.lines]]
name = "v-left"
points = [256, 0, 256, 480]  # inside both the PETS clip (768x576) and the synthetic street (640x480)

[privacy]
policy = "threshold"
k = 2
window_seconds = 60

[sensor_register]
purpose = "Test the setup page"
organisation = "Field lab"
contact = "lab@example.org"
active_until = {until}
street = "Voorbeeldstraat"
city = "Amsterdam"

[setup]
host = "127.0.0.1"
port = {setup_port}
language = "{language}"
background_frames = 80
"""
