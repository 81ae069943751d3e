"""SQL for alarms: raise (or refresh) the open alarm of a key, end it, acknowledge it, list and prune."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub_server.store.engine import Connection, Row
from hub_server.store.timestamps import from_epoch, to_epoch


@dataclass(frozen=True, slots=True)
class AlarmRow:
    id: int
    device: str
    kind: str
    compartment: int | None
    source: str
    detail: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None


def _row(row: Row) -> AlarmRow:
    started, seen = from_epoch(row["started_at"]), from_epoch(row["last_seen_at"])
    assert started is not None and seen is not None
    return AlarmRow(
        id=row["id"],
        device=row["device"],
        kind=row["kind"],
        compartment=row["compartment"] or None,
        source=row["source"],
        detail=row["detail"],
        started_at=started,
        last_seen_at=seen,
        ended_at=from_epoch(row["ended_at"]),
        acknowledged_by=row["acknowledged_by"],
        acknowledged_at=from_epoch(row["acknowledged_at"]),
    )


def open_alarm(conn: Connection, device: str, kind: str, compartment: int | None) -> AlarmRow | None:
    row = conn.execute(
        "SELECT * FROM alarms WHERE device = ? AND kind = ? AND compartment = ? AND ended_at IS NULL",
        (device, kind, compartment or 0),
    ).fetchone()
    return None if row is None else _row(row)


def raise_alarm(
    conn: Connection,
    device: str,
    kind: str,
    compartment: int | None,
    source: str,
    detail: str,
    at: datetime,
    seen: datetime | None = None,
) -> tuple[AlarmRow, bool]:
    """The open alarm of this key, created (starting ``at``) if there was none, else marked still true at ``seen``
    (default ``at``); the flag says whether it is new."""
    current = open_alarm(conn, device, kind, compartment)
    if current is not None:
        conn.execute(
            "UPDATE alarms SET last_seen_at = MAX(last_seen_at, ?), detail = CASE WHEN ? != '' THEN ? ELSE detail END "
            "WHERE id = ?",
            (to_epoch(seen or at), detail, detail, current.id),
        )
        refreshed = get(conn, current.id)
        assert refreshed is not None
        return refreshed, False
    (alarm_id,) = conn.execute(
        """INSERT INTO alarms (device, kind, compartment, source, detail, started_at, last_seen_at)
           VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id""",
        (device, kind, compartment or 0, source, detail, to_epoch(at), to_epoch(max(at, seen or at))),
    ).fetchone()
    created = get(conn, alarm_id)
    assert created is not None
    return created, True


def end_alarm(conn: Connection, device: str, kind: str, compartment: int | None, at: datetime) -> AlarmRow | None:
    current = open_alarm(conn, device, kind, compartment)
    if current is None:
        return None
    # A clear that arrives with a device time before the start still ends it, at its start.
    conn.execute("UPDATE alarms SET ended_at = MAX(started_at, ?) WHERE id = ?", (to_epoch(at), current.id))
    return get(conn, current.id)


def acknowledge(conn: Connection, alarm_id: int, actor: str, at: datetime) -> AlarmRow | None:
    conn.execute(
        "UPDATE alarms SET acknowledged_by = ?, acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL",
        (actor, to_epoch(at), alarm_id),
    )
    return get(conn, alarm_id)


def get(conn: Connection, alarm_id: int) -> AlarmRow | None:
    row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    return None if row is None else _row(row)


def query(
    conn: Connection,
    *,
    active_only: bool = False,
    device: str | None = None,
    kind: str | None = None,
    unacknowledged: bool = False,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AlarmRow]:
    where, params = [], []
    if active_only:
        where.append("ended_at IS NULL")
    if unacknowledged:
        where.append("acknowledged_at IS NULL")
    if device is not None:
        where.append("device = ?")
        params.append(device)
    if kind is not None:
        where.append("kind = ?")
        params.append(kind)
    if before_id is not None:
        where.append("id < ?")
        params.append(str(before_id))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT * FROM alarms {clause} ORDER BY id DESC LIMIT ?",  # noqa: S608 - fixed fragments only
        (*params, limit),
    ).fetchall()
    return [_row(r) for r in rows]


def open_of_kind(conn: Connection, kind: str) -> list[AlarmRow]:
    rows = conn.execute("SELECT * FROM alarms WHERE kind = ? AND ended_at IS NULL", (kind,)).fetchall()
    return [_row(r) for r in rows]


def prune(conn: Connection, ended_before: datetime) -> int:
    return conn.execute(
        "DELETE FROM alarms WHERE ended_at IS NOT NULL AND ended_at < ?", (to_epoch(ended_before),)
    ).rowcount
