"""The watchdog is fed only while camera, counter, outbox and MQTT link all make progress."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.agent import Agent
from edge_agent.counting.sources import LiveSource
from edge_agent.deploy.sdnotify import SystemdNotifier
from tests.conftest import BrokerSetup, agent_config, wait_for

COUNTING = {"source": "0", "fps": 20, "lines": [{"name": "kerb", "points": [0, 5, 32, 5]}]}


class RecordingNotifier(SystemdNotifier):
    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[str] = []

    def notify(self, *assignments: str) -> bool:
        self.sent.extend(assignments)
        return True

    def watchdogs(self) -> int:
        return self.sent.count("WATCHDOG=1")


class HangingCamera:
    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()

    def grab(self, _handle: Any) -> np.ndarray:
        if self.hang.is_set():
            self.release.wait()
        time.sleep(0.02)
        return np.zeros((24, 32, 3), np.uint8)


class Ticker:
    """The agent's main loop, run here so the test can look at what it sends to systemd."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.agent.tick(datetime.now(UTC))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def _fed_within(notifier: RecordingNotifier, seconds: float) -> bool:
    before = notifier.watchdogs()
    time.sleep(seconds)
    return notifier.watchdogs() > before


@pytest.mark.slow
def test_a_camera_stuck_in_grab_stops_the_watchdog_and_a_released_one_feeds_it_again(
    broker: BrokerSetup, tmp_path: Path
) -> None:
    camera = HangingCamera()
    config = agent_config(broker, "dev-a", tmp_path, counting=COUNTING)
    notifier = RecordingNotifier()
    agent = Agent(config, notifier=notifier, stall_s=1.5)
    assert agent.counter is not None
    agent.counter._source_factory = lambda: LiveSource(lambda: object(), camera.grab, lambda _h: None, fps=20)
    agent.start()
    ticker = Ticker(agent)
    try:
        assert agent.transport.link.wait_connected(10)
        wait_for(lambda: all(agent.progress().values()), 10, "every part progressing")
        assert _fed_within(notifier, 1.0)
        camera.hang.set()
        wait_for(lambda: not agent.progress()["camera"], 5, "the stuck camera seen")
        assert agent.progress() == {"mqtt": True, "outbox": True, "counter": True, "camera": False}
        assert not _fed_within(notifier, 1.0)
        assert any(s.startswith("STATUS=stuck: camera") for s in notifier.sent)
        camera.release.set()
        wait_for(lambda: all(agent.progress().values()), 5, "the camera back")
        assert _fed_within(notifier, 1.0)
    finally:
        camera.release.set()
        ticker.close()
        agent.stop()
