"""Outbox -> broker -> hub ingest -> ack -> outbox empty, with availability on both ends."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge_agent.transport.service import Transport
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_until
from tests.transport.helpers import alarm_fields, start_ingest


def _hub_events(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return [tuple(r) for r in conn.execute("SELECT device, boot, seq FROM events")]


def _device(db: Path, device: str) -> tuple[int, str | None]:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT online, offline_reason FROM devices WHERE device = ?", (device,)).fetchone()
    return (row[0], row[1]) if row else (-1, None)


@pytest.mark.parametrize("writer_process", [True, False])
def test_events_reach_the_hub_once_and_leave_the_outbox_on_ack(
    broker: BrokerSetup, tmp_path: Path, writer_process: bool
) -> None:
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db, writer_process=writer_process)
    transport = Transport(agent_config(broker, "dev-a", tmp_path))
    try:
        seqs = [transport.sink.emit(Channel.ALARM, alarm_fields(n)) for n in range(25)]
        assert seqs == list(range(1, 26))
        transport.start()
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 15), "outbox not emptied by hub acks"
        events = _hub_events(db)
        assert sorted(events) == [("dev-a", transport.boot, s) for s in seqs]
        assert wait_until(lambda: _device(db, "dev-a") == (1, None), 5)
        stats = ingest.stats()
        assert stats.stored == 25 and stats.invalid == 0
    finally:
        transport.stop()
    assert wait_until(lambda: _device(db, "dev-a") == (0, "graceful"), 5), _device(db, "dev-a")
    ingest.stop()


def test_a_killed_writer_process_is_restarted_and_nothing_is_lost(broker: BrokerSetup, tmp_path: Path) -> None:
    import os
    import signal

    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    transport = Transport(agent_config(broker, "dev-a", tmp_path))
    transport.start()
    try:
        first = [transport.sink.emit(Channel.ALARM, alarm_fields(n)) for n in range(20)]
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 15)
        os.kill(ingest._worker.pid, signal.SIGKILL)
        second = [transport.sink.emit(Channel.ALARM, alarm_fields(n)) for n in range(20)]
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 30), "events after the crash never acked"
        assert sorted(s for _, _, s in _hub_events(db)) == first + second
        assert ingest.stats().errors >= 1
    finally:
        transport.stop()
        ingest.stop()
