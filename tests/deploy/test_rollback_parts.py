"""A pushed config is confirmed only when the agent's parts run, not merely when the broker link is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.deploy.sdnotify import SystemdNotifier
from edge_agent.deploy.service import ServiceLifecycle
from tests.conftest import BrokerSetup
from tests.deploy.conftest import write_agent_config

COUNTING = """
[counting]
source = "{source}"
fps = 10
lines = [{{ name = "kerb", points = [0, 120, 320, 120] }}]
"""


def _run_trial(installed: Path, timeout_s: float) -> tuple[ServiceLifecycle, Agent, float]:
    lifecycle = ServiceLifecycle(installed, trial_timeout_s=timeout_s)
    agent = Agent(lifecycle.load_config(), lifecycle=lifecycle, notifier=SystemdNotifier({}))
    agent.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s + 10:
            agent.tick(datetime.now(UTC))
            if lifecycle.restart_reason is not None or not lifecycle.store.in_trial():
                break
            time.sleep(0.2)
    finally:
        agent.stop()
    return lifecycle, agent, time.monotonic() - started


@pytest.mark.slow
def test_a_pushed_config_with_a_dead_camera_is_rolled_back(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup]
) -> None:
    setup = make_broker(devices=("dev-a",))
    installed = write_agent_config(
        tmp_path,
        host=setup.host,
        port=setup.port,
        password=setup.device_passwords["dev-a"],
        site=setup.site,
        extra=COUNTING.format(source="synthetic"),
    )
    dead_camera = installed.read_text().replace('source = "synthetic"', 'source = "/dev/video97"')
    store = ServiceLifecycle(installed).store
    current = ServiceLifecycle(installed).load_config()
    store.stage(dead_camera, current, "push-dead-camera")

    lifecycle, _, _ = _run_trial(installed, timeout_s=4)
    assert lifecycle.restart_reason is not None and "rolling back" in lifecycle.restart_reason
    assert lifecycle.exit_code == 75
    assert not store.in_trial() and store.active_path() == installed  # the installed config is active again


@pytest.mark.slow
def test_a_pushed_config_with_a_working_camera_is_confirmed(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup]
) -> None:
    setup = make_broker(devices=("dev-a",))
    installed = write_agent_config(
        tmp_path,
        host=setup.host,
        port=setup.port,
        password=setup.device_passwords["dev-a"],
        site=setup.site,
        extra=COUNTING.format(source="synthetic"),
    )
    store = ServiceLifecycle(installed).store
    current = ServiceLifecycle(installed).load_config()
    store.stage(installed.read_text().replace("fps = 10", "fps = 8"), current, "push-fps")

    lifecycle, _, _ = _run_trial(installed, timeout_s=20)
    assert lifecycle.restart_reason is None
    assert not store.in_trial() and store.active_path() == store.pushed
