"""Hub commands: maintenance open, out of service, reservations and cancel, each with the operator id."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from hub_protocol.commands import CodeHash, LockerOpen, LockerSetService, ReservationCancel, ReservationSet
from hub_protocol.envelope import ResultStatus
from hub_protocol.lockers import CompartmentState
from tests.lockers.conftest import Rig, assert_one_pulse


def test_maintenance_open_pulses_and_records_the_operator(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    lock = rig.lock_pin(1)
    lock.clear_states()
    status, detail = rig.command(LockerOpen, compartment=1)
    assert status is ResultStatus.DONE and "released" in detail
    time.sleep(0.45)
    assert_one_pulse(lock, 0.3)
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    events = rig.locker_events(1)
    assert [(e.cause, e.operator) for e in events[-3:]] == [
        ("unlock-maintenance", "op-anna"),
        ("door-opened", "op-anna"),
        ("maintenance-closed", "op-anna"),
    ]
    assert rig.alarms() == []  # an authorised open is not forced


def test_unknown_compartment_fails_with_a_reason(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    status, detail = rig.command(LockerOpen, compartment=7)
    assert status is ResultStatus.FAILED and detail == "there is no compartment 7"


def test_out_of_service_refuses_codes_and_comes_back(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    status, _ = rig.command(LockerSetService, compartment=1, in_service=False)
    assert status is ResultStatus.DONE
    assert rig.bank.enter_code("482913").result == "out-of-service"
    event = rig.locker_events(1)[-1]
    assert (event.cause, event.state, event.previous, event.operator) == (
        "service",
        CompartmentState.OUT_OF_SERVICE,
        CompartmentState.RESERVED,
        "op-anna",
    )
    status, detail = rig.command(
        ReservationSet,
        compartment=1,
        reservation="parcel-9",
        purpose="dropoff",
        code=CodeHash.for_code("777777", rig.clock.now() + timedelta(hours=1)),
    )
    assert status is ResultStatus.FAILED and "out of service" in detail
    status, _ = rig.command(LockerSetService, compartment=1, in_service=True)
    assert rig.bank.view(1).state is CompartmentState.RESERVED  # type: ignore[union-attr]
    assert rig.bank.enter_code("482913").result == "opened"


def test_reservation_rules(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    expires = rig.clock.now() + timedelta(hours=1)
    other = rig.command(
        ReservationSet,
        compartment=1,
        reservation="parcel-2",
        purpose="dropoff",
        code=CodeHash.for_code("123123", expires),
    )
    assert other == (ResultStatus.FAILED, "compartment 1 holds another reservation")
    elsewhere = rig.command(
        ReservationSet,
        compartment=2,
        reservation="parcel-1",
        purpose="dropoff",
        code=CodeHash.for_code("123123", expires),
    )
    assert elsewhere == (ResultStatus.FAILED, "reservation parcel-1 is in compartment 1")
    # A re-issued drop-off code replaces the old one.
    rig.reserve(1, "parcel-1", "dropoff", "654321")
    assert rig.bank.enter_code("482913").result == "wrong"
    assert rig.bank.enter_code("654321").result == "opened"


def test_cancel_frees_and_forgets_the_codes(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    status, detail = rig.command(ReservationCancel, reservation="parcel-1")
    assert status is ResultStatus.DONE and "freed" in detail
    assert rig.bank.view(1).state is CompartmentState.FREE  # type: ignore[union-attr]
    assert rig.bank.enter_code("482913").result == "wrong"
    event = rig.locker_events(1)[-1]
    assert (event.cause, event.reservation, event.operator) == ("cancel", "parcel-1", "op-anna")
    again = rig.command(ReservationCancel, reservation="parcel-1")
    assert again == (ResultStatus.FAILED, "no compartment holds reservation parcel-1")


def test_cancel_of_an_occupied_compartment_warns(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    rig.bank.enter_code("482913")
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    status, detail = rig.command(ReservationCancel, reservation="parcel-1")
    assert status is ResultStatus.DONE and "may still be inside" in detail


def test_handler_refuses_a_model_of_the_wrong_action(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    now = rig.clock.now()
    cancel = ReservationCancel(
        action="reservation-cancel",
        id="c-1",
        device="test-device",
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        reservation="x",
    )
    status, detail = rig.bank.handlers()["locker-open"](cancel)
    assert status is ResultStatus.REFUSED_INVALID and "LockerOpen" in detail
    assert set(rig.bank.handlers()) == {"locker-open", "locker-service", "reservation-set", "reservation-cancel"}


def fill(rig: Rig, number: int, reservation: str, code: str) -> None:
    rig.reserve(number, reservation, "dropoff", code)
    assert rig.bank.enter_code(code).result == "opened"
    rig.doors.set_door(number, closed=False)
    rig.doors.set_door(number, closed=True)


def test_extending_a_pickup_code_replaces_its_expiry(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    fill(rig, 1, "parcel-1", "482913")
    first = CodeHash.for_code("739105", rig.clock.now() + timedelta(hours=1))
    status, _ = rig.command(ReservationSet, compartment=1, reservation="parcel-1", purpose="pickup", code=first)
    assert status is ResultStatus.DONE
    later = first.model_copy(update={"expires_at": rig.clock.now() + timedelta(hours=5)})
    status, _ = rig.command(ReservationSet, compartment=1, reservation="parcel-1", purpose="pickup", code=later)
    assert status is ResultStatus.DONE
    rig.clock.advance(2 * 3600)
    assert rig.bank.enter_code("739105").result == "opened"


def test_return_code_ends_the_pickup_code(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    fill(rig, 1, "parcel-1", "482913")
    rig.reserve(1, "parcel-1", "pickup", "739105")
    rig.reserve(1, "parcel-1", "return", "246810")
    assert rig.bank.enter_code("739105").result == "wrong"
    outcome = rig.bank.enter_code("246810")
    assert (outcome.result, outcome.purpose.value if outcome.purpose else None) == ("opened", "return")
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    last = rig.locker_events(1)[-1]
    assert (last.cause, last.state, last.reservation) == ("return", CompartmentState.FREE, "parcel-1")


def test_late_pickup_code_does_not_refill_a_free_compartment(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    status, detail = rig.command(
        ReservationSet,
        compartment=1,
        reservation="parcel-1",
        purpose="pickup",
        code=CodeHash.for_code("739105", rig.clock.now() + timedelta(hours=1)),
    )
    assert (status, detail) == (ResultStatus.FAILED, "compartment 1 is free; a pickup code needs occupied")
    assert rig.bank.view(1).state is CompartmentState.FREE  # type: ignore[union-attr]


def test_out_of_service_during_a_visit_keeps_the_mark(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.enter_code("482913").result == "opened"
    rig.doors.set_door(1, closed=False)
    rig.command(LockerSetService, compartment=1, in_service=False)  # staff noticed a broken hinge
    rig.doors.set_door(1, closed=True)
    assert rig.bank.view(1).state is CompartmentState.OUT_OF_SERVICE  # type: ignore[union-attr]
    rig.command(LockerSetService, compartment=1, in_service=True)
    view = rig.bank.view(1)
    assert view is not None and (view.state, view.reservation) == (CompartmentState.OCCUPIED, "parcel-1")
