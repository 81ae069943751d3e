"""Drop notices declare only numbers really dropped: a notice that reaches the hub before the events the outbox
still holds must not let the hub acknowledge (and the device delete) those events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_agent.transport.service import Transport
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_until
from tests.transport.helpers import alarm_fields, report, start_ingest


def _held(transport: Transport) -> set[tuple[str, int]]:
    return {(r.boot, r.seq) for r in transport.outbox.pending_after(0, 1000) if r.channel is Channel.ALARM}


def test_a_notice_arriving_before_the_held_events_loses_none_of_them(broker: BrokerSetup, tmp_path: Path) -> None:
    """The device overflows (drop-oldest) while nobody at the hub listens, so what it published is gone in
    transit; the hub then hears a fresh notice before the held events are sent again."""
    config = agent_config(broker, "dev-a", tmp_path, outbox={"max_events": 10, "overflow": "drop-oldest"})
    transport = Transport(config)
    db = tmp_path / "hub.sqlite3"
    ingest = None
    try:
        transport.start()
        assert transport.link.wait_connected(10), "device did not connect"
        sent = {(transport.boot, transport.sink.emit(Channel.ALARM, alarm_fields(n))) for n in range(30)}
        # Everything stored so far was published once, to a broker with no hub session: lost in transit.
        assert wait_until(lambda: transport.link.stats.published >= transport.outbox.last_id, 10)
        ingest = start_ingest(broker, db)
        sent.add((transport.boot, transport.sink.emit(Channel.ALARM, alarm_fields(30))))  # drops, announces
        held = _held(transport)
        dropped = transport.outbox.stats().dropped_total
        assert len(held) >= 8 and dropped == len(sent) - len(held)
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 30), "outbox did not drain"
        with sqlite3.connect(db) as conn:
            stored = [(b, s) for b, s in conn.execute("SELECT boot, seq FROM events WHERE channel = 'alarm'")]
            hub_dropped = conn.execute("SELECT dropped_total FROM devices WHERE device = 'dev-a'").fetchone()[0]
            gaps = conn.execute("SELECT COUNT(*) FROM sequence_gaps").fetchone()[0]
        figures = report("notice before held events, cap 10, 31 events", sent, stored, ingest.stats().duplicates)
        assert held <= set(stored), f"held by the outbox, never stored at the hub: {sorted(held - set(stored))}"
        assert figures["missing"] == dropped == transport.outbox.stats().dropped_total, "lost beyond what was counted"
        assert figures["extra"] == 0 and figures["stored_twice"] == 0
        assert hub_dropped == dropped, "the hub shows the device's dropped count"
        assert gaps == 0, "declared drops are not sequence gaps"
    finally:
        transport.stop()
        if ingest is not None:
            ingest.stop()
