"""The audit trail's table (``audit_log``, append-only); ``hub_server.accounts.audit`` is its domain side."""

from __future__ import annotations

from datetime import datetime

from hub_server.store.engine import Connection, Row
from hub_server.store.timestamps import to_epoch


def insert(conn: Connection, at: datetime, actor: str, action: str, target: str, detail: str) -> int:
    row = conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?) RETURNING id",
        (to_epoch(at), actor, action, target, detail),
    ).fetchone()
    return int(row[0])


def select(
    conn: Connection,
    *,
    actor: str | None,
    action: str | None,
    target: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[Row]:
    """Newest first; ``action`` matches a prefix."""
    where: list[str] = []
    params: list[str | float] = []
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if action is not None:
        where.append("action LIKE ? ESCAPE '\\'")
        params.append(action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if target is not None:
        where.append("target = ?")
        params.append(target)
    if since is not None:
        where.append("at >= ?")
        params.append(to_epoch(since))
    if until is not None:
        where.append("at < ?")
        params.append(to_epoch(until))
    if before_id is not None:
        where.append("id < ?")
        params.append(str(before_id))
    sql = "SELECT * FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows: list[Row] = conn.execute(sql, [*params, limit]).fetchall()
    return rows
