"""An agent whose clock is not synchronised counts no windows yet, and says so in health and to systemd."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edge_agent.agent import Agent
from tests.conftest import BrokerSetup, agent_config
from tests.deploy.test_watchdog_progress import RecordingNotifier
from tests.privacy.test_clock_steps import FakeTime

COUNTING = {"source": "synthetic", "fps": 5, "lines": [{"name": "kerb", "points": [0, 120, 320, 120]}]}


def test_windows_wait_for_the_clock_and_the_wait_is_visible(broker: BrokerSetup, tmp_path: Path) -> None:
    time = FakeTime(datetime(1970, 1, 1, 0, 0, 30, tzinfo=UTC), synced=False)
    notifier = RecordingNotifier()
    agent = Agent(agent_config(broker, "dev-a", tmp_path, counting=COUNTING), notifier=notifier, time_source=time)
    assert agent.reporter is not None
    agent.start()
    try:
        agent.tick(datetime.now(UTC))
        assert not agent.reporter.windows_open
        assert agent.transport.health.sample().clock_sync == "unsynced"
        assert any("wait for the clock" in s for s in notifier.sent if s.startswith("STATUS="))

        time.step(datetime.now(UTC) - time.wall)  # NTP answers
        time.synced = True
        time.run(11)  # the next look at the system's sync state is due
        agent.tick(datetime.now(UTC))
        assert agent.reporter.windows_open
        assert agent.transport.health.sample().clock_sync == "synced"
        assert notifier.sent[-2:] == ["STATUS=device dev-a running", "WATCHDOG=1"]
    finally:
        agent.stop()
