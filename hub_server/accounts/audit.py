"""The audit trail: one append-only row per operator action (remote open, code issued, device added or revoked,
user changed...). Call ``record`` inside the same transaction as the action, so both happen or neither does.

Details name things by id, never a resident's name or contact: the trail outlives personal data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub_server.store import audit as store
from hub_server.store.accounts import utc_now
from hub_server.store.engine import Connection
from hub_server.store.timestamps import from_epoch


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Append one entry. ``actor`` e.g. ``user:alice`` / ``token:3`` / ``cli:root`` (see ``Principal.actor``);
    ``action`` a dotted verb like ``device.revoke``; ``target`` what it acted on; ``detail`` JSON-able facts."""
    if not action or not actor:
        raise ValueError("audit entries need an actor and an action")
    detail_text = json.dumps(dict(detail or {}), sort_keys=True, default=str)
    return store.insert(conn, utc_now(), actor, action, target, detail_text)


def query(
    conn: Connection,
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
    rows = store.select(
        conn, actor=actor, action=action, target=target, since=since, until=until, before_id=before_id, limit=limit
    )
    return [
        AuditEntry(r["id"], from_epoch(r["at"]), r["actor"], r["action"], r["target"], json.loads(r["detail"]))
        for r in rows
    ]
