"""The hop from the locker store to the outbox: a crash between the two writes makes no second copy."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from edge_agent.lockers.clock import ManualClock
from edge_agent.lockers.store import LockerStore
from edge_agent.storage import StorageWatch
from edge_agent.transport.config import OutboxConfig
from edge_agent.transport.outbox import Outbox
from hub_protocol.topics import Channel
from tests.lockers.conftest import Rig
from tests.storage_faults import FullDisk


class _Crash(BaseException):
    """The process dying between two statements (SIGKILL, power cut): nothing after it runs."""


def _outbox_locker_events(path: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT payload FROM events WHERE channel = 'locker'").fetchall()
    events = [json.loads(bytes(p)) for (p,) in rows]
    return [(e["at"], e["compartment"], e["cause"]) for e in events]


def test_a_crash_after_the_outbox_took_an_event_and_before_the_store_let_go_sends_it_once(
    make_rig: Callable[..., Rig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox_file = tmp_path / "outbox.sqlite3"
    outbox = Outbox(outbox_file, "dev-a", OutboxConfig())
    rig = make_rig(sink=outbox, start=False)
    with monkeypatch.context() as patch:

        def crash(_event_id: int) -> None:
            raise _Crash

        patch.setattr(rig.bank.store, "delete_event", crash)
        with pytest.raises(_Crash):
            rig.bank.start(tick_thread=False)  # recovery reports the compartments; the first hand-over dies
    handed = _outbox_locker_events(outbox_file)
    assert len(handed) == 1
    rig.bank.stop()
    outbox.close()

    outbox = Outbox(outbox_file, "dev-a", OutboxConfig())  # the restarted process
    try:
        later = ManualClock(rig.clock.now() + timedelta(minutes=1))
        again = make_rig(sink=outbox, state_dir=rig.state_dir, clock=later)
        events = _outbox_locker_events(outbox_file)
        doubled = {k: n for k, n in Counter(events).items() if n > 1}
        assert not doubled, f"handed over twice: {doubled}"
        compartments = len(rig.config.compartments)
        assert len(events) == 2 * compartments  # both starts reported every compartment, each event once
        with sqlite3.connect(again.state_dir / "lockers.sqlite3") as conn:
            assert conn.execute("SELECT COUNT(*) FROM pending_events").fetchone()[0] == 0
        again.bank.stop()
    finally:
        outbox.close()


def _outbox_seqs(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [int(s) for (s,) in conn.execute("SELECT seq FROM events ORDER BY id")]


def test_a_hand_over_refused_by_a_full_disk_keeps_its_event_and_burns_no_number(
    make_rig: Callable[..., Rig], tmp_path: Path
) -> None:
    """The hand-over mark is written in the outbox transaction that also decides the sequence number: when
    that transaction fails, neither the event, nor its number, nor the mark exist, so the event is handed
    over again later, once, under the next free number."""
    outbox_file = tmp_path / "outbox.sqlite3"
    outbox = Outbox(outbox_file, "dev-a", OutboxConfig(), watch=StorageWatch())
    disk = FullDisk(outbox._conn)
    outbox._conn = disk  # type: ignore[assignment]
    try:
        disk.full = True
        rig = make_rig(sink=outbox)  # recovery reports every compartment; the outbox refuses them all
        source = rig.bank.store.handoff_source
        assert disk.refused >= 1 and _outbox_locker_events(outbox_file) == []
        assert outbox.handed_upto(source) == 0
        pending = len(rig.bank.store.pending_events())
        assert pending == len(rig.config.compartments)
        disk.full = False
        rig.bank.tick()
        events = _outbox_locker_events(outbox_file)
        assert len(events) == pending and not [k for k, n in Counter(events).items() if n > 1]
        assert _outbox_seqs(outbox_file) == list(range(1, pending + 1))  # no number lost to the failures
        assert outbox.handed_upto(source) == pending  # a fresh store numbers its events from 1
        assert rig.bank.store.pending_events() == []
    finally:
        outbox.close()


def test_event_ids_are_never_used_twice_even_in_a_store_from_before(tmp_path: Path) -> None:
    """Hand-over keys are event ids: a plain INTEGER PRIMARY KEY starts again at 1 once the table is empty."""
    path = tmp_path / "lockers.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE pending_events (id INTEGER PRIMARY KEY, channel TEXT NOT NULL, fields TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO pending_events (channel, fields) VALUES ('alarm', '{}')")
    store = LockerStore(path)
    try:
        ids = []
        for _ in range(3):
            store.record(Channel.ALARM, {"n": len(ids)})
            (event_id, _channel, _fields), *_ = store.pending_events()[-1:]
            ids.append(event_id)
            for pending_id, _, _ in store.pending_events():
                store.delete_event(pending_id)  # handed over: the table is empty again
        assert ids == sorted(set(ids)) and ids[0] > 1
    finally:
        store.close()
