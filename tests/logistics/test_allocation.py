"""Allocation: smallest fitting free compartment; accessible ones when asked, and spared otherwise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub_protocol.lockers import CompartmentSize, CompartmentState
from hub_server.logistics.service import DeliveryRequest, NoCompartmentFree, choose_compartment
from hub_server.store.logistics import CompartmentRow
from tests.logistics.conftest import Bench


def _request(size: str, accessible: bool = False) -> DeliveryRequest:
    return DeliveryRequest(size=CompartmentSize(size), accessible=accessible, resident_name="A. Resident")


def test_small_goes_to_small_non_accessible_first(bench: Bench) -> None:
    created = bench.logistics.create(_request("S"))
    assert created.delivery.compartment == 1
    # Next S: only the accessible S is left; a bigger non-accessible M is not better than it (size first).
    assert bench.logistics.create(_request("S")).delivery.compartment == 2
    # Then S items move up a size: non-accessible M before accessible M.
    assert bench.logistics.create(_request("S")).delivery.compartment == 3
    assert bench.logistics.create(_request("S")).delivery.compartment == 4
    assert bench.logistics.create(_request("S")).delivery.compartment == 5
    with pytest.raises(NoCompartmentFree, match="size S"):
        bench.logistics.create(_request("S"))


def test_accessible_request_gets_only_accessible(bench: Bench) -> None:
    assert bench.logistics.create(_request("M", accessible=True)).delivery.compartment == 4
    with pytest.raises(NoCompartmentFree, match="accessible compartment of size M"):
        bench.logistics.create(_request("M", accessible=True))
    assert bench.logistics.create(_request("S", accessible=True)).delivery.compartment == 2


def test_large_fits_only_large(bench: Bench) -> None:
    assert bench.logistics.create(_request("L")).delivery.compartment == 5
    with pytest.raises(NoCompartmentFree):
        bench.logistics.create(_request("L"))


def test_compartments_not_free_on_the_device_are_skipped(bench: Bench) -> None:
    bench.event(3, CompartmentState.OUT_OF_SERVICE, "service", previous=CompartmentState.FREE)
    bench.event(5, CompartmentState.OCCUPIED, "remote-open", previous=CompartmentState.FREE)
    assert bench.logistics.create(_request("M")).delivery.compartment == 4
    with pytest.raises(NoCompartmentFree):
        bench.logistics.create(_request("M"))


def test_unreported_compartments_are_not_used(bench: Bench) -> None:
    from hub_server.logistics.service import CompartmentSpec, LockerSpec

    bench.logistics.set_compartments("dev-b", LockerSpec(compartments=[CompartmentSpec(number=1, size="L")]))
    with pytest.raises(NoCompartmentFree):
        bench.logistics.create(DeliveryRequest(size=CompartmentSize.S, device="dev-b", resident_name="B"))


def test_events_for_unknown_compartments_make_them_known_without_size(bench: Bench) -> None:
    bench.event(9, CompartmentState.FREE, "recovered")
    nine = next(c for c in bench.logistics.compartments("dev-a") if c.number == 9)
    assert nine.size is None and nine.state is CompartmentState.FREE
    # Without a size it is never allocated: a parcel could not fit a compartment nobody measured.
    for _ in range(5):
        bench.logistics.create(_request("S"))
    with pytest.raises(NoCompartmentFree):
        bench.logistics.create(_request("S"))


def test_older_reports_do_not_overwrite_newer(bench: Bench) -> None:
    now = bench.clock()
    bench.event(1, CompartmentState.OUT_OF_SERVICE, "service", at=now)
    from datetime import timedelta

    bench.event(1, CompartmentState.FREE, "service", at=now - timedelta(minutes=5))
    one = next(c for c in bench.logistics.compartments("dev-a") if c.number == 1)
    assert one.state is CompartmentState.OUT_OF_SERVICE


SIZES = ["S", "M", "L"]
_compartments = st.lists(
    st.tuples(
        st.sampled_from(SIZES),
        st.booleans(),
        st.sampled_from(["free", "reserved", "occupied", "out-of-service"]),
        st.booleans(),
    ),
    max_size=12,
)


@given(_compartments, st.sampled_from(SIZES), st.booleans())
def test_choice_is_free_fitting_and_smallest(
    specs: list[tuple[str, bool, str, bool]], size: str, accessible: bool
) -> None:
    candidates = [
        CompartmentRow(
            device="dev-a",
            number=i + 1,
            size=s,
            accessible=acc,
            state=state,
            door_open=False,
            door_open_since=None,
            reported_at=None,
            delivery="d-x" if held else None,
        )
        for i, (s, acc, state, held) in enumerate(specs)
    ]
    usable = [
        c
        for c in candidates
        if c.state == "free"
        and c.delivery is None
        and SIZES.index(c.size or "S") >= SIZES.index(size)
        and (c.accessible or not accessible)
    ]
    chosen = choose_compartment(candidates, CompartmentSize(size), accessible)
    if not usable:
        assert chosen is None
        return
    assert chosen in usable
    smallest = min(SIZES.index(c.size or "S") for c in usable)
    assert SIZES.index(chosen.size or "S") == smallest  # never a bigger compartment than needed
    if not accessible and any(not c.accessible and c.size == chosen.size for c in usable):
        assert not chosen.accessible  # accessible ones are spared for who needs them
