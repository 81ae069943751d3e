"""Wrong codes and lockout, expiry, alarms, and power loss in the middle of an open."""

from __future__ import annotations

import time
from collections.abc import Callable

from gpiozero.pins.mock import MockFactory

from edge_agent.events import MemorySink
from hub_protocol.alarms import AlarmKind
from hub_protocol.lockers import CompartmentState
from tests.lockers.conftest import Rig


def never_energised(pin: object, active_high: bool = True) -> bool:
    """True when the pin's whole recorded history stayed at the lock's de-energised level once it was an output."""
    states = [s.state for s in pin.states]  # type: ignore[attr-defined]
    idle = not active_high
    # An active-low lock's pin is an input (high impedance) until gpiozero claims it and sets it high at once.
    return all(s == idle for s in states[1:]) and (active_high is False or states[0] == idle)


def test_wrong_codes_lock_the_keypad_with_growing_delay(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    lefts = [rig.bank.enter_code(code).attempts_left for code in ("000000", "111111", "222222", "333333")]
    assert lefts == [4, 3, 2, 1]
    fifth = rig.bank.enter_code("444444")
    assert (fifth.result, fifth.retry_after_s) == ("locked-out", 30)
    raised = rig.alarms(AlarmKind.LOCKOUT)
    assert [a.active for a in raised] == [True] and "5 wrong codes" in raised[0].detail
    # Even the right code is refused while locked out, and the lock does not move.
    lock = rig.lock_pin(1)
    lock.clear_states()
    refused = rig.bank.enter_code("482913")
    assert refused.result == "locked-out" and refused.retry_after_s is not None and refused.retry_after_s <= 30
    time.sleep(0.05)
    assert [s.state for s in lock.states] == [False]

    rig.clock.advance(31)
    rig.bank.tick()
    assert [a.active for a in rig.alarms(AlarmKind.LOCKOUT)] == [True, False]
    # The next wrong code locks again at once, for twice as long.
    again = rig.bank.enter_code("555555")
    assert (again.result, again.retry_after_s) == ("locked-out", 60)
    rig.clock.advance(61)
    assert rig.bank.enter_code("482913").result == "opened"
    # A success resets the count: four wrong codes do not lock.
    assert [rig.bank.enter_code("999999").result for _ in range(4)] == ["wrong"] * 4


def test_lockout_survives_a_restart(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    for _ in range(5):
        rig.bank.enter_code("000000")
    rig.bank.stop()
    again = make_rig(state_dir=rig.state_dir, clock=rig.clock)
    assert again.bank.enter_code("000000").result == "locked-out"


def test_expired_code_is_refused(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913", hours=1)
    rig.clock.advance(3601)
    lock = rig.lock_pin(1)
    lock.clear_states()
    outcome = rig.bank.enter_code("482913")
    assert (outcome.result, outcome.compartment) == ("expired", 1)
    time.sleep(0.05)
    assert [s.state for s in lock.states] == [False]
    # Not counted as a guess: five expired entries do not lock the keypad.
    assert [rig.bank.enter_code("482913").result for _ in range(5)] == ["expired"] * 5


def test_door_left_open_is_raised_and_cleared(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    rig.bank.enter_code("482913")
    rig.doors.set_door(1, closed=False)
    rig.clock.advance(59)
    rig.bank.tick()
    assert rig.alarms(AlarmKind.DOOR_LEFT_OPEN) == []
    rig.clock.advance(2)
    rig.bank.tick()
    rig.bank.tick()
    assert [(a.active, a.compartment) for a in rig.alarms(AlarmKind.DOOR_LEFT_OPEN)] == [(True, 1)]
    rig.doors.set_door(1, closed=True)
    assert [a.active for a in rig.alarms(AlarmKind.DOOR_LEFT_OPEN)] == [True, False]
    assert rig.bank.view(1).state is CompartmentState.OCCUPIED  # type: ignore[union-attr]


def test_forced_open_raises_an_alarm(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.doors.set_door(2, closed=False)  # nobody released the lock
    forced = rig.alarms(AlarmKind.FORCED_OPEN)
    assert [(a.active, a.compartment) for a in forced] == [(True, 2)]
    assert rig.locker_events(2)[-1].cause == "forced-open" and rig.locker_events(2)[-1].door_open
    rig.doors.set_door(2, closed=True)
    assert [a.active for a in rig.alarms(AlarmKind.FORCED_OPEN)] == [True, False]
    assert rig.bank.view(2).state is CompartmentState.FREE  # type: ignore[union-attr]


def test_missed_edge_is_caught_by_the_poll(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.bank.hardware.on_door = None  # as if the edge interrupt was lost
    rig.doors.set_door(1, closed=False)
    assert rig.alarms(AlarmKind.FORCED_OPEN) == []
    rig.bank.tick()
    assert [a.active for a in rig.alarms(AlarmKind.FORCED_OPEN)] == [True]


def test_open_but_never_opened_relocks_reports_and_keeps_the_code(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.enter_code("482913").result == "opened"
    rig.clock.advance(11)
    rig.bank.tick()
    alarm = rig.alarms(AlarmKind.OPEN_NOT_OPENED)
    assert [(a.active, a.compartment) for a in alarm] == [(True, 1)]
    assert not rig.bank.hardware.lock_energised(1)
    assert rig.locker_events(1)[-1].cause == "not-opened"
    view = rig.bank.view(1)
    assert view is not None and view.state is CompartmentState.RESERVED and not view.opening
    # The code still works; this time the door opens and the alarm clears.
    assert rig.bank.enter_code("482913").result == "opened"
    rig.doors.set_door(1, closed=False)
    assert [a.active for a in rig.alarms(AlarmKind.OPEN_NOT_OPENED)] == [True, False]


def test_door_sensor_that_never_changes_is_a_fault(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    for _ in range(3):
        assert rig.bank.enter_code("482913").result == "opened"
        rig.clock.advance(11)
        rig.bank.tick()
    fault = rig.alarms(AlarmKind.SENSOR_FAULT)
    assert [(a.active, a.compartment) for a in fault] == [(True, 1)]
    rig.bank.enter_code("482913")
    rig.doors.set_door(1, closed=False)
    assert [a.active for a in rig.alarms(AlarmKind.SENSOR_FAULT)] == [True, False]


def cut_power(rig: Rig) -> None:
    """Stop everything without the orderly shutdown: no state is written, threads just end."""
    if rig.bank.keypad is not None:
        rig.bank.keypad.stop()
    rig.bank.hardware.on_door = None
    rig.bank._closed = True  # the fixture must not run stop() on it later


def test_power_loss_during_an_open_never_unlocks_at_restart(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    rig.reserve(2, "parcel-2", "dropoff", "200002")
    assert rig.bank.enter_code("482913").result == "opened"
    assert rig.bank.enter_code("200002").result == "opened"
    assert rig.bank.hardware.lock_energised(1)
    cut_power(rig)

    # The Pi boots again: fresh pins, same state directory, doors still closed.
    pins = MockFactory()
    sink = MemorySink(boot="boot-2")
    again = make_rig(state_dir=rig.state_dir, clock=rig.clock, sink=sink, pin_factory=pins, start=False)
    lock1, lock2 = again.lock_pin(1), again.lock_pin(2)
    again.doors.close_all()
    again.bank.start(tick_thread=False)
    again.bank.tick()
    time.sleep(0.4)  # longer than a pulse: any release would show in the history
    assert never_energised(lock1, active_high=True), lock1.states
    assert never_energised(lock2, active_high=False), lock2.states
    events = {e.compartment: e for e in again.locker_events()}
    assert events[1].cause == "recovered-open-interrupted" and events[1].state is CompartmentState.RESERVED
    assert events[1].previous is CompartmentState.RESERVED
    # Nobody got in, so the codes still work (the occupancy sensor of 2 saw nothing go in either).
    assert again.bank.enter_code("482913").result == "opened"


def test_power_loss_with_the_door_open_finishes_when_it_closes(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.enter_code("482913").result == "opened"
    rig.doors.set_door(1, closed=False)
    cut_power(rig)

    pins = MockFactory()
    again = make_rig(state_dir=rig.state_dir, clock=rig.clock, pin_factory=pins, start=False)
    lock1 = again.lock_pin(1)
    again.doors.close_all()
    again.doors.set_door(1, closed=False)  # the courier is still at the open door
    again.bank.start(tick_thread=False)
    assert again.alarms(AlarmKind.FORCED_OPEN) == []
    again.doors.set_door(1, closed=True)
    assert again.bank.view(1).state is CompartmentState.OCCUPIED  # type: ignore[union-attr]
    assert again.locker_events(1)[-1].cause == "dropoff"
    time.sleep(0.4)
    assert never_energised(lock1), lock1.states


def test_door_found_open_at_start_without_an_open_is_forced(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.bank.stop()
    again = make_rig(state_dir=rig.state_dir, clock=rig.clock, start=False)
    again.doors.set_door(1, closed=False)
    again.bank.start(tick_thread=False)
    assert [(a.active, a.compartment) for a in again.alarms(AlarmKind.FORCED_OPEN)] == [(True, 1)]


def test_events_written_before_a_crash_are_sent_after_restart(make_rig: Callable[..., Rig]) -> None:
    class DownSink(MemorySink):
        def emit(self, channel, fields):  # type: ignore[no-untyped-def]
            raise OSError("outbox disk unavailable")

    rig = make_rig(sink=DownSink())
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    cut_power(rig)
    sink = MemorySink(boot="boot-2")
    again = make_rig(state_dir=rig.state_dir, clock=rig.clock, sink=sink)
    causes = [e.cause for e in again.locker_events(1)]
    assert causes[:3] == ["recovered", "reservation-dropoff", "recovered"]


def test_an_old_code_does_not_reset_the_wrong_code_count(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.enter_code("482913").result == "opened"
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    results = []
    for guess in ("000001", "000002", "000003", "000004"):
        results.append(rig.bank.enter_code(guess).result)
        results.append(rig.bank.enter_code("482913").result)  # the guesser's own, used code
    assert results == ["wrong", "used"] * 4
    assert rig.bank.enter_code("000005").result == "locked-out"


def test_alarm_of_a_door_closed_while_powered_off_is_cleared_at_start(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.doors.set_door(1, closed=False)
    assert [a.active for a in rig.alarms(AlarmKind.FORCED_OPEN)] == [True]
    rig.bank.stop()
    sink = MemorySink(boot="boot-2")
    again = make_rig(state_dir=rig.state_dir, clock=rig.clock, sink=sink)  # doors closed meanwhile
    assert [(a.active, a.compartment) for a in again.alarms(AlarmKind.FORCED_OPEN)] == [(False, 1)]


def test_code_on_an_already_open_door_finishes_when_it_closes(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    rig.doors.set_door(1, closed=False)  # left ajar
    assert rig.bank.enter_code("482913").result == "opened"
    rig.clock.advance(30)
    rig.bank.tick()
    assert rig.alarms(AlarmKind.OPEN_NOT_OPENED) == []
    rig.doors.set_door(1, closed=True)
    assert rig.bank.view(1).state is CompartmentState.OCCUPIED  # type: ignore[union-attr]


def test_clock_set_back_does_not_stretch_a_lockout(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    for _ in range(5):
        rig.bank.enter_code("000000")
    rig.clock.advance(-86_400)  # NTP corrected a clock that ran a day ahead
    outcome = rig.bank.enter_code("000000")
    assert outcome.result == "locked-out" and outcome.retry_after_s == 900
    rig.clock.advance(901)
    assert rig.bank.enter_code("000000").result == "locked-out"  # the next wrong code locks again...
    rig.clock.advance(3600 + 1)
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.enter_code("482913").result == "opened"  # ...but the keypad does open again
