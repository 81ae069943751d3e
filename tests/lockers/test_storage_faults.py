"""The locker bank on a bad day: a full disk while codes are typed, a damaged state file, slow guessing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from edge_agent.lockers.bank import STATE_FILE
from edge_agent.lockers.machine import CodeOutcome
from hub_protocol.alarms import AlarmKind
from hub_protocol.lockers import CompartmentState
from tests.conftest import wait_for
from tests.lockers.conftest import Rig, assert_one_pulse
from tests.storage_faults import FullDisk, damage_file


def _outcomes(rig: Rig) -> list[CodeOutcome]:
    seen: list[CodeOutcome] = []
    rig.bank.machine.listeners.append(seen.append)
    return seen


def test_the_keypad_answers_through_a_full_disk_and_after_it(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    outcomes = _outcomes(rig)
    disk = FullDisk(rig.bank.store._db)
    rig.bank.store._db = disk  # type: ignore[assignment]
    lock = rig.lock_pin(1)
    lock.clear_states()
    assert rig.matrix is not None and rig.bank.keypad is not None

    disk.full = True
    rig.matrix.type("482913#")  # the right code: using it up needs a write, which fails
    wait_for(lambda: len(outcomes) == 1, what="an answer to the code typed on a full disk")
    rig.matrix.type("111111#")
    wait_for(lambda: len(outcomes) == 2, what="an answer to the second code")
    assert [o.result for o in outcomes] == ["unavailable", "unavailable"]
    assert [s.state for s in lock.states] == [False], "nothing opens while the state cannot be written"
    assert disk.refused >= 2 and rig.bank.store.watch.disk_full
    assert rig.bank.store.lockout().failures == 0, "a refused write is not a wrong code"

    disk.full = False
    lock.clear_states()
    rig.matrix.type("482913#")
    wait_for(lambda: len(outcomes) == 3, what="the keypad to answer again once the disk has room")
    assert outcomes[2].result == "opened"
    wait_for(lambda: len(lock.states) >= 3, what="the lock pulse")
    assert_one_pulse(lock, 0.3, settle=10)  # typing seven keys on the scanned matrix comes first
    rig.doors.set_door(1, closed=False)
    rig.doors.set_door(1, closed=True)
    assert rig.bank.view(1).state is CompartmentState.OCCUPIED  # type: ignore[union-attr]


def test_a_damaged_state_file_is_replaced_and_the_bank_keeps_serving(make_rig: Callable[..., Rig]) -> None:
    first = make_rig()
    first.reserve(1, "parcel-1", "dropoff", "482913")
    first.bank.stop()
    damage_file(first.state_dir / STATE_FILE)

    rig = make_rig(state_dir=first.state_dir, clock=first.clock)  # today: sqlite3.DatabaseError at start
    assert len(list(first.state_dir.glob(f"{STATE_FILE}.damaged-*"))) == 1
    damaged = rig.alarms(AlarmKind.STATE_DAMAGED)
    assert [a.active for a in damaged] == [True]
    assert "moved to" in damaged[0].detail and "re-send the reservations" in damaged[0].detail
    # The hub re-sends the reservation; residents are served as before.
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    assert rig.bank.enter_code("482913").result == "opened"


def test_slow_code_guessing_under_the_lockout_raises_an_alarm(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    policy = rig.config.lockout
    results = []
    for hour in range(6):
        for n in range(policy.max_attempts - 1):  # one short of a lockout, then quiet until it is forgotten
            results.append(rig.bank.enter_code(f"{hour}{n}0000").result)
            rig.clock.advance(60)
        rig.clock.advance(policy.reset_after_s + 60)
        rig.bank.tick()
    assert set(results) == {"wrong"} and not rig.alarms(AlarmKind.LOCKOUT), "the lockout never triggered"
    raised = rig.alarms(AlarmKind.CODE_GUESSING)
    assert [a.active for a in raised] == [True], "raised once, not at every further guess"
    assert str(policy.guessing_alarm_codes) in raised[0].detail

    rig.clock.advance(policy.guessing_window_s)
    rig.bank.tick()
    assert [a.active for a in rig.alarms(AlarmKind.CODE_GUESSING)] == [True, False]


def test_a_few_mistyped_codes_a_day_raise_no_guessing_alarm(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    for _ in range(10):
        assert rig.bank.enter_code("999999").result == "wrong"
        rig.clock.advance(timedelta(hours=3).total_seconds())
        rig.bank.tick()
    assert not rig.alarms(AlarmKind.CODE_GUESSING)
