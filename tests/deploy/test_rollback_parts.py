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


def _run_trial(installed: Path, timeout_s: float) -> ServiceLifecycle:
    """``edge-agent run`` with the pushed config on trial, until the trial settles (or a little past its time)."""
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
    return lifecycle


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "kept"),
    [("/dev/video97", False), ("synthetic", True)],
    ids=["dead-camera-rolled-back", "working-camera-confirmed"],
)
def test_a_pushed_config_is_kept_only_when_its_camera_delivers(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup], source: str, kept: bool
) -> None:
    """The broker link is up in both cases: before, that alone confirmed a config with a dead camera."""
    setup = make_broker(devices=("dev-a",))
    installed = write_agent_config(
        tmp_path,
        host=setup.host,
        port=setup.port,
        password=setup.device_passwords["dev-a"],
        site=setup.site,
        extra=COUNTING.format(source="synthetic"),
    )
    pushed = (
        installed.read_text().replace('source = "synthetic"', f'source = "{source}"').replace("fps = 10", "fps = 8")
    )
    store = ServiceLifecycle(installed).store
    store.stage(pushed, ServiceLifecycle(installed).load_config(), "push-1")

    lifecycle = _run_trial(installed, timeout_s=4 if not kept else 20)
    assert not store.in_trial()
    if kept:
        assert lifecycle.restart_reason is None and store.active_path() == store.pushed
    else:
        assert lifecycle.restart_reason is not None and "rolling back" in lifecycle.restart_reason
        assert lifecycle.exit_code == 75 and store.active_path() == installed  # the installed config again
