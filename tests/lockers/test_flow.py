"""Drop-off and pickup end to end on mock pins: keypad, lock pulse, door sensor, LED, events, SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from edge_agent.lockers.bank import STATE_FILE
from edge_agent.lockers.store import LockerStore
from hub_protocol.commands import CodeHash, ReservationSet
from hub_protocol.lockers import CompartmentState
from tests.conftest import wait_for as shared_wait_for
from tests.lockers.conftest import Rig, assert_one_pulse

wait_for = partial(shared_wait_for, timeout=3.0, interval=0.01)


def test_dropoff_and_pickup_with_keypad(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.view(1).state is CompartmentState.RESERVED  # type: ignore[union-attr]
    lock = rig.lock_pin(1)
    led = rig.factory.pin("GPIO22")
    buzzer = rig.factory.pin("GPIO18")
    lock.clear_states()

    assert rig.matrix is not None
    rig.matrix.type("482913#")
    wait_for(lambda: len(lock.states) >= 3)  # energised, then released after the pulse
    # One pulse of pulse_s (0.3 s) from a de-energised lock, nothing more.
    assert [s.state for s in lock.states] == [False, True, False]
    assert abs(lock.states[2].timestamp - 0.3) < 0.05
    assert any(s.state for s in led.states), "the compartment's LED blinks while it is open"
    assert any(s.state for s in buzzer.states), "key clicks and the success beep sound"

    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    view = rig.bank.view(1)
    assert view is not None and view.state is CompartmentState.OCCUPIED and not view.opening
    wait_for(lambda: not led.state)

    rig.reserve(1, "parcel-1", "pickup", "739105")
    outcome = rig.bank.enter_code("739105")
    assert (outcome.result, outcome.compartment) == ("opened", 1)
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    assert rig.bank.view(1).state is CompartmentState.FREE  # type: ignore[union-attr]

    causes = [(e.cause, e.state.value, e.door_open) for e in rig.locker_events(1)]
    assert causes == [
        ("recovered", "free", False),
        ("reservation-dropoff", "reserved", False),
        ("unlock-dropoff", "reserved", False),
        ("door-opened", "reserved", True),
        ("dropoff", "occupied", False),
        ("reservation-pickup", "occupied", False),
        ("unlock-pickup", "occupied", False),
        ("door-opened", "occupied", True),
        ("pickup", "free", False),
    ]
    pickup = rig.locker_events(1)[-1]
    assert pickup.previous is CompartmentState.OCCUPIED and pickup.reservation == "parcel-1"
    assert [e.seq for _, e in rig.sink.events] == list(range(1, len(rig.sink.events) + 1))  # type: ignore[attr-defined]
    # Every transition is on disk too, in the same order.
    store = LockerStore(rig.state_dir / STATE_FILE)
    try:
        assert [h["cause"] for h in store.history(1)] == [c for c, _, _ in causes]
        assert store.pending_events() == []  # all handed to the sink
    finally:
        store.close()


def test_lock_pulse_timing(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    lock = rig.lock_pin(1)
    lock.clear_states()
    assert rig.bank.enter_code("482913").result == "opened"
    wait_for(lambda: len(lock.states) >= 3)  # the pulse has ended
    assert_one_pulse(lock, 0.3)


def test_door_opening_ends_the_pulse_early(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    lock = rig.lock_pin(1)
    lock.clear_states()
    assert rig.bank.enter_code("482913").result == "opened"
    time.sleep(0.1)
    rig.doors.set_door(1, closed=False)  # the latch did its job: the coil is switched off at once
    assert_one_pulse(lock, 0.1)
    time.sleep(0.4)
    assert len(lock.states) == 3


def test_active_low_lock_pulses_low(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(2, "parcel-2", "dropoff", "200002")
    lock = rig.lock_pin(2)
    lock.clear_states()
    assert rig.bank.enter_code("200002").result == "opened"
    wait_for(lambda: len(lock.states) >= 3)  # the pulse has ended (a fixed sleep fails on a loaded machine)
    assert_one_pulse(lock, 0.3, active=False)


def test_codes_are_single_use(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "111222")
    assert rig.bank.enter_code("111222").result == "opened"
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    again = rig.bank.enter_code("111222")
    assert again.result == "used"
    lock = rig.lock_pin(1)
    lock.clear_states()
    time.sleep(0.05)
    assert [s.state for s in lock.states] == [False]


def test_codes_open_only_their_own_compartment(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "100001")
    rig.reserve(2, "parcel-2", "dropoff", "200002")
    outcome = rig.bank.enter_code("200002")
    assert (outcome.result, outcome.compartment) == ("opened", 2)
    time.sleep(0.05)
    assert [s.state for s in rig.lock_pin(1).states] == [False]


def test_pickup_code_before_dropoff_is_not_ready(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "100001")
    status, detail = rig.command(
        ReservationSet,
        compartment=1,
        reservation="parcel-1",
        purpose="pickup",
        code=CodeHash.for_code("300003", rig.clock.now().replace(year=2030)),
    )
    assert status.value == "failed" and "reserved" in detail


def test_occupancy_sensor_keeps_an_empty_dropoff_reserved(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(2, "parcel-2", "dropoff", "200002")
    rig.doors.set_occupied(2, False)
    assert rig.bank.enter_code("200002").result == "opened"
    rig.doors.set_door(2, closed=False)
    rig.doors.set_door(2, closed=True)
    assert rig.bank.view(2).state is CompartmentState.RESERVED  # type: ignore[union-attr]
    assert rig.locker_events(2)[-1].cause == "dropoff-empty"
    # The courier may try again with the same code, and this time something goes in.
    assert rig.bank.enter_code("200002").result == "opened"
    rig.doors.set_door(2, closed=False)
    rig.doors.set_occupied(2, True)
    rig.doors.set_door(2, closed=True)
    assert rig.bank.view(2).state is CompartmentState.OCCUPIED  # type: ignore[union-attr]
