"""Locker alarms: when each is due, and raising/clearing them exactly once through the event store.

Which alarms are active is stored, so a restart neither repeats a raise nor forgets to clear one. The
events go out on the ``alarm`` channel as ``DeviceAlarm``, written in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from edge_agent.lockers.config import TimingConfig
from edge_agent.lockers.store import CompartmentRow, LockerStore
from hub_protocol.alarms import AlarmKind
from hub_protocol.topics import Channel

DueAlarm = tuple[AlarmKind, str]


class AlarmBook:
    def __init__(self, store: LockerStore) -> None:
        self.store = store

    def set(self, now: datetime, kind: AlarmKind, compartment: int | None, active: bool, detail: str = "") -> bool:
        """Raise or clear; returns False (and records nothing) when it already was in that state."""
        if self.store.alarm_active(kind.value, compartment) == active:
            return False
        self.store.set_alarm(kind.value, compartment, active, now)
        self.store.record(
            Channel.ALARM,
            {
                "alarm": kind.value,
                "active": active,
                "at": now.isoformat(),
                "compartment": compartment,
                "detail": detail[:500],
            },
        )
        return True


def due_alarms(now: datetime, row: CompartmentRow, timing: TimingConfig) -> list[DueAlarm]:
    """Alarms a compartment's door history calls for now (raised by the caller; cleared by door edges)."""
    due: list[DueAlarm] = []
    unchanged_s = (now - row.door_changed_at).total_seconds()
    if row.door_open and unchanged_s >= timing.door_left_open_s:
        due.append((AlarmKind.DOOR_LEFT_OPEN, f"door open for more than {timing.door_left_open_s:.0f} s"))
    # A reed switch that never moves although the lock was released: broken, unplugged or its magnet gone.
    stuck_opens = row.opens_without_change >= timing.sensor_fault_opens
    stuck_long = row.opens_without_change > 0 and unchanged_s >= timing.sensor_fault_days * 86_400
    if stuck_opens or stuck_long:
        due.append(
            (
                AlarmKind.SENSOR_FAULT,
                f"door sensor did not change during {row.opens_without_change} releases; check the reed switch",
            )
        )
    return due
