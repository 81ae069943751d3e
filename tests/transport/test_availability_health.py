"""Availability that tells the truth, and the health figures a device reports."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from edge_agent.health import HealthSampler, cpu_temperature, memory_used_fraction
from edge_agent.transport.outbox import OutboxStats
from edge_agent.transport.service import Transport
from hub_protocol.envelope import CameraState
from tests.conftest import BrokerSetup, agent_config, wait_until
from tests.transport.helpers import AgentProcess, start_ingest


def _state(db: Path, device: str) -> tuple[int, str | None] | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT online, offline_reason FROM devices WHERE device = ?", (device,)).fetchone()
    return (row[0], row[1]) if row else None


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill", "frozen"])
def test_agent_gone_without_goodbye_is_offline_within_one_and_a_half_keepalives(
    broker: BrokerSetup, tmp_path: Path, how: str
) -> None:
    """SIGKILL closes the socket (the broker notices at once); a frozen agent (SIGSTOP: power cut, hung board,
    cable pulled) keeps it open, so only the keepalive reveals it."""
    keepalive = 5
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db, writer_process=False)
    agent = AgentProcess(agent_config(broker, "dev-a", tmp_path, mqtt={"keepalive_s": keepalive}), tmp_path, 3, 0)
    try:
        assert wait_until(lambda: agent.has("drained") and _state(db, "dev-a") == (1, None), 20)
        agent.process.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGSTOP)
        gone = time.monotonic()
        limit = 1.5 * keepalive + 5  # "a few seconds": the broker's keepalive check and the hub's batch, under load
        assert wait_until(lambda: _state(db, "dev-a") == (0, "will"), limit + 2), _state(db, "dev-a")
        took = time.monotonic() - gone
        print(f"\n[offline after {how}] keepalive={keepalive}s, shown offline after {took:.1f}s (limit {limit:.1f}s)")
        assert took <= limit
    finally:
        agent.process.send_signal(signal.SIGKILL)
        agent.stop()
        ingest.stop()


def test_health_reaches_the_hub_with_outbox_and_camera_figures(broker: BrokerSetup, tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db, writer_process=False)
    config = agent_config(broker, "dev-a", tmp_path, health={"interval_s": 1})
    transport = Transport(config, camera_stats=lambda: (CameraState.OK, 12.5))
    transport.start()
    try:

        def samples() -> list[tuple[float, str, int]]:
            with sqlite3.connect(db) as conn:
                return [tuple(r) for r in conn.execute("SELECT fps, camera_state, outbox_depth FROM health_samples")]

        assert wait_until(lambda: len(samples()) >= 2, 10), "health did not arrive every interval"
        assert samples()[0] == (12.5, "ok", 0)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM health_latest").fetchone()[0] == 1
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0, "health is not an event"
    finally:
        transport.stop()
        ingest.stop()


def test_sampler_reads_the_board(tmp_path: Path) -> None:
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("48312\n")
    assert cpu_temperature(tmp_path / "thermal") == 48.3
    assert cpu_temperature(tmp_path / "nothing") is None
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n")
    assert memory_used_fraction(meminfo) == pytest.approx(0.75)
    stats = OutboxStats(depth=7, oldest_age_s=31.0, dropped_total=2)
    sampler = HealthSampler("dev-a", "b1", "0.1.0", tmp_path, lambda: stats, thermal_root=tmp_path / "thermal")
    health = sampler.sample()
    assert (health.outbox_depth, health.outbox_oldest_age_s, health.dropped_total) == (7, 31.0, 2)
    assert health.cpu_temp_c == 48.3 and health.camera_state is CameraState.ABSENT and health.fps == 0
    assert health.disk_free_bytes > 0 and 0 <= health.mem_used_fraction <= 1
