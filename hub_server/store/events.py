"""Read side of the ingest's event tables (migration 0001): per-device event history, gaps, drops, refusals.

Flow cells, devices and health for the API live in ``hub_server.store.readings``; this module adds what the
ingest alone knows about delivery. Times in the tables are Unix seconds (UTC); rows carry aware datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub_protocol.alarms import DeviceAlarm
from hub_protocol.codec import decode
from hub_protocol.envelope import CommandResult
from hub_protocol.lockers import LockerEvent
from hub_protocol.topics import Channel
from hub_server.store.engine import Connection, Row
from hub_server.store.timestamps import from_epoch, sql_value


@dataclass(frozen=True, slots=True)
class Gap:
    device: str
    boot: str
    first_seq: int
    last_seq: int
    detected_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class DroppedRange:
    device: str
    boot: str
    first_seq: int
    last_seq: int
    declared_at: datetime
    dropped_total: int


@dataclass(frozen=True, slots=True)
class InvalidCounter:
    device: str
    kind: str
    count: int
    first_at: datetime
    last_at: datetime
    last_topic: str
    last_reason: str


@dataclass(frozen=True, slots=True)
class Watermark:
    device: str
    boot: str
    upto: int
    max_seq: int
    updated_at: datetime


def _where(filters: dict[str, Any], table: str = "") -> tuple[str, list[Any]]:
    """``{"column": v, "at>=": t, "at<": t}`` -> SQL condition; None values are left out."""
    clauses, params = [], []
    for key, value in filters.items():
        if value is None:
            continue
        op = ">=" if key.endswith(">=") else "<" if key.endswith("<") else "="
        clauses.append(f"{table}{key.rstrip('><=')} {op} ?")
        params.append(sql_value(value))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def gaps(conn: Connection, *, device: str | None = None, open_only: bool = False) -> list[Gap]:
    """Sequence holes that stayed open longer than ``ingest.gap_after_s``; newest first."""
    where, params = _where({"device": device})
    if open_only:
        where += (" AND" if where else " WHERE") + " resolved_at IS NULL"
    rows = conn.execute(
        "SELECT device, boot, first_seq, last_seq, detected_at, resolved_at FROM sequence_gaps"  # noqa: S608
        f"{where} ORDER BY detected_at DESC",
        params,
    )
    return [Gap(r[0], r[1], r[2], r[3], from_epoch(r[4]), from_epoch(r[5])) for r in rows]


def dropped_ranges(conn: Connection, *, device: str | None = None) -> list[DroppedRange]:
    """What devices declared their outbox dropped at its cap (OutboxGap)."""
    where, params = _where({"device": device})
    rows = conn.execute(
        "SELECT device, boot, first_seq, last_seq, declared_at, dropped_total FROM dropped_ranges"  # noqa: S608
        f"{where} ORDER BY declared_at DESC",
        params,
    )
    return [DroppedRange(r[0], r[1], r[2], r[3], from_epoch(r[4]), r[5]) for r in rows]


def invalid_counters(conn: Connection) -> list[InvalidCounter]:
    """Refused messages per device ('' when the topic named none) and kind: topic, channel, payload, device."""
    rows = conn.execute(
        "SELECT device, kind, count, first_at, last_at, last_topic, last_reason FROM invalid_messages"
        " ORDER BY last_at DESC"
    )
    return [InvalidCounter(r[0], r[1], r[2], from_epoch(r[3]), from_epoch(r[4]), r[5], r[6]) for r in rows]


def watermarks(conn: Connection, device: str) -> list[Watermark]:
    rows = conn.execute(
        "SELECT device, boot, upto, max_seq, updated_at FROM boot_watermarks WHERE device = ? ORDER BY updated_at",
        (device,),
    )
    return [Watermark(r[0], r[1], r[2], r[3], from_epoch(r[4])) for r in rows]


def event_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Stored events per (device, channel)."""
    rows = conn.execute("SELECT device, channel, COUNT(*) FROM events GROUP BY device, channel")
    return {(r[0], r[1]): r[2] for r in rows}


def _models(conn: Connection, table: str, channel: Channel, filters: dict[str, Any], limit: int) -> list[Any]:
    where, params = _where(filters, "t.")
    rows = conn.execute(
        f"SELECT e.payload FROM {table} t JOIN events e ON (e.device, e.boot, e.seq) = (t.device, t.boot, t.seq)"  # noqa: S608
        f"{where} ORDER BY t.at DESC LIMIT ?",
        [*params, limit],
    )
    return [decode(channel, r[0].encode()) for r in rows]


def locker_events(
    conn: Connection,
    *,
    device: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 500,
) -> list[LockerEvent]:
    """Locker events as the device sent them, newest first."""
    return _models(conn, "locker_events", Channel.LOCKER, {"device": device, "at>=": since, "at<": until}, limit)


def device_alarms(
    conn: Connection, *, device: str | None = None, since: datetime | None = None, limit: int = 500
) -> list[DeviceAlarm]:
    """Alarms raised and cleared by devices, newest first."""
    return _models(conn, "device_alarms", Channel.ALARM, {"device": device, "at>=": since}, limit)


def latest_command_result(conn: Connection, device: str, command_id: str) -> Row | None:
    """(status, detail, at) of the device's latest answer to the command, None while none has arrived."""
    row: Row | None = conn.execute(
        "SELECT status, detail, at FROM command_results WHERE device = ? AND command_id = ? ORDER BY at DESC",
        (device, command_id),
    ).fetchone()
    return row


def command_results(
    conn: Connection, *, command_id: str | None = None, device: str | None = None, limit: int = 500
) -> list[CommandResult]:
    """What devices answered to commands, newest first."""
    return _models(conn, "command_results", Channel.RESULT, {"command_id": command_id, "device": device}, limit)
