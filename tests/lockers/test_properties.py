"""Random sequences of everything that can happen at a bank must keep its safety invariants.

With a long pulse the lock stays energised for the whole example unless the machine de-energises it, so
"a lock is energised exactly while an open waits for its door" can be checked after every step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub_protocol.commands import CodeHash, LockerOpen, LockerSetService, ReservationCancel, ReservationSet
from hub_protocol.lockers import CompartmentState
from tests.lockers.conftest import CONFIG, Rig, make_config

CODES = ["11111111", "22222222", "33333333"]
NUMBERS = st.sampled_from([1, 2])
RESERVATIONS = st.sampled_from(["r-a", "r-b", "r-c"])

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("reserve"),
            NUMBERS,
            RESERVATIONS,
            st.sampled_from(["dropoff", "pickup", "return"]),
            st.sampled_from(CODES),
        ),
        st.tuples(st.just("enter"), st.sampled_from([*CODES, "99999999"])),
        st.tuples(st.just("door"), NUMBERS, st.booleans()),
        st.tuples(st.just("occupancy"), st.booleans()),
        st.tuples(st.just("tick"), st.sampled_from([0, 5, 15, 70])),
        st.tuples(st.just("service"), NUMBERS, st.booleans()),
        st.tuples(st.just("cancel"), RESERVATIONS),
        st.tuples(st.just("maintenance"), NUMBERS),
    ),
    min_size=1,
    max_size=25,
)


def apply(rig: Rig, step: tuple[Any, ...]) -> None:
    kind = step[0]
    if kind == "reserve":
        _, number, reservation, purpose, code = step
        hashed = CodeHash.for_code(code, rig.clock.now() + timedelta(minutes=30))
        rig.command(ReservationSet, compartment=number, reservation=reservation, purpose=purpose, code=hashed)
    elif kind == "enter":
        rig.bank.enter_code(step[1])
    elif kind == "door":
        rig.doors.set_door(step[1], closed=step[2])
    elif kind == "occupancy":
        rig.doors.set_occupied(2, step[1])
    elif kind == "tick":
        rig.clock.advance(step[1])
        rig.bank.tick()
    elif kind == "service":
        rig.command(LockerSetService, compartment=step[1], in_service=step[2])
    elif kind == "cancel":
        rig.command(ReservationCancel, reservation=step[1])
    elif kind == "maintenance":
        rig.command(LockerOpen, compartment=step[1])


def check_invariants(rig: Rig) -> None:
    store = rig.bank.store
    for number in (1, 2):
        row = store.compartment(number)
        assert row is not None
        pending = store.pending(number)
        waiting = pending is not None and not pending.door_opened
        assert rig.bank.hardware.lock_energised(number) == waiting, (number, row, pending)
        assert row.door_open == (not rig.bank.hardware.door_closed(number))
        if row.state is CompartmentState.FREE:
            assert row.reservation is None
        if row.state in (CompartmentState.RESERVED, CompartmentState.OCCUPIED):
            assert row.reservation is not None
    holders = [store.compartment(n).reservation for n in (1, 2)]  # type: ignore[union-attr]
    assert len([h for h in holders if h]) == len({h for h in holders if h}), "a reservation in two compartments"
    assert store.pending_events() == []  # everything reached the sink, which validated it against the contract


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_random_use_keeps_the_bank_safe(make_rig: Callable[..., Rig], tmp_path_factory: Any, steps: list[Any]) -> None:
    compartments = [dict(c, pulse_s=30) for c in CONFIG["compartments"]]
    rig = make_rig(config=make_config(compartments=compartments), state_dir=tmp_path_factory.mktemp("bank"))
    try:
        for step in steps:
            apply(rig, step)
            check_invariants(rig)
    finally:
        rig.bank.stop()
