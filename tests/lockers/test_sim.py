"""The scripted resident the demo uses: types given codes on the mock keypad and works the doors."""

from __future__ import annotations

import time
from collections.abc import Callable

from edge_agent.lockers.sim import ScriptedResident
from hub_protocol.lockers import CompartmentState
from tests.lockers.conftest import Rig


def wait_state(rig: Rig, number: int, state: CompartmentState, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while rig.bank.view(number).state is not state:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"compartment {number} never became {state.value}"
        time.sleep(0.05)


def test_scripted_resident_drops_off_and_picks_up(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    resident = ScriptedResident(rig.bank, rig.doors, rig.matrix, hold_open_s=0.2, pause_s=0.1)
    resident.start()
    try:
        rig.reserve(2, "parcel-2", "dropoff", "20000233")
        resident.give("20000233")
        wait_state(rig, 2, CompartmentState.OCCUPIED)
        rig.reserve(2, "parcel-2", "pickup", "77777712")
        resident.give("77777712")
        wait_state(rig, 2, CompartmentState.FREE)
        resident.give("99999999")  # a typo: the bank says wrong, nothing opens
        deadline = time.monotonic() + 10
        while len(resident.outcomes) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        resident.stop()
    assert [o.result for o in resident.outcomes] == ["opened", "opened", "wrong"]
    causes = [e.cause for e in rig.locker_events(2)]
    assert causes[-4:] == ["reservation-pickup", "unlock-pickup", "door-opened", "pickup"]
    assert "dropoff" in causes
