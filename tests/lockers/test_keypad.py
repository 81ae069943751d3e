"""Matrix scanning on mock pins: debouncing, one key at a time, clear, enter and the entry timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.lockers.config import KeypadConfig
from edge_agent.lockers.keypad import Keypad
from edge_agent.lockers.sim import KeyMatrix
from tests.conftest import wait_for

CONFIG = KeypadConfig(rows=["GPIO12", "GPIO16", "GPIO20", "GPIO21"], cols=["GPIO23", "GPIO24", "GPIO25"])


class Rig:
    def __init__(self) -> None:
        self.factory = MockFactory()
        self.matrix = KeyMatrix(self.factory, CONFIG)
        self.codes: list[str] = []
        self.keys: list[str] = []
        self.now = 0.0
        self.keypad = Keypad(CONFIG, self.codes.append, self.keys.append, self.factory, monotonic=lambda: self.now)

    def press(self, key: str, scans: int = 3) -> None:
        self.matrix.hold(key)
        for _ in range(scans):
            self.keypad.scan_once()
        self.matrix.release()
        for _ in range(3):
            self.keypad.scan_once()

    def type(self, keys: str) -> None:
        for key in keys:
            self.press(key)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = Rig()
    yield made
    made.keypad.close()


def test_every_key_reads_right(rig: Rig) -> None:
    for key in "123456789*0#":
        rig.matrix.hold(key)
        assert rig.keypad.read_matrix() == key
    rig.matrix.release()
    assert rig.keypad.read_matrix() is None
    # Rows rest high between scans, so an idle matrix draws no current through a held key.
    assert all(pin.state for pin in rig.matrix.rows)


def test_code_is_sent_on_hash(rig: Rig) -> None:
    rig.type("482913#")
    assert rig.codes == ["482913"]
    assert rig.keys == list("482913#")


def test_a_bounce_shorter_than_the_debounce_is_ignored(rig: Rig) -> None:
    rig.press("5", scans=1)
    rig.type("#")
    assert rig.keys == ["#"] and rig.codes == []


def test_a_held_key_counts_once(rig: Rig) -> None:
    rig.press("7", scans=20)
    assert rig.keys == ["7"]


def test_two_keys_at_once_are_ignored(rig: Rig) -> None:
    rig.matrix._held = {(0, 0), (1, 1)}  # "1" and "5" together
    for _ in range(5):
        rig.keypad.scan_once()
    assert rig.keypad.read_matrix() is None and rig.keys == []


def test_star_clears_and_a_long_pause_forgets(rig: Rig) -> None:
    rig.type("99*123456#")
    assert rig.codes == ["123456"]
    rig.type("11")
    rig.now += CONFIG.entry_timeout_s + 1
    rig.keypad.scan_once()
    rig.type("654321#")
    assert rig.codes == ["123456", "654321"]


def test_a_failing_code_handler_does_not_end_the_scanning_thread() -> None:
    factory = MockFactory()
    matrix = KeyMatrix(factory, CONFIG)
    codes: list[str] = []

    def on_code(code: str) -> None:
        codes.append(code)
        if len(codes) == 1:
            raise OSError(28, "No space left on device")

    keypad = Keypad(CONFIG, on_code, None, factory)
    keypad.start()
    try:
        matrix.type("111111#")
        wait_for(lambda: len(codes) == 1, what="the first code")
        matrix.type("222222#")
        wait_for(lambda: len(codes) == 2, what="a code after the handler failed", timeout=10)
        assert codes == ["111111", "222222"]
    finally:
        keypad.close()


def test_typing_holds_each_key_until_a_stalled_scanner_has_read_it(rig: Rig) -> None:
    # A busy machine delays the scanning thread by hundreds of milliseconds at times. The simulated finger
    # used to let go after a fixed time, so a stalled scan lost the key and "482913" arrived as a wrong code.
    typed: list[BaseException] = []

    def type_code() -> None:
        try:
            rig.matrix.type("482913#", timeout_s=60)
        except BaseException as exc:
            typed.append(exc)

    typing = threading.Thread(target=type_code, daemon=True)
    typing.start()
    scans = 0
    while typing.is_alive() and scans < 2000:
        if scans % 3 == 0:
            time.sleep(0.15)  # a stall longer than the fixed press the simulation used to make
        rig.keypad.scan_once()
        scans += 1
        time.sleep(0.001)
    typing.join(5)
    assert not typing.is_alive() and typed == []
    assert rig.keys == list("482913#") and rig.codes == ["482913"]


def test_typing_without_a_scanning_keypad_fails_loudly(rig: Rig) -> None:
    with pytest.raises(TimeoutError, match="did not scan"):
        rig.matrix.type("1", timeout_s=0.2)
    assert rig.keys == []
