"""Read side of field validations (migration 0040): each device's published accuracy.

Rows carry the record as the device sent it (totals per line, direction and class, already protected on
the device) with the time it was received.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub_protocol.accuracy import ValidationRecord
from hub_server.store.engine import Connection, Row
from hub_server.store.timestamps import from_epoch


@dataclass(frozen=True, slots=True)
class StoredValidation:
    site: str
    received_at: datetime
    record: ValidationRecord

    @property
    def device(self) -> str:
        return self.record.device


def _row(row: Row) -> StoredValidation:
    return StoredValidation(
        row["site"],
        from_epoch(row["received_at"]),
        ValidationRecord.model_validate_json(row["payload"]),
    )


def latest(conn: Connection, device: str | None = None) -> dict[str, StoredValidation]:
    """The most recent validation (by the start of its period) of every device, or of one."""
    rows = conn.execute(
        "SELECT v.site, v.received_at, v.payload FROM validations v"
        " JOIN (SELECT device AS d, MAX(started_at) AS s FROM validations WHERE (CAST(? AS TEXT) IS NULL OR device = ?)"
        " GROUP BY device) m ON v.device = m.d AND v.started_at = m.s ORDER BY v.device, v.received_at",
        (device, device),
    ).fetchall()
    return {found.device: found for found in map(_row, rows)}  # of two at the same minute, the later received


def history(conn: Connection, device: str | None = None, limit: int = 100) -> list[StoredValidation]:
    """Validations newest first, of every device or of one."""
    rows = conn.execute(
        "SELECT site, received_at, payload FROM validations WHERE (CAST(? AS TEXT) IS NULL OR device = ?)"
        " ORDER BY started_at DESC, received_at DESC LIMIT ?",
        (device, device, limit),
    ).fetchall()
    return [_row(row) for row in rows]
