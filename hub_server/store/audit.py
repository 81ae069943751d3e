"""The audit trail's table (``audit_log``, append-only); ``hub_server.accounts.audit`` is its domain side."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from hub_server.store.accounts import to_text


def insert(conn: sqlite3.Connection, at: str, actor: str, action: str, target: str, detail: str) -> int:
    cursor = conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, target, detail),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def select(
    conn: sqlite3.Connection,
    *,
    actor: str | None,
    action: str | None,
    target: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[sqlite3.Row]:
    """Newest first; ``action`` matches a prefix."""
    where, params = [], []
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
        params.append(to_text(since))
    if until is not None:
        where.append("at < ?")
        params.append(to_text(until))
    if before_id is not None:
        where.append("id < ?")
        params.append(str(before_id))
    sql = "SELECT * FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows: list[sqlite3.Row] = conn.execute(sql, [*params, limit]).fetchall()
    return rows
