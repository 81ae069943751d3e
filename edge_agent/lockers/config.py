"""The ``[lockers]`` config section: wiring of every compartment, the keypad and buzzer, timings and policy.

Pins are written as gpiozero names (``GPIO17``, ``BCM17``, ``BOARD11``) or plain BCM numbers. They are
normalised to ``GPIOn`` so that one pin written two ways is still caught as used twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from hub_protocol.lockers import CompartmentSize
from hub_protocol.validation import StrictModel

# Physical pin -> BCM number on the 40-pin header (only the pins that are GPIOs).
BOARD_TO_BCM = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25,
    23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}  # fmt: skip
PULLED_UP_AT_BOOT = frozenset(f"GPIO{n}" for n in range(9))
"""The SoC pulls GPIO0-8 up and GPIO9-27 down from power-on until software claims the pin."""
PIN_FORMS = "GPIO0..GPIO27, BCM0..BCM27, BOARD<physical pin of a GPIO> or a BCM number 0..27"


def normalise_pin(value: Any) -> str:
    """``GPIOn`` for any accepted spelling; ValueError naming the accepted forms otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"pin {value!r} is not a pin name; use {PIN_FORMS}")
    if isinstance(value, int):
        bcm = value
    elif isinstance(value, str):
        text = value.strip().upper()
        number: int | None = None
        for prefix in ("GPIO", "BCM", "BOARD", ""):
            rest = text.removeprefix(prefix) if prefix else text
            if (prefix == "" or text.startswith(prefix)) and rest.isdigit():
                number = int(rest)
                break
        if number is None:
            raise ValueError(f"unknown pin name {value!r}; use {PIN_FORMS}")
        if text.startswith("BOARD"):
            if number not in BOARD_TO_BCM:
                raise ValueError(f"physical pin {value!r} is not a GPIO (power, ground or out of range)")
            bcm = BOARD_TO_BCM[number]
        else:
            bcm = number
    else:
        raise ValueError(f"pin must be a name or number; use {PIN_FORMS}")
    if not 0 <= bcm <= 27:
        raise ValueError(f"pin {value!r} is out of range; use {PIN_FORMS}")
    return f"GPIO{bcm}"


Pin = Annotated[str, BeforeValidator(normalise_pin)]


class CompartmentConfig(StrictModel):
    number: int = Field(ge=1, le=999, description="Number on the door, 1-based, unique in the bank")
    size: CompartmentSize = Field(default=CompartmentSize.M, description="S, M or L")
    accessible: bool = Field(default=False, description="Within easy reach (wheelchair height)")
    lock_pin: Pin = Field(description="Output driving the lock relay or solenoid")
    lock_active_high: bool = Field(default=True, description="True when a high level releases the lock")
    pulse_s: float = Field(default=1.0, gt=0, le=30, description="Longest time the lock is energised per open")
    door_pin: Pin = Field(description="Door sensor input (reed switch)")
    door_pull_up: bool = Field(default=True, description="Use the internal pull-up (switch to ground)")
    door_closed_level: Literal["low", "high"] = Field(default="low", description="Pin level when the door is closed")
    occupancy_pin: Pin | None = Field(default=None, description="Optional occupancy sensor (active = something inside)")
    occupancy_active_high: bool = Field(default=True, description="True when a high level means something inside")
    led_pin: Pin | None = Field(default=None, description="Optional LED that blinks at the compartment to use")


class KeypadConfig(StrictModel):
    rows: list[Pin] = Field(min_length=4, max_length=4, description="Row pins, top to bottom (driven low in turn)")
    cols: list[Pin] = Field(min_length=3, max_length=3, description="Column pins, left to right (pulled up)")
    scan_interval_s: float = Field(default=0.02, ge=0.005, le=0.2, description="Time between two matrix scans")
    debounce_scans: int = Field(default=2, ge=1, le=10, description="Scans a key must read the same to count")
    entry_timeout_s: float = Field(default=20, ge=3, le=120, description="Typed digits are dropped after this pause")


class TimingConfig(StrictModel):
    door_left_open_s: float = Field(default=120, ge=5, le=86_400, description="Door open longer raises an alarm")
    open_not_opened_s: float = Field(
        default=20, ge=2, le=600, description="Door not opened this long after an open: re-lock and report"
    )
    sensor_fault_days: float = Field(
        default=14, gt=0, le=365, description="A door sensor unchanged this long despite opens is reported faulty"
    )
    sensor_fault_opens: int = Field(
        default=3, ge=1, le=100, description="Opens in a row without any door change that mark the sensor faulty"
    )
    tick_s: float = Field(default=0.25, ge=0.01, le=5, description="How often timers are checked")
    history_days: float = Field(
        default=7, ge=1, le=365, description="Door and state history kept on the device (the hub keeps it longer)"
    )


