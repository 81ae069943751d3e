"""What logistics and alarms read from the ingest's tables (migration 0001), each reader with its own cursor.

The ingest stores every event once; logistics and alarms follow those tables with a cursor in ``feed_cursors``
plus the set of applied events in ``feed_seen``, so nothing is missed across a restart and nothing is applied
twice. Events come back as the contract's models. Before the ingest's tables exist (a hub without ingest, unit
tests) every reader returns nothing.

The cursor follows the order in which events became visible, which is not the order of their receive times:
- SQLite (one instance, one writer): by ``received_at``, looking back ``LOOKBACK_S``, as batches may commit
  with equal or slightly out-of-order receive times.
- PostgreSQL (instances sharing the ingest, clocks of several machines, transactions that wait for a device's
  lock): by the id of the transaction that stored the row (``xid``, migration 0161), reading only below the
  oldest transaction still running (``_HORIZON``): a row that commits later always has an id at or above that
  bound, so a later read finds it, however late it commits or whatever its receive time. Transaction ids are
  the whole server's, so a transaction known to run in *another* database (a long report, a backup, another
  application on a shared server) does not hold the bound back; one whose database cannot be told (ended
  meanwhile, or hidden by privileges) does, which is safe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from hub_protocol.alarms import DeviceAlarm
from hub_protocol.envelope import CommandResult, Health
from hub_protocol.lockers import LockerEvent
from hub_server.store.engine import Connection, OperationalError, Row
from hub_server.store.timestamps import from_epoch, to_epoch

T = TypeVar("T")

LOOKBACK_S = 30.0


def _missing_table(exc: OperationalError) -> bool:
    return "no such table" in str(exc)


@dataclass(frozen=True, slots=True)
class FeedEntry(Generic[T]):
    received_at: float
    position: str | None
    """PostgreSQL: the storing transaction's id (text); SQLite: None (the cursor is ``received_at``)."""
    device: str
    boot: str
    seq: int
    event: T


def cursor(conn: Connection, name: str) -> float:
    row = conn.execute("SELECT received_at FROM feed_cursors WHERE name = ?", (name,)).fetchone()
    return float(row[0]) if row else 0.0


def _position(conn: Connection, name: str) -> str | None:
    row = conn.execute("SELECT CAST(xid AS TEXT) FROM feed_cursors WHERE name = ?", (name,)).fetchone()
    return None if row is None else row[0]


def set_cursor(conn: Connection, name: str, received_at: float, position: str | None = None) -> None:
    if position is None:
        conn.execute(
            """INSERT INTO feed_cursors (name, received_at) VALUES (?, ?)
               ON CONFLICT (name) DO UPDATE SET received_at = MAX(feed_cursors.received_at, excluded.received_at)""",
            (name, received_at),
        )
        return
    conn.execute(
        """INSERT INTO feed_cursors (name, received_at, xid) VALUES (?, ?, CAST(? AS XID8))
           ON CONFLICT (name) DO UPDATE SET received_at = MAX(feed_cursors.received_at, excluded.received_at),
               xid = MAX(COALESCE(feed_cursors.xid, excluded.xid), excluded.xid)""",
        (name, received_at, position),
    )


# The oldest transaction in progress, as pg_snapshot_xmin, leaving out those that run in another database:
# they cannot write this database's rows. Matched on the low 32 bits (pg_stat_activity shows an xid, the
# snapshot xid8s); the ids of running transactions are distinct in those bits.
_HORIZON = (
    "COALESCE((SELECT MIN(t.x) FROM pg_snapshot_xip(pg_current_snapshot()) AS t(x)"
    " WHERE mod(CAST(CAST(t.x AS TEXT) AS BIGINT), 4294967296) NOT IN ("
    "SELECT CAST(CAST(a.backend_xid AS TEXT) AS BIGINT) FROM pg_stat_activity a"
    " WHERE a.backend_xid IS NOT NULL AND a.datname IS DISTINCT FROM current_database())),"
    " pg_snapshot_xmax(pg_current_snapshot()))"
)

_NOT_SEEN = (
    " AND NOT EXISTS (SELECT 1 FROM feed_seen s"
    " WHERE s.name = ? AND s.device = e.device AND s.boot = e.boot AND s.seq = e.seq)"
)


def _new_rows(conn: Connection, table: str, name: str, limit: int, build: Callable[[Row], T]) -> list[FeedEntry[T]]:
    if conn.dialect == "postgresql":
        # Rows of the cursor's own transaction may be partly applied: from it on, less what was applied.
        position = _position(conn, name) or "0"
        sql = (
            f"SELECT e.*, CAST(e.xid AS TEXT) AS position FROM {table} e"  # noqa: S608 - fixed fragments
            f" WHERE e.xid >= CAST(? AS XID8) AND e.xid < {_HORIZON}"
            f"{_NOT_SEEN} ORDER BY e.xid, device, boot, seq LIMIT ?"
        )
        params: tuple[Any, ...] = (position, name, limit)
    else:
        sql = (
            f"SELECT * FROM {table} e WHERE received_at > ?{_NOT_SEEN}"  # noqa: S608 - fixed fragments
            " ORDER BY received_at, device, boot, seq LIMIT ?"
        )
        params = (cursor(conn, name) - LOOKBACK_S, name, limit)
    try:
        rows = conn.execute(sql, params).fetchall()
    except OperationalError as exc:
        if _missing_table(exc):
            return []
        raise
    positional = conn.dialect == "postgresql"
    return [
        FeedEntry(
            float(r["received_at"]),
            r["position"] if positional else None,
            r["device"],
            r["boot"],
            r["seq"],
            build(r),
        )
        for r in rows
    ]


