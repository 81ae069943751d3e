"""gpiozero devices of the locker bank, built from config on a pin factory passed in.

The locks come first: every lock output is claimed with ``initial_value=False`` before any other device or
any state is touched, so power-on never releases a lock, not even for a moment. gpiozero sets the pin's
function and level in one step (``output_with_state``), which avoids the blip an active-low relay would see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from gpiozero import LED, Buzzer, DigitalInputDevice, DigitalOutputDevice

from edge_agent.lockers.config import CompartmentConfig, LockersConfig

log = logging.getLogger(__name__)

Signal = Literal["key", "ok", "error", "lockout"]
DoorCallback = Callable[[int, bool], None]
"""Called with (compartment number, door closed) on every door sensor edge."""

_BEEPS: dict[Signal, tuple[float, float, int]] = {
    "key": (0.03, 0.0, 1),
    "ok": (0.08, 0.08, 2),
    "error": (0.6, 0.0, 1),
    "lockout": (1.5, 0.0, 1),
}


class _Compartment:
    def __init__(self, config: CompartmentConfig, lock: Any) -> None:
        self.config = config
        self.lock = lock
        self.door: Any = None
        self.occupancy: Any = None
        self.led: Any = None
        # Active means "pin at its active level"; which level that is depends on the pull wiring.
        self.closed_when_active = (config.door_closed_level == "low") == config.door_pull_up


class LockerHardware:
    """The bank's pins. ``pin_factory`` None means gpiozero's default (lgpio on a Pi, or $GPIOZERO_PIN_FACTORY)."""

    def __init__(self, config: LockersConfig, pin_factory: Any = None) -> None:
        self.config = config
        self._compartments: dict[int, _Compartment] = {}
        self.on_door: DoorCallback | None = None
        for c in config.compartments:  # locks first, de-energised, before anything else
            lock = DigitalOutputDevice(
                c.lock_pin, active_high=c.lock_active_high, initial_value=False, pin_factory=pin_factory
            )
            self._compartments[c.number] = _Compartment(c, lock)
        first = next(iter(self._compartments.values())).lock
        self.pin_factory: Any = first.pin_factory
        factory = self.pin_factory
        for comp in self._compartments.values():
            c = comp.config
            comp.door = DigitalInputDevice(c.door_pin, pull_up=c.door_pull_up, bounce_time=0.05, pin_factory=factory)
            number = c.number
            comp.door.when_activated = lambda n=number: self._door_edge(n)
            comp.door.when_deactivated = lambda n=number: self._door_edge(n)
            if c.occupancy_pin is not None:
                comp.occupancy = DigitalInputDevice(
                    c.occupancy_pin, pull_up=None, active_state=c.occupancy_active_high, pin_factory=factory
                )
            if c.led_pin is not None:
                comp.led = LED(c.led_pin, initial_value=False, pin_factory=factory)
        self.buzzer: Any = None
        if config.buzzer_pin is not None:
            self.buzzer = Buzzer(
                config.buzzer_pin, active_high=config.buzzer_active_high, initial_value=False, pin_factory=factory
            )

    def _door_edge(self, number: int) -> None:
        callback = self.on_door
        if callback is not None:
            callback(number, self.door_closed(number))

    def release(self, number: int, seconds: float) -> None:
        """Energise the lock for at most ``seconds`` (in the background), then de-energise it."""
        self._compartments[number].lock.blink(on_time=seconds, off_time=0, n=1, background=True)

    def relock(self, number: int) -> None:
        self._compartments[number].lock.off()

    def lock_energised(self, number: int) -> bool:
        return bool(self._compartments[number].lock.value)

    def door_closed(self, number: int) -> bool:
        comp = self._compartments[number]
        return bool(comp.door.is_active) == comp.closed_when_active

    def occupied(self, number: int) -> bool | None:
        sensor = self._compartments[number].occupancy
        return None if sensor is None else bool(sensor.is_active)

    def indicate(self, number: int, on: bool) -> None:
        led = self._compartments[number].led
        if led is None:
            return
        if on:
            led.blink(on_time=0.4, off_time=0.4, background=True)
        else:
            led.off()

    def signal(self, kind: Signal) -> None:
        if self.buzzer is None:
            return
        on_time, off_time, n = _BEEPS[kind]
        self.buzzer.beep(on_time=on_time, off_time=off_time, n=n, background=True)

    def close(self) -> None:
        """Release every pin; locks are switched off first and closed last."""
        for comp in self._compartments.values():
            comp.lock.off()
        devices: list[Any] = [self.buzzer]
        for comp in self._compartments.values():
            devices += [comp.led, comp.occupancy, comp.door]
        for device in devices:
            if device is not None:
                device.close()
        for comp in self._compartments.values():
            comp.lock.close()
