"""What logistics and alarms read from the ingest's tables (migration 0001), each reader with its own cursor.

The ingest stores every event once; logistics and alarms follow those tables by ``received_at`` with a cursor
kept in ``feed_cursors``, so nothing is missed across a restart and nothing is applied twice (the domain
code is idempotent as well). Events come back as the contract's models. Before the ingest's tables exist
(a hub without ingest, unit tests) every reader returns nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from hub_protocol.alarms import DeviceAlarm
from hub_protocol.envelope import CommandResult, Health
from hub_protocol.lockers import LockerEvent

T = TypeVar("T")


def _time(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def cursor(conn: sqlite3.Connection, name: str) -> float:
    row = conn.execute("SELECT received_at FROM feed_cursors WHERE name = ?", (name,)).fetchone()
    return float(row[0]) if row else 0.0


def set_cursor(conn: sqlite3.Connection, name: str, received_at: float) -> None:
    conn.execute(
        """INSERT INTO feed_cursors (name, received_at) VALUES (?, ?)
           ON CONFLICT (name) DO UPDATE SET received_at = MAX(received_at, excluded.received_at)""",
        (name, received_at),
    )


def _new_rows(
    conn: sqlite3.Connection, sql: str, after: float, limit: int, build: Callable[[sqlite3.Row], T]
) -> list[tuple[float, T]]:
    try:
        rows = conn.execute(sql, (after, limit)).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return []
        raise
    return [(float(r["received_at"]), build(r)) for r in rows]


def locker_events(conn: sqlite3.Connection, after: float, limit: int = 500) -> list[tuple[float, LockerEvent]]:
    return _new_rows(
        conn,
        "SELECT * FROM locker_events WHERE received_at > ? ORDER BY received_at, device, boot, seq LIMIT ?",
        after,
        limit,
        lambda r: LockerEvent(
            device=r["device"],
            boot=r["boot"],
            seq=r["seq"],
            at=_time(r["at"]),
            compartment=r["compartment"],
            state=r["state"],
            previous=r["previous"],
            cause=r["cause"],
            reservation=r["reservation"],
            operator=r["operator"],
            door_open=bool(r["door_open"]),
        ),
    )


def command_results(conn: sqlite3.Connection, after: float, limit: int = 500) -> list[tuple[float, CommandResult]]:
    return _new_rows(
        conn,
        "SELECT * FROM command_results WHERE received_at > ? ORDER BY received_at, device, boot, seq LIMIT ?",
        after,
        limit,
        lambda r: CommandResult(
            device=r["device"],
            boot=r["boot"],
            seq=r["seq"],
            command_id=r["command_id"],
            status=r["status"],
            detail=r["detail"],
            at=_time(r["at"]),
        ),
    )


def device_alarms(conn: sqlite3.Connection, after: float, limit: int = 500) -> list[tuple[float, DeviceAlarm]]:
    return _new_rows(
        conn,
        "SELECT * FROM device_alarms WHERE received_at > ? ORDER BY received_at, device, boot, seq LIMIT ?",
        after,
        limit,
        lambda r: DeviceAlarm(
            device=r["device"],
            boot=r["boot"],
            seq=r["seq"],
            alarm=r["alarm"],
            active=bool(r["active"]),
            at=_time(r["at"]),
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


def _all(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return []
        raise


def device_statuses(conn: sqlite3.Connection) -> list[DeviceStatus]:
    rows = _all(conn, "SELECT device, online, status_changed, last_seen, offline_reason FROM devices")
    return [
        DeviceStatus(
            device=r["device"],
            online=bool(r["online"]),
            since=None if r["status_changed"] is None else _time(r["status_changed"]),
            last_seen=_time(r["last_seen"]),
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


def open_sequence_gaps(conn: sqlite3.Connection) -> list[OpenGap]:
    rows = _all(
        conn,
        "SELECT device, boot, first_seq, last_seq, detected_at FROM sequence_gaps WHERE resolved_at IS NULL "
        "ORDER BY device, detected_at",
    )
    return [OpenGap(r["device"], r["boot"], r["first_seq"], r["last_seq"], _time(r["detected_at"])) for r in rows]


@dataclass(frozen=True, slots=True)
class DropNotice:
    device: str
    first_seq: int
    last_seq: int
    declared_at: datetime
    dropped_total: int


def drops_since(conn: sqlite3.Connection, since: datetime) -> list[DropNotice]:
    rows = _all(
        conn,
        "SELECT device, first_seq, last_seq, declared_at, dropped_total FROM dropped_ranges WHERE declared_at >= ? "
        "ORDER BY declared_at",
        (since.timestamp(),),
    )
    return [
        DropNotice(r["device"], r["first_seq"], r["last_seq"], _time(r["declared_at"]), r["dropped_total"])
        for r in rows
    ]


def latest_health(conn: sqlite3.Connection) -> list[Health]:
    found = []
    for r in _all(conn, "SELECT payload FROM health_latest"):
        try:
            found.append(Health.model_validate(json.loads(r["payload"])))
        except ValueError:
            continue  # stored by an older contract version: skip rather than stop the alarms
    return found