class LockoutPolicy(StrictModel):
    max_attempts: int = Field(default=5, ge=3, le=10, description="Wrong codes in a row before the keypad locks")
    base_delay_s: float = Field(default=30, ge=1, le=3600, description="First lockout")
    factor: float = Field(default=2, ge=1, le=10, description="Each further lockout lasts this much longer")
    max_delay_s: float = Field(default=900, ge=1, le=86_400, description="Longest lockout")
    reset_after_s: float = Field(
        default=3600, ge=60, le=7 * 86_400, description="Quiet time after which wrong codes are forgotten"
    )
    guessing_alarm_codes: int = Field(
        default=12,
        ge=3,
        le=1000,
        description="Wrong codes within guessing_window_s that raise a code-guessing alarm, lockouts or not",
    )
    guessing_window_s: float = Field(
        default=6 * 3600, ge=600, le=7 * 86_400, description="Window over which slow code guessing is counted"
    )

    @model_validator(mode="after")
    def _bounds(self) -> LockoutPolicy:
        if self.max_delay_s < self.base_delay_s:
            raise ValueError("max_delay_s must be at least base_delay_s")
        return self


class KioskConfig(StrictModel):
    enabled: bool = Field(default=True, description="Serve the touchscreen page")
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253, description="Bind address (localhost)")
    port: int = Field(default=8088, ge=0, le=65535, description="TCP port (0: do not serve)")
    language: Literal["nl", "de", "en"] = Field(default="nl", description="Language shown first")


class LockersConfig(StrictModel):
    compartments: list[CompartmentConfig] = Field(min_length=1, max_length=999, description="The compartments")
    keypad: KeypadConfig | None = Field(default=None, description="3x4 matrix keypad, if fitted")
    buzzer_pin: Pin | None = Field(default=None, description="Buzzer for key clicks and outcomes, if fitted")
    buzzer_active_high: bool = Field(default=True, description="True when a high level sounds the buzzer")
    timing: TimingConfig = Field(default_factory=TimingConfig, description="Alarm and timer settings")
    lockout: LockoutPolicy = Field(default_factory=LockoutPolicy, description="Brute-force protection")
    kiosk: KioskConfig = Field(default_factory=KioskConfig, description="Local touchscreen page")

    @model_validator(mode="after")
    def _unique(self) -> LockersConfig:
        numbers: set[int] = set()
        for index, compartment in enumerate(self.compartments):
            if compartment.number in numbers:
                raise ValueError(f"compartments[{index}].number: compartment {compartment.number} is listed twice")
            numbers.add(compartment.number)
        used: dict[str, str] = {}
        for key, pin in self.pin_keys():
            if pin in used:
                raise ValueError(f"{key}: pin {pin} is already used by {used[pin]}")
            used[pin] = key
        return self

    def pin_keys(self) -> list[tuple[str, str]]:
        """Every configured pin with the config key that sets it, in wiring order."""
        keys: list[tuple[str, str]] = []
        for index, c in enumerate(self.compartments):
            base = f"compartments[{index}]"
            keys += [(f"{base}.lock_pin", c.lock_pin), (f"{base}.door_pin", c.door_pin)]
            if c.occupancy_pin is not None:
                keys.append((f"{base}.occupancy_pin", c.occupancy_pin))
            if c.led_pin is not None:
                keys.append((f"{base}.led_pin", c.led_pin))
        if self.keypad is not None:
            keys += [(f"keypad.rows[{i}]", p) for i, p in enumerate(self.keypad.rows)]
            keys += [(f"keypad.cols[{i}]", p) for i, p in enumerate(self.keypad.cols)]
        if self.buzzer_pin is not None:
            keys.append(("buzzer_pin", self.buzzer_pin))
        return keys

    def boot_warnings(self) -> list[str]:
        """Lock pins whose power-on pull is the lock's active level: the lock may open while the Pi boots."""
        warnings = []
        for index, c in enumerate(self.compartments):
            pulled_up = c.lock_pin in PULLED_UP_AT_BOOT
            if pulled_up == c.lock_active_high:
                level = "up" if pulled_up else "down"
                better = "GPIO9-GPIO27" if c.lock_active_high else "GPIO0-GPIO8"
                warnings.append(
                    f"compartments[{index}].lock_pin: {c.lock_pin} is pulled {level} while the Pi boots, which is the "
                    f"lock's active level; use {better}, or fit an external resistor that holds the relay off"
                )
        return warnings

    def compartment(self, number: int) -> CompartmentConfig:
        for compartment in self.compartments:
            if compartment.number == number:
                return compartment
        raise KeyError(number)
