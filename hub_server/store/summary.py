"""Fleet-wide figures for a one-line summary (the demo's closing JSON, a quick health check)."""

from __future__ import annotations

from dataclasses import dataclass

from hub_server.store.engine import Connection
from hub_server.store.readings import list_devices


@dataclass(frozen=True, slots=True)
class FleetSummary:
    devices_online: list[str]
    flow_windows: int
    locker_events: int
    alarms: int
    invalid_messages: list[str]
    """One line per device and kind of message the ingest refused, with the last reason."""


def fleet_summary(conn: Connection) -> FleetSummary:
    def count(table: str) -> int:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names

    invalid = [
        f"{row['count']} invalid {row['kind']} message(s) from {row['device']}: {row['last_reason']}"
        for row in conn.execute("SELECT device, kind, count, last_reason FROM invalid_messages ORDER BY device, kind")
    ]
    return FleetSummary(
        devices_online=sorted(d.device for d in list_devices(conn) if d.online),
        flow_windows=count("flow_windows"),
        locker_events=count("locker_events"),
        alarms=count("device_alarms"),
        invalid_messages=invalid,
    )
