"""A 3x4 matrix keypad scanned through gpiozero.

Rows are outputs, idle high; columns are inputs with pull-ups. A scan drives one row low at a time and
reads the columns: a pressed key connects its row to its column, so that column reads low. A key counts
once it read pressed in ``debounce_scans`` scans in a row, and again only after it was released. Two keys at
once are ignored (a matrix without diodes cannot tell them apart reliably).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from edge_agent.lockers.config import KeypadConfig

log = logging.getLogger(__name__)

LAYOUT = (("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"), ("*", "0", "#"))
"""Keys by (row, column) as printed on the common 3x4 membrane keypads."""

MAX_DIGITS = 12


class Keypad:
    def __init__(
        self,
        config: KeypadConfig,
        on_code: Callable[[str], object],
        on_key: Callable[[str], None] | None = None,
        pin_factory: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._on_code = on_code
        self._on_key = on_key
        self._monotonic = monotonic
        # active_high=False: "on" pulls the row low, initial_value=False keeps every row high (idle).
        self.rows = [
            DigitalOutputDevice(p, active_high=False, initial_value=False, pin_factory=pin_factory) for p in config.rows
        ]
        self.cols = [DigitalInputDevice(p, pull_up=True, pin_factory=pin_factory) for p in config.cols]
        self._candidate: str | None = None
        self._seen = 0
        self._held: str | None = None
        self._buffer = ""
        self._last_key_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read_matrix(self) -> str | None:
        """The one key pressed now, or None (no key, or several)."""
        pressed: list[str] = []
        for r, row in enumerate(self.rows):
            row.on()
            try:
                pressed += [LAYOUT[r][c] for c, col in enumerate(self.cols) if col.is_active]
            finally:
                row.off()
        return pressed[0] if len(pressed) == 1 else None

    def scan_once(self) -> None:
        key = self.read_matrix()
        if key != self._candidate:
            self._candidate, self._seen = key, 1
        else:
            self._seen += 1
        if self._seen < self.config.debounce_scans:
            return
        if key != self._held:
            self._held = key
            if key is not None:
                self._pressed(key)
        if self._buffer and self._monotonic() - self._last_key_at > self.config.entry_timeout_s:
            self._buffer = ""  # a half-typed code left behind must not prefix the next person's code

    def _pressed(self, key: str) -> None:
        self._last_key_at = self._monotonic()
        if self._on_key is not None:
            self._on_key(key)
        if key == "*":
            self._buffer = ""
        elif key == "#":
            code, self._buffer = self._buffer, ""
            if code:
                self._on_code(code)
        elif len(self._buffer) < MAX_DIGITS:
            self._buffer += key

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="keypad", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.scan_interval_s):
            try:
                self.scan_once()
            except Exception:
                # One failed code check (its storage refused a write) must not end scanning for good.
                log.exception("keypad scan failed; scanning goes on")
                self._buffer = ""

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close(self) -> None:
        self.stop()
        for device in [*self.rows, *self.cols]:
            device.close()
