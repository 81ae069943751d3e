"""The audit trail: one append-only row per operator action (remote open, code issued, device added or revoked,
user changed...). Call ``record`` inside the same transaction as the action, so both happen or neither does.

Details name things by id, never a resident's name or contact: the trail outlives personal data.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub_server.store.accounts import to_text, utc_now


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def record(
    conn: sqlite3.Connection,
    actor: str,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry. ``actor`` e.g. ``user:alice`` / ``token:3`` / ``cli:root`` (see ``Principal.actor``);
    ``action`` a dotted verb like ``device.revoke``; ``target`` what it acted on; ``detail`` JSON-able facts."""
    if not action or not actor:
        raise ValueError("audit entries need an actor and an action")
    cursor = conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (to_text(utc_now()), actor, action, target, json.dumps(dict(detail or {}), sort_keys=True, default=str)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def query(
    conn: sqlite3.Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; ``action`` matches a prefix (``device.`` gives every device action)."""
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
    rows = conn.execute(sql, [*params, limit]).fetchall()
    return [AuditEntry(r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["detail"])) for r in rows]
