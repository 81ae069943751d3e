"""``LockerBank``: the one object the agent creates for its lockers.

Construction claims the lock outputs (de-energised) before it opens any state, so create the bank as early
as possible at start-up. ``start`` recovers state, then starts the door callbacks, the keypad, the timer
thread and the kiosk page.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent.events import CommandHandler, EventSink
from edge_agent.lockers.clock import Clock, SystemClock
from edge_agent.lockers.config import LockersConfig
from edge_agent.lockers.handlers import locker_handlers
from edge_agent.lockers.hardware import LockerHardware
from edge_agent.lockers.keypad import Keypad
from edge_agent.lockers.machine import CodeOutcome, CompartmentView, LockerMachine
from edge_agent.lockers.store import LockerStore, read_history_since
from edge_agent.storage import StorageWatch, is_disk_full

log = logging.getLogger(__name__)

STATE_FILE = "lockers.sqlite3"


class LockerBank:
    def __init__(
        self,
        config: LockersConfig,
        sink: EventSink,
        state_dir: Path,
        pin_factory: Any = None,
        clock: Clock | None = None,
        run_kiosk: bool | None = None,
        watch: StorageWatch | None = None,
    ) -> None:
        self.hardware = LockerHardware(config, pin_factory)  # first: locks claimed and de-energised
        self.config = config
        for warning in config.boot_warnings():
            log.warning("%s", warning)
        self.clock: Clock = clock or SystemClock()
        self.store = LockerStore(state_dir / STATE_FILE, watch)
        self.machine = LockerMachine(config, self.store, self.hardware, sink, self.clock)
        self.keypad: Keypad | None = None
        if config.keypad is not None:
            self.keypad = Keypad(
                config.keypad, self.enter_code, lambda _key: self.hardware.signal("key"), self.hardware.pin_factory
            )
        wanted = config.kiosk.enabled and config.kiosk.port != 0
        self._run_kiosk = wanted if run_kiosk is None else run_kiosk
        self.kiosk: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._closed = False

    def start(self, tick_thread: bool = True) -> None:
        """Recover and start; ``tick_thread`` False leaves timers to explicit ``tick()`` calls (tests)."""
        self.machine.recover()
        self.hardware.on_door = self._door_edge
        if self.keypad is not None:
            self.keypad.start()
        if tick_thread:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick_loop, name="locker-timers", daemon=True)
            self._ticker.start()
        if self._run_kiosk:
            from edge_agent.lockers.kiosk.server import KioskServer

            kiosk = self.config.kiosk
            server = KioskServer(self, kiosk.host, kiosk.port, kiosk.language)
            try:
                server.start()
            except RuntimeError as exc:
                # The keypad and the hub's commands keep working without the touchscreen page.
                log.error("locker kiosk not available: %s", exc)
            else:
                self.kiosk = server

    def parts_running(self) -> bool:
        """The timer thread runs and the kiosk page, when configured, listens."""
        ticker_ok = self._ticker is not None and self._ticker.is_alive()
        return ticker_ok and (self.kiosk is not None or not self._run_kiosk)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.config.timing.tick_s):
            try:
                self.machine.tick()
            except Exception as exc:
                if not is_disk_full(exc):  # a full disk is reported once by the store's watch
                    log.exception("locker timer run failed; retrying at the next tick")

    def _door_edge(self, number: int, closed: bool) -> None:
        """gpiozero's callback: an error must not reach its thread; the timer's poll finds the edge again."""
        try:
            self.machine.on_door(number, closed)
        except Exception as exc:
            if not is_disk_full(exc):
                log.exception("door %d edge not recorded; the next poll retries", number)

    def tick(self) -> None:
        self.machine.tick()

    def stop(self) -> None:
        """Stop threads, de-energise every lock, release the pins and close the state file (once)."""
        if self._closed:
            return
        self._closed = True
        if self.kiosk is not None:
            self.kiosk.stop()
            self.kiosk = None
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        if self.keypad is not None:
            self.keypad.close()
        self.hardware.on_door = None
        self.hardware.close()
        self.store.close()

    def enter_code(self, code: str) -> CodeOutcome:
        return self.machine.enter_code(code)

    def handlers(self) -> dict[str, CommandHandler]:
        return locker_handlers(self.machine)

    def views(self) -> list[CompartmentView]:
        return self.machine.views()

    def view(self, number: int) -> CompartmentView | None:
        return self.machine.view(number)

    def history_since(self, number: int, since: datetime) -> list[dict[str, Any]]:
        """Recorded locker events of one compartment from ``since`` on (oldest first); blocking I/O on a
        connection of its own, so call it off an event loop."""
        return read_history_since(self.store.path, number, since)

    def now(self) -> datetime:
        return self.clock.now()
