"""Read side of what the ingest keeps per device: availability, latest health and register entries.

The API's device list (provisioned and heard-from together) is ``hub_server.store.readings.list_devices``;
these are the ingest's own views, also used by its tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub_protocol.envelope import Health
from hub_protocol.register import RegisterEntry
from hub_server.store.engine import Connection
from hub_server.store.timestamps import from_epoch


@dataclass(frozen=True, slots=True)
class Availability:
    device: str
    site: str
    online: bool
    offline_reason: str | None
    last_seen: datetime
    status_changed: datetime | None
    boot: str | None
    dropped_total: int


def availability(conn: Connection) -> list[Availability]:
    rows = conn.execute(
        "SELECT device, site, online, offline_reason, last_seen, status_changed, boot, dropped_total FROM devices"
        " ORDER BY site, device"
    )
    return [
        Availability(
            r[0],
            r[1],
            bool(r[2]),
            r[3],
            from_epoch(r[4]),
            from_epoch(r[5]),
            r[6],
            r[7],
        )
        for r in rows
    ]


def latest_health(conn: Connection) -> dict[str, Health]:
    """The newest health sample of every device."""
    return {r[0]: Health.model_validate_json(r[1]) for r in conn.execute("SELECT device, payload FROM health_latest")}


def register_entries(conn: Connection) -> list[RegisterEntry]:
    """Every device's sensor-register entry as it last published it, by site and device."""
    rows = conn.execute("SELECT payload FROM register_latest ORDER BY site, device")
    return [RegisterEntry.model_validate_json(r[0]) for r in rows]
