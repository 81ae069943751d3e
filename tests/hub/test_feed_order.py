"""Logistics and alarms follow the ingest's events in the order they became visible, not by receive time."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_server.store import feed
from hub_server.store.db import Database
from hub_server.store.engine import Connection, connect
from tests import postgres

_LOCKER = (
    "INSERT INTO locker_events (device, boot, seq, site, at, compartment, state, previous, cause, reservation,"
    " operator, door_open, received_at) VALUES (?, 'b1', ?, 's', ?, 1, 'free', NULL, 'door', NULL, NULL, 0, ?)"
)


def _store(conn: Connection, device: str, seq: int, received_at: float) -> None:
    conn.execute(_LOCKER, (device, seq, received_at, received_at))


def _follow(db: Database) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    feed.follow(db, "test", feed.locker_events, lambda event: seen.append((event.device, event.seq)))
    return seen


def test_an_event_committed_late_with_an_old_receive_time_is_still_followed() -> None:
    """Two instances: one stores an event received at t=100 and commits late (it waited for a device's lock);
    meanwhile the other stores and the reader applies events received at t=1000. Following by receive time
    (the look-back is 30 s) passes the late one by for good; following by transaction never does."""
    postgres.require()
    db = Database(postgres.fresh_database())
    slow = connect(db.location)
    slow.begin()
    _store(slow, "dev-slow", 1, 100.0)
    with db.write() as conn:
        _store(conn, "dev-fast", 1, 1000.0)
    assert _follow(db) == []  # not yet: an older transaction still runs, whose rows may come before
    slow.commit()
    with db.write() as conn:
        _store(conn, "dev-fast", 2, 1001.0)
    assert _follow(db) == [("dev-slow", 1), ("dev-fast", 1), ("dev-fast", 2)]
    assert _follow(db) == []  # each once
    slow.close()


def test_a_transaction_in_another_database_does_not_hold_the_feed_back() -> None:
    """Transaction ids are the server's: a long transaction of another application on a shared server (here
    another database) runs below every new id, and reading only below the oldest running one would stall
    logistics and alarms until it ended. One in this database still holds the feed back (test above)."""
    postgres.require()
    db = Database(postgres.fresh_database())
    other = connect(postgres.fresh_database())
    try:
        other.begin()
        other.execute("SELECT pg_current_xact_id()")  # takes a transaction id and keeps it, as a long report would
        with db.write() as conn:
            _store(conn, "dev-a", 1, 1000.0)
        assert _follow(db) == [("dev-a", 1)]
        slow = connect(db.location)
        slow.begin()
        _store(slow, "dev-b", 1, 1001.0)
        with db.write() as conn:
            _store(conn, "dev-a", 2, 1002.0)
        assert _follow(db) == []  # this database's own open transaction does hold it back
        slow.commit()
        slow.close()
        assert _follow(db) == [("dev-b", 1), ("dev-a", 2)]
    finally:
        other.rollback()
        other.close()


def test_on_sqlite_the_receive_time_with_its_look_back_orders_the_one_writer(tmp_path: Path) -> None:
    db = Database(tmp_path / "hub.sqlite3")
    with db.write() as conn:
        _store(conn, "dev-a", 1, 1000.0)
        _store(conn, "dev-a", 2, 980.0)  # one batch, receive times slightly out of order
    assert _follow(db) == [("dev-a", 2), ("dev-a", 1)]
    with db.write() as conn:
        _store(conn, "dev-a", 3, 990.0)  # within the look-back of the cursor (1000)
    assert _follow(db) == [("dev-a", 3)]
    assert _follow(db) == []


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_reader_resumes_where_it_stopped(engine: str, tmp_path: Path) -> None:
    if engine == "postgresql":
        postgres.require()
    db = Database(postgres.fresh_database() if engine == "postgresql" else tmp_path / "hub.sqlite3")
    with db.write() as conn:
        for seq in range(1, 4):
            _store(conn, "dev-a", seq, 1000.0 + seq)
    assert _follow(db) == [("dev-a", 1), ("dev-a", 2), ("dev-a", 3)]
    again = Database(db.location)  # a restarted hub
    with again.write() as conn:
        _store(conn, "dev-a", 4, 1004.0)
    assert _follow(again) == [("dev-a", 4)]
