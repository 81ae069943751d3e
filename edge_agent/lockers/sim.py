"""Simulated residents and wiring on gpiozero's MockFactory: for tests and the demo, never for the field.

``KeyMatrix`` models the keypad's switches: when a row pin is driven low and a key on that row is held,
the key's column pin reads low. ``MockDoors`` moves door and occupancy pins like magnets and parcels would.
``ScriptedResident`` types codes and opens and closes doors, so a demo shows real locker activity.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

from edge_agent.lockers.config import KeypadConfig, LockersConfig
from edge_agent.lockers.keypad import LAYOUT
from edge_agent.lockers.machine import CodeOutcome

log = logging.getLogger(__name__)


class MatrixRowPin(MockPin):  # type: ignore[misc]
    """A row output that tells the matrix whenever its level changes."""

    def __init__(self, factory: Any, info: Any, matrix: KeyMatrix | None = None) -> None:
        self.matrix = matrix
        super().__init__(factory, info)

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if changed and self.matrix is not None:
            self.matrix.refresh()
        return changed


class KeyMatrix:
    """Create before the keypad claims its pins (``prepare`` does it for a whole config)."""

    def __init__(self, factory: MockFactory, config: KeypadConfig) -> None:
        self.rows = [factory.pin(p, pin_class=MatrixRowPin, matrix=self) for p in config.rows]
        self.cols = [factory.pin(p) for p in config.cols]
        self._held: set[tuple[int, int]] = set()
        self._lock = threading.RLock()
        self.scan_interval_s = config.scan_interval_s
        self.debounce_scans = config.debounce_scans

    def refresh(self) -> None:
        with self._lock:
            for c, col in enumerate(self.cols):
                if col.function != "input":
                    continue
                low = any(
                    (r, c) in self._held and row.function == "output" and not row.state
                    for r, row in enumerate(self.rows)
                )
                if low:
                    col.drive_low()
                elif col.pull == "up":
                    col.drive_high()

    def hold(self, key: str) -> None:
        with self._lock:
            self._held = {(r, c) for r, keys in enumerate(LAYOUT) for c, k in enumerate(keys) if k == key}

    def release(self) -> None:
        with self._lock:
            self._held = set()

    def type(self, keys: str) -> None:
        """Press and release each key long enough for the debouncing scanner to see it."""
        hold_s = self.scan_interval_s * (self.debounce_scans + 3)
        for key in keys:
            self.hold(key)
            time.sleep(hold_s)
            self.release()
            time.sleep(hold_s)


class MockDoors:
    """Door and occupancy sensors of a bank on mock pins."""

    def __init__(self, factory: MockFactory, config: LockersConfig) -> None:
        self.factory = factory
        self.config = config

    def set_door(self, number: int, closed: bool) -> None:
        c = self.config.compartment(number)
        pin = self.factory.pin(c.door_pin)
        if closed == (c.door_closed_level == "high"):
            pin.drive_high()
        else:
            pin.drive_low()

    def close_all(self) -> None:
        for c in self.config.compartments:
            self.set_door(c.number, closed=True)

    def set_occupied(self, number: int, occupied: bool) -> None:
        c = self.config.compartment(number)
        if c.occupancy_pin is None:
            return
        pin = self.factory.pin(c.occupancy_pin)
        if occupied == c.occupancy_active_high:
            pin.drive_high()
        else:
            pin.drive_low()

    def lock_pin(self, number: int) -> Any:
        return self.factory.pin(self.config.compartment(number).lock_pin)


def prepare(factory: MockFactory, config: LockersConfig) -> tuple[MockDoors, KeyMatrix | None]:
    """Set up simulated wiring on ``factory`` before a ``LockerBank`` is built on it."""
    matrix = KeyMatrix(factory, config.keypad) if config.keypad is not None else None
    return MockDoors(factory, config), matrix


class ScriptedResident:
    """Uses codes on a bank running on mock pins: types the code, opens the door, closes it again.

    ``use`` does one code now; ``give`` queues a code for the background thread started by ``start``.
    """

    def __init__(
        self,
        bank: Any,
        doors: MockDoors,
        matrix: KeyMatrix | None = None,
        hold_open_s: float = 2.0,
        pause_s: float = 3.0,
    ) -> None:
        self.bank = bank
        self.doors = doors
        self.matrix = matrix
        self.hold_open_s = hold_open_s
        self.pause_s = pause_s
        self.outcomes: list[CodeOutcome] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def use(self, code: str) -> CodeOutcome | None:
        """Type ``code`` and, if a compartment opens, open and close its door; None if no code was read."""
        outcome: CodeOutcome | None
        if self.matrix is not None:
            seen: queue.Queue[CodeOutcome] = queue.Queue()
            self.bank.machine.listeners.append(seen.put)
            try:
                self.matrix.type(code + "#")
                outcome = seen.get(timeout=2.0)
            except queue.Empty:
                return None  # the keypad did not read the code (nothing was sent to the bank)
            finally:
                self.bank.machine.listeners.remove(seen.put)
        else:
            outcome = self.bank.enter_code(code)
        self.outcomes.append(outcome)
        if outcome.result == "opened" and outcome.compartment is not None:
            number = outcome.compartment
            self.doors.set_door(number, closed=False)
            self._wait(self.hold_open_s / 2)
            dropping = outcome.purpose is not None and outcome.purpose.value == "dropoff"
            self.doors.set_occupied(number, dropping)
            self._wait(self.hold_open_s / 2)
            self.doors.set_door(number, closed=True)
        return outcome

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def give(self, code: str) -> None:
        self._queue.put(code)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="scripted-resident", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                code = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                outcome = self.use(code)
                log.info("scripted resident used a code: %s", outcome)
            except Exception:
                log.exception("scripted resident failed")
            self._wait(self.pause_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
