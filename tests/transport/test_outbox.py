"""The outbox alone: durability contract, hub-acknowledged deletion, the cap and its honest drop count."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from edge_agent.transport.config import OutboxConfig
from edge_agent.transport.outbox import Outbox
from edge_agent.transport.service import Transport
from hub_protocol.codec import decode
from hub_protocol.envelope import OutboxGap
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_until
from tests.transport.helpers import alarm_fields, report, start_ingest


def _outbox(tmp_path: Path, cap: int = 1000, overflow: str = "drop-oldest", boot: str | None = None) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite3", "dev-a", OutboxConfig(max_events=cap, overflow=overflow), boot=boot)  # type: ignore[arg-type]


def test_emit_validates_numbers_and_stores_before_returning(tmp_path: Path) -> None:
    box = _outbox(tmp_path)
    assert box.emit(Channel.ALARM, alarm_fields(1)) == 1
    with pytest.raises(ValueError, match="alarm"):
        box.emit(Channel.ALARM, {"alarm": "no-such-alarm", "active": True})
    with pytest.raises(ValueError, match="not an event channel"):
        box.emit(Channel.HEALTH, {})
    assert box.emit(Channel.ALARM, alarm_fields(2)) == 2, "a refused event must not use up a sequence number"
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:  # another connection sees it: it is committed
        assert conn.execute("SELECT boot, seq FROM events ORDER BY id").fetchall() == [(box.boot, 1), (box.boot, 2)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("cap", [1000, 10], ids=["room", "at-cap"])
def test_a_failed_write_uses_up_no_sequence_number(tmp_path: Path, cap: int) -> None:
    """A disk error mid-emit must not leave a hole the hub would report as a gap forever."""
    box = _outbox(tmp_path, cap=cap)
    before = min(cap, 10)  # at the cap the failing emit would also drop the oldest and announce it
    for n in range(1, before + 1):
        assert box.emit(Channel.ALARM, alarm_fields(n)) == n
    real_insert = box._insert

    def failing_insert(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    box._insert = failing_insert  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError):
        box.emit(Channel.ALARM, alarm_fields(before + 1))
    box._insert = real_insert  # type: ignore[method-assign]
    assert box.emit(Channel.ALARM, alarm_fields(before + 1)) == before + 1, "the failed number goes to the next"
    if cap > before + 1:  # below the cap nothing is dropped, so the stored numbers have no hole
        with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:
            seqs = [s for (s,) in conn.execute("SELECT seq FROM events WHERE boot = ? ORDER BY seq", (box.boot,))]
        assert seqs == list(range(1, before + 2))


def test_only_the_hubs_ack_deletes_and_older_boots_are_kept(tmp_path: Path) -> None:
    first = _outbox(tmp_path, boot="boot-one")
    for n in range(5):
        first.emit(Channel.ALARM, alarm_fields(n))
    first.close()
    second = _outbox(tmp_path, boot="boot-two")
    second.emit(Channel.ALARM, alarm_fields(9))
    assert second.stats().depth == 6, "a restart must keep the unacknowledged events of the earlier boot"
    assert [(r.boot, r.seq) for r in second.pending_after(0, 100)][:2] == [("boot-one", 1), ("boot-one", 2)]
    assert second.ack("boot-one", 3) == 3
    assert second.ack("boot-two", 0) == 0
    assert [(r.boot, r.seq) for r in second.pending_after(0, 100)] == [
        ("boot-one", 4),
        ("boot-one", 5),
        ("boot-two", 1),
    ]
    assert second.count_upto(second.last_id) == 3


@pytest.mark.parametrize("overflow", ["drop-oldest", "drop-newest"])
def test_cap_bounds_rows_and_file_and_counts_exactly_what_it_dropped(tmp_path: Path, overflow: str) -> None:
    cap, total = 50, 3000
    box = _outbox(tmp_path, cap=cap, overflow=overflow)
    sizes = []
    for n in range(total):
        box.emit(Channel.ALARM, alarm_fields(n))
        if n % 500 == 499:
            sizes.append(sum(os.path.getsize(p) for p in tmp_path.glob("outbox.sqlite3*")))
    stats = box.stats()
    rows = box.pending_after(0, 10 * cap)
    kept = [r for r in rows if r.channel is Channel.ALARM]
    notices = [decode(Channel.GAP, r.payload) for r in rows if r.channel is Channel.GAP]
    assert len(rows) <= cap + 2, "the outbox grew past its cap"
    assert stats.dropped_total == total - len(kept), "dropped count must equal what is gone"
    # The WAL grows to its checkpoint size (512 KiB, see edge_agent.storage) and no further, however many are dropped.
    assert max(sizes) < 8 * 1024 * 1024 and sizes[-1] <= sizes[0] * 1.1, f"disk use keeps growing: {sizes}"
    assert len(notices) == 1, "one live notice per boot, superseding the earlier ones"
    notice: OutboxGap = notices[0]
    kept_seqs = {r.seq for r in kept}
    held = {r.seq for r in rows}
    declared = {s for first, last in notice.declared() for s in range(first, last + 1)}
    recorded = {s for first, last in box._drops[box.boot] for s in range(first, last + 1)}
    assert not declared & held, "a notice declared dropped a number the outbox still holds"
    assert declared <= recorded and not recorded & held
    assert notice.dropped_total <= stats.dropped_total
    # Every sequence number used is either still stored or recorded as dropped (declared to the hub by the
    # waiting notice or, when the hub's ack shows it waits for one, by a fresh notice).
    assert held | recorded == set(range(1, max(held | recorded) + 1))
    if overflow == "drop-oldest":
        assert sorted(kept_seqs)[-1] > total - 5, "drop-oldest keeps the newest events"
    else:
        assert sorted(kept_seqs) == list(range(1, cap + 1)), "drop-newest keeps the oldest events"
    box.close()
    reopened = _outbox(tmp_path, cap=cap, overflow=overflow)
    assert reopened.stats().dropped_total == stats.dropped_total, "the dropped count survives a restart"


def test_outbox_at_cap_delivers_the_rest_and_hub_passes_the_declared_hole(broker: BrokerSetup, tmp_path: Path) -> None:
    """The device filled its outbox while the hub was away: what is left arrives, the drop is accounted for."""
    config = agent_config(broker, "dev-a", tmp_path, outbox={"max_events": 40, "overflow": "drop-oldest"})
    transport = Transport(config)
    sent = {(transport.boot, transport.sink.emit(Channel.ALARM, alarm_fields(n))) for n in range(500)}
    dropped = transport.outbox.stats().dropped_total
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    try:
        transport.start()
        assert wait_until(lambda: transport.outbox.stats().depth == 0, 20), "outbox did not drain past the drops"
        with sqlite3.connect(db) as conn:
            stored = [(b, s) for b, s in conn.execute("SELECT boot, seq FROM events WHERE channel = 'alarm'")]
            upto = conn.execute("SELECT upto FROM boot_watermarks WHERE boot = ?", (transport.boot,)).fetchone()[0]
            hub_dropped = conn.execute("SELECT dropped_total FROM devices WHERE device = 'dev-a'").fetchone()[0]
            gaps = conn.execute("SELECT COUNT(*) FROM sequence_gaps").fetchone()[0]
        figures = report("outbox cap 40, 500 events", sent, stored, ingest.stats().duplicates)
        assert figures["missing"] == dropped and figures["extra"] == 0
        assert len(stored) == 500 - dropped
        assert hub_dropped == dropped, "the hub shows the device's dropped count"
        assert upto >= max(s for _, s in sent), "the watermark passed the declared hole"
        assert gaps == 0, "declared drops are not sequence gaps"
    finally:
        transport.stop()
        ingest.stop()
