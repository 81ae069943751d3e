"""Locker bank on gpiozero's MockFactory, a manual clock and an in-memory sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.events import MemorySink
from edge_agent.lockers.bank import LockerBank
from edge_agent.lockers.clock import ManualClock
from edge_agent.lockers.config import LockersConfig
from edge_agent.lockers.sim import KeyMatrix, MockDoors, prepare
from hub_protocol.alarms import AlarmKind
from hub_protocol.commands import (
    CodeHash,
    LockerOpen,
    LockerSetService,
    ReservationCancel,
    ReservationSet,
    command_header,
)
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import Channel

CONFIG: dict[str, Any] = {
    "compartments": [
        {"number": 1, "size": "S", "lock_pin": "GPIO17", "door_pin": "GPIO27", "led_pin": "GPIO22", "pulse_s": 0.3},
        {
            "number": 2,
            "size": "L",
            "accessible": True,
            "lock_pin": "BOARD29",  # GPIO5
            "lock_active_high": False,
            "door_pin": 6,
            "occupancy_pin": "BCM13",
            "pulse_s": 0.3,
        },
    ],
    "keypad": {"rows": ["GPIO12", "GPIO16", "GPIO20", "GPIO21"], "cols": ["GPIO23", "GPIO24", "GPIO25"]},
    "buzzer_pin": "GPIO18",
    "timing": {"door_left_open_s": 60, "open_not_opened_s": 10, "sensor_fault_opens": 3},
    "kiosk": {"enabled": False},
}


def assert_one_pulse(pin: Any, seconds: float, active: bool = True, settle: float = 0.5) -> None:
    """The pin went idle -> active -> idle exactly once and stayed active for ``seconds``.

    The delay before the pulse (a durable SQLite commit comes first) depends on the machine's load, so it
    only has to be short; the pulse itself is checked with gpiozero's ``assert_states_and_times``.
    """
    assert [s.state for s in pin.states] == [not active, active, not active], pin.states
    start = pin.states[1].timestamp
    assert start < settle, f"the lock was released {start:.3f} s after the code, expected at once"
    pin.assert_states_and_times([(0.0, not active), (start, active), (seconds, not active)])


def make_config(**changes: Any) -> LockersConfig:
    return LockersConfig.model_validate({**CONFIG, **changes})


@dataclass
class Rig:
    bank: LockerBank
    factory: MockFactory
    doors: MockDoors
    matrix: KeyMatrix | None
    sink: MemorySink
    clock: ManualClock
    state_dir: Path
    config: LockersConfig

    def command(self, kind: type[Any], **fields: Any) -> tuple[ResultStatus, str]:
        action = kind.model_fields["action"].annotation.__args__[0]
        header = command_header("test-device", timedelta(hours=1), "op-anna", prefix="cmd", now=self.clock.now())
        return self.bank.handlers()[action](kind(action=action, **header, **fields))

    def reserve(self, compartment: int, reservation: str, purpose: str, code: str, hours: float = 24) -> None:
        status, detail = self.command(
            ReservationSet,
            compartment=compartment,
            reservation=reservation,
            purpose=purpose,
            code=CodeHash.for_code(code, self.clock.now() + timedelta(hours=hours)),
        )
        assert status is ResultStatus.DONE, detail

    def locker_events(self, compartment: int | None = None) -> list[Any]:
        events = self.sink.of(Channel.LOCKER)
        return [e for e in events if compartment is None or e.compartment == compartment]

    def alarms(self, kind: AlarmKind | None = None) -> list[Any]:
        return [a for a in self.sink.of(Channel.ALARM) if kind is None or a.alarm is kind]

    def lock_pin(self, number: int) -> Any:
        return self.doors.lock_pin(number)


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    banks: list[LockerBank] = []

    def factory(
        config: LockersConfig | None = None,
        state_dir: Path | None = None,
        clock: ManualClock | None = None,
        sink: MemorySink | None = None,
        pin_factory: MockFactory | None = None,
        doors_closed: bool = True,
        start: bool = True,
    ) -> Rig:
        config = config or make_config()
        pins = pin_factory or MockFactory()
        doors, matrix = prepare(pins, config)
        rig_sink = sink or MemorySink()
        rig_clock = clock or ManualClock()
        bank = LockerBank(config, rig_sink, state_dir or tmp_path / "state", pin_factory=pins, clock=rig_clock)
        banks.append(bank)
        if doors_closed:
            doors.close_all()
        if start:
            bank.start(tick_thread=False)
        return Rig(bank, pins, doors, matrix, rig_sink, rig_clock, state_dir or tmp_path / "state", config)

    yield factory
    for bank in banks:
        bank.stop()


__all__ = ["LockerOpen", "LockerSetService", "ReservationCancel", "Rig", "assert_one_pulse", "make_config"]