def mark_seen(conn: Connection, name: str, entry: FeedEntry[Any]) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO feed_seen (name, device, boot, seq, seen_at) VALUES (?, ?, ?, ?, ?)",
        (name, entry.device, entry.boot, entry.seq, entry.received_at),
    )
    set_cursor(conn, name, entry.received_at, entry.position)


def forget_seen(conn: Connection, before: datetime) -> int:
    return conn.execute("DELETE FROM feed_seen WHERE seen_at < ?", (to_epoch(before),)).rowcount


Reader = Callable[[Connection, str], list[FeedEntry[Any]]]


def follow(db: Any, name: str, read: Reader, apply: Callable[[Any], None]) -> int:
    """Apply each new event of one reader, marking it applied right after; returns how many were applied."""
    entries = read(db.conn, name)
    for entry in entries:
        apply(entry.event)
        with db.write() as conn:
            mark_seen(conn, name, entry)
    return len(entries)


def locker_events(conn: Connection, name: str, limit: int = 500) -> list[FeedEntry[LockerEvent]]:
    return _new_rows(
        conn,
        "locker_events",
        name,
        limit,
        lambda r: LockerEvent(
            device=r["device"],
            boot=r["boot"],
            seq=r["seq"],
            at=from_epoch(r["at"]),
            compartment=r["compartment"],
            state=r["state"],
            previous=r["previous"],
            cause=r["cause"],
            reservation=r["reservation"],
            operator=r["operator"],
            door_open=bool(r["door_open"]),
        ),
    )


def command_results(conn: Connection, name: str, limit: int = 500) -> list[FeedEntry[CommandResult]]:
    return _new_rows(
        conn,
        "command_results",
        name,
        limit,
        lambda r: CommandResult(
            device=r["device"],
            boot=r["boot"],
            seq=r["seq"],
            command_id=r["command_id"],
            status=r["status"],
            detail=r["detail"],
            at=from_epoch(r["at"]),
        ),
    )


def device_alarms(conn: Connection, name: str, limit: int = 500) -> list[FeedEntry[DeviceAlarm]]:
    return _new_rows(
        conn,
        "device_alarms",
        name,
        limit,
        lambda r: DeviceAlarm(
            device=r["device"],
            boot=r["boot"],
            seq=r["seq"],
            alarm=r["alarm"],
            active=bool(r["active"]),
            at=from_epoch(r["at"]),
            compartment=r["compartment"],
            detail=r["detail"],
        ),
    )


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device: str
    online: bool
    since: datetime | None
    last_seen: datetime
    offline_reason: str | None


def _all(conn: Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    try:
        return conn.execute(sql, params).fetchall()
    except OperationalError as exc:
        if _missing_table(exc):
            return []
        raise


def device_statuses(conn: Connection) -> list[DeviceStatus]:
    rows = _all(conn, "SELECT device, online, status_changed, last_seen, offline_reason FROM devices")
    return [
        DeviceStatus(
            device=r["device"],
            online=bool(r["online"]),
            since=None if r["status_changed"] is None else from_epoch(r["status_changed"]),
            last_seen=from_epoch(r["last_seen"]),
            offline_reason=r["offline_reason"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class OpenGap:
    device: str
    boot: str
    first_seq: int
    last_seq: int
    detected_at: datetime


def open_sequence_gaps(conn: Connection) -> list[OpenGap]:
    rows = _all(
        conn,
        "SELECT device, boot, first_seq, last_seq, detected_at FROM sequence_gaps WHERE resolved_at IS NULL "
        "ORDER BY device, detected_at",
    )
    return [OpenGap(r["device"], r["boot"], r["first_seq"], r["last_seq"], from_epoch(r["detected_at"])) for r in rows]


@dataclass(frozen=True, slots=True)
class DropNotice:
    device: str
    first_seq: int
    last_seq: int
    declared_at: datetime
    dropped_total: int


def drops_since(conn: Connection, since: datetime) -> list[DropNotice]:
    rows = _all(
        conn,
        "SELECT device, first_seq, last_seq, declared_at, dropped_total FROM dropped_ranges WHERE declared_at >= ? "
        "ORDER BY declared_at",
        (to_epoch(since),),
    )
    return [
        DropNotice(r["device"], r["first_seq"], r["last_seq"], from_epoch(r["declared_at"]), r["dropped_total"])
        for r in rows
    ]


def latest_health(conn: Connection) -> list[Health]:
    found = []
    for r in _all(conn, "SELECT payload FROM health_latest"):
        try:
            found.append(Health.model_validate(json.loads(r["payload"])))
        except ValueError:
            continue  # stored by an older contract version: skip rather than stop the alarms
    return found


def caught_up(conn: Connection, device: str, since: datetime) -> bool:
    """True when every event the device made before ``since`` is stored at the hub, as far as its latest health
    shows: sent after ``since``, with nothing older than ``since`` left unacknowledged in its outbox.
    A device that never sent health counts as caught up (nothing better is known)."""
    rows = _all(conn, "SELECT payload FROM health_latest WHERE device = ?", (device,))
    if not rows:
        return True
    try:
        health = Health.model_validate_json(rows[0]["payload"])
    except ValueError:
        return True
    if health.at < since:
        return False
    return health.outbox_depth == 0 or health.outbox_oldest_age_s < (health.at - since).total_seconds()
