"""Devices that hold broker credentials issued by the hub, and which of them were revoked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub_server.store.accounts import utc_now
from hub_server.store.engine import Connection, Row
from hub_server.store.timestamps import from_epoch, to_epoch


class ProvisioningError(ValueError):
    """A device request that cannot be carried out (exists already, unknown, revoked)."""


class UnknownDevice(ProvisioningError):
    """No device of that id was ever provisioned."""


@dataclass(frozen=True, slots=True)
class ProvisionedDevice:
    device: str
    site: str
    username: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _row(row: Row) -> ProvisionedDevice:
    return ProvisionedDevice(
        row["device"],
        row["site"],
        row["username"],
        from_epoch(row["created_at"]),
        row["created_by"],
        from_epoch(row["revoked_at"]),
    )


def add(conn: Connection, device: str, site: str, username: str, created_by: str) -> ProvisionedDevice:
    existing = get(conn, device)
    if existing is not None:
        state = "revoked; a revoked id is never reused" if existing.revoked_at else "provisioned already"
        raise ProvisioningError(f"device {device!r} is {state}")
    conn.execute(
        "INSERT INTO provisioned_devices (device, site, username, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        (device, site, username, to_epoch(utc_now()), created_by),
    )
    found = get(conn, device)
    assert found is not None
    return found


def get(conn: Connection, device: str) -> ProvisionedDevice | None:
    row = conn.execute("SELECT * FROM provisioned_devices WHERE device = ?", (device,)).fetchone()
    return _row(row) if row else None


def list_all(conn: Connection) -> list[ProvisionedDevice]:
    return [_row(r) for r in conn.execute("SELECT * FROM provisioned_devices ORDER BY site, device")]


def revoke(conn: Connection, device: str) -> ProvisionedDevice:
    found = get(conn, device)
    if found is None:
        raise UnknownDevice(f"no provisioned device {device!r}")
    if found.revoked_at is None:
        conn.execute("UPDATE provisioned_devices SET revoked_at = ? WHERE device = ?", (to_epoch(utc_now()), device))
    updated = get(conn, device)
    assert updated is not None
    return updated


def revoked_devices(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT device FROM provisioned_devices WHERE revoked_at IS NOT NULL")}
