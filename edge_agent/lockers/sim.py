"""Simulated residents and wiring on gpiozero's MockFactory: for tests and the demo, never for the field.

``KeyMatrix`` models the keypad's switches: when a row pin is driven low and a key on that row is held,
the key's column pin reads low. ``MockDoors`` moves door and occupancy pins like magnets and parcels would.
``ScriptedResident`` types codes and opens and closes doors, so a demo shows real locker activity.
"""

from __future__ import annotations

import logging
import queue
import threading
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
            self.matrix.row_changed(self, value)
        return changed


class KeyMatrix:
    """Create before the keypad claims its pins (``prepare`` does it for a whole config).

    ``type`` presses like a finger that stays down until the keypad has scanned the key: it watches the row
    pins the scanner drives and counts whole scans, so a scanner slowed down by a busy machine reads every
    key instead of missing presses of a fixed length.
    """

    def __init__(self, factory: MockFactory, config: KeypadConfig) -> None:
        self._held: set[tuple[int, int]] = set()
        self._lock = threading.RLock()
        self._scanned = threading.Condition(self._lock)
        self._clean_scans = 0
        self._scan_clean = False
        self.rows: list[MatrixRowPin] = []
        self.cols: list[MockPin] = []
        self.rows = [factory.pin(p, pin_class=MatrixRowPin, matrix=self) for p in config.rows]
        self.cols = [factory.pin(p) for p in config.cols]
        self.debounce_scans = config.debounce_scans

    def row_changed(self, row: MatrixRowPin, high: bool) -> None:
        with self._lock:
            self.refresh()
            if not self.rows:
                return
            # The scanner drives the rows low one after the other, top to bottom. A scan that began after the
            # last press or release read the matrix as it is now from its first row to its last.
            if row is self.rows[0] and not high:
                self._scan_clean = True
            elif row is self.rows[-1] and high and self._scan_clean:
                self._scan_clean = False
                self._clean_scans += 1
                self._scanned.notify_all()

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

    def _set(self, held: set[tuple[int, int]]) -> None:
        with self._lock:
            self._held = held
            self._clean_scans = 0
            self._scan_clean = False  # a scan under way read part of the matrix before the change

    def hold(self, key: str) -> None:
        self._set({(r, c) for r, keys in enumerate(LAYOUT) for c, k in enumerate(keys) if k == key})

    def release(self) -> None:
        self._set(set())

    def wait_scans(self, count: int, timeout_s: float) -> None:
        """Block until the keypad has scanned the matrix ``count`` times since the last press or release."""
        with self._lock:
            if not self._scanned.wait_for(lambda: self._clean_scans >= count, timeout_s):
                raise TimeoutError(f"the keypad did not scan the matrix {count} times within {timeout_s:g} s")

    def type(self, keys: str, timeout_s: float = 30.0) -> None:
        """Press and release each key, each for as many scans as the debouncing scanner needs to see it.

        ``timeout_s`` bounds the wait per press or release; the scanner is busy while it checks a code (the
        release after ``#``), which takes longer on a slow or full disk. TimeoutError if it never scans."""
        for key in keys:
            self.hold(key)
            self.wait_scans(self.debounce_scans, timeout_s)
            self.release()
            self.wait_scans(self.debounce_scans, timeout_s)


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
