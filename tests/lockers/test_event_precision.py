"""Locker events leave the device with whole-second times: finer times would only say more precisely when
someone stood at the locker (the hub's door timers start at 10 s; events are ordered by sequence number)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from edge_agent.lockers.clock import ManualClock
from tests.lockers.conftest import Rig


def test_locker_events_carry_whole_seconds(make_rig: Callable[..., Rig]) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, 0, 718_281, tzinfo=UTC))
    rig = make_rig(clock=clock)
    clock.advance(2.345)
    rig.reserve(1, "res-1", "dropoff", "12345678")
    events = rig.locker_events()
    assert [e.cause for e in events][-1] == "reservation-dropoff" and len(events) >= 2  # and those at start
    assert all(e.at.microsecond == 0 for e in events)
    assert {e.at for e in events} == {datetime(2026, 1, 5, 9, 0, s, tzinfo=UTC) for s in (0, 3)}
