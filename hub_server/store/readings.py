"""Read side of what the ingest stores (tables of migration 0001): devices, health and flow cells, for the API.

Times in those tables are Unix seconds (UTC); this module hands out aware datetimes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub_server.store.engine import Connection
from hub_server.store.timestamps import from_epoch, to_epoch


@dataclass(frozen=True, slots=True)
class DeviceRow:
    device: str
    site: str
    provisioned: bool
    revoked: bool
    online: bool
    first_seen: datetime | None
    last_seen: datetime | None
    boot: str | None
    offline_reason: str | None
    dropped_total: int


@dataclass(frozen=True, slots=True)
class FlowCellRow:
    window_start: datetime
    window_seconds: int
    site: str
    device: str
    line: str
    direction: str
    object_class: str
    count: int | None
    policy_kind: str
    observed_fraction: float


_DEVICES_SQL = """
SELECT d.device AS device, d.site AS site, 0 AS provisioned, 0 AS revoked, d.online, d.first_seen, d.last_seen,
       d.boot, d.offline_reason, d.dropped_total
FROM devices d
"""


def list_devices(conn: Connection, site: str | None = None) -> list[DeviceRow]:
    """Every device the hub heard from or provisioned, by site and id."""
    found: dict[str, DeviceRow] = {}
    for r in conn.execute(_DEVICES_SQL):
        found[r["device"]] = DeviceRow(
            r["device"],
            r["site"],
            False,
            False,
            bool(r["online"]),
            from_epoch(r["first_seen"]),
            from_epoch(r["last_seen"]),
            r["boot"],
            r["offline_reason"],
            int(r["dropped_total"]),
        )
    for r in conn.execute("SELECT device, site, revoked_at FROM provisioned_devices"):
        seen = found.get(r["device"])
        revoked = r["revoked_at"] is not None
        if seen is None:
            found[r["device"]] = DeviceRow(r["device"], r["site"], True, revoked, False, None, None, None, None, 0)
        else:
            found[r["device"]] = DeviceRow(
                seen.device,
                seen.site,
                True,
                revoked,
                seen.online and not revoked,
                seen.first_seen,
                seen.last_seen,
                seen.boot,
                seen.offline_reason,
                seen.dropped_total,
            )
    rows = [d for d in found.values() if site is None or d.site == site]
    return sorted(rows, key=lambda d: (d.site, d.device))


def get_device(conn: Connection, device: str) -> DeviceRow | None:
    return next((d for d in list_devices(conn) if d.device == device), None)


def latest_health(conn: Connection, device: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT payload FROM health_latest WHERE device = ?", (device,)).fetchone()
    return json.loads(row["payload"]) if row else None


def health_history(
    conn: Connection, device: str, since: datetime, until: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Health samples of one device in [since, until), oldest first."""
    sql = "SELECT * FROM health_samples WHERE device = ? AND at >= ?"
    params: list[Any] = [device, to_epoch(since)]
    if until is not None:
        sql += " AND at < ?"
        params.append(to_epoch(until))
    sql += " ORDER BY at LIMIT ?"
    params.append(limit)
    out = []
    for r in conn.execute(sql, params):
        sample = {k: r[k] for k in r.keys()}  # noqa: SIM118 - Row iterates values, not keys
        sample["at"] = from_epoch(r["at"])
        out.append(sample)
    return out


def flow_cells(
    conn: Connection,
    *,
    device: str | None = None,
    site: str | None = None,
    line: str | None = None,
    object_class: str | None = None,
    direction: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    protected_only: bool = False,
    limit: int = 1000,
) -> list[FlowCellRow]:
    """Cells of stored windows in [since, until) of the window start, oldest first.

    ``protected_only`` keeps windows that left the device under a protection policy (threshold or dp).
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("c.device", device),
        ("c.site", site),
        ("c.line", line),
        ("c.object_class", object_class),
        ("c.direction", direction),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("c.window_start >= ?")
        params.append(to_epoch(since))
    if until is not None:
        where.append("c.window_start < ?")
        params.append(to_epoch(until))
    if protected_only:
        where.append("w.policy_kind != 'none'")
    sql = (
        "SELECT c.window_start, c.window_seconds, c.site, c.device, c.line, c.direction, c.object_class, c.count,"
        " w.policy_kind, w.observed_fraction"
        " FROM flow_cells c JOIN flow_windows w ON (w.device, w.boot, w.seq) = (c.device, c.boot, c.seq)"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.window_start, c.site, c.device, c.line, c.direction, c.object_class LIMIT ?"
    params.append(limit)
    return [
        FlowCellRow(from_epoch(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], float(r[9]))
        for r in conn.execute(sql, params)
    ]
