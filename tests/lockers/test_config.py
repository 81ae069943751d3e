"""Locker wiring config: pin names, pins used twice, and the agent config section."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import AgentConfig
from edge_agent.lockers.config import LockersConfig, normalise_pin
from hub_protocol.commands import CodeHash
from hub_protocol.lockers import hash_code
from hub_protocol.validation import ConfigError, validate_data
from tests.lockers.conftest import CONFIG

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lockers.md"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("GPIO17", "GPIO17"), ("bcm17", "GPIO17"), ("BOARD11", "GPIO17"), (17, "GPIO17"), ("4", "GPIO4")],
)
def test_pin_spellings(given: Any, expected: str) -> None:
    assert normalise_pin(given) == expected


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_data(LockersConfig, data, "lockers.toml")
    return caught.value.problems


def test_pin_used_twice_names_both_keys() -> None:
    data = {**CONFIG, "buzzer_pin": "BOARD11"}  # GPIO17 is compartment 1's lock
    assert problems(data) == [
        "(top level): Value error, buzzer_pin: pin GPIO17 is already used by compartments[0].lock_pin"
    ]


@pytest.mark.parametrize(
    ("pin", "fragment"),
    [("GPIO40", "out of range"), ("PIN7", "unknown pin name 'PIN7'"), ("BOARD1", "not a GPIO"), (True, "not a pin")],
)
def test_unknown_pin_names_are_refused(pin: Any, fragment: str) -> None:
    compartments = [dict(CONFIG["compartments"][0], door_pin=pin), CONFIG["compartments"][1]]
    found = problems({**CONFIG, "compartments": compartments})
    assert len(found) == 1 and found[0].startswith("compartments[0].door_pin: ") and fragment in found[0]


def test_duplicate_compartment_numbers_are_refused() -> None:
    compartments = [CONFIG["compartments"][0], dict(CONFIG["compartments"][1], number=1)]
    assert "compartment 1 is listed twice" in problems({**CONFIG, "compartments": compartments})[0]


def test_agent_config_has_an_optional_lockers_section() -> None:
    base = {"device": {"id": "hub-1", "site": "s"}, "mqtt": {"password_file": "pw"}}
    assert AgentConfig.model_validate(base).lockers is None
    agent = AgentConfig.model_validate({**base, "lockers": CONFIG})
    assert agent.lockers is not None and agent.lockers.compartments[1].lock_pin == "GPIO5"


def test_hash_format_matches_the_documented_vector() -> None:
    salt = bytes(range(16))
    expected = hashlib.sha256(salt + b"12345678").hexdigest()
    assert hash_code(salt, "12345678") == expected
    # docs/lockers.md states the same vector, so the hub side can check its own code against it.
    text = DOCS.read_text(encoding="utf-8")
    assert salt.hex() in text and expected in text


def test_code_hash_never_holds_the_digits() -> None:
    from datetime import UTC, datetime

    code = CodeHash.for_code("48291305", datetime(2030, 1, 1, tzinfo=UTC))
    dumped = code.model_dump_json()
    assert "48291305" not in dumped
    assert code.sha256 == hash_code(bytes.fromhex(code.salt), "48291305")
    with pytest.raises(ValueError, match="6 to 12 digits"):
        CodeHash.for_code("12345", datetime(2030, 1, 1, tzinfo=UTC))


def test_documented_example_config_is_valid() -> None:
    import re
    import tomllib

    block = re.search(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block is not None
    config = LockersConfig.model_validate(tomllib.loads(block.group(1))["lockers"])
    assert [c.lock_pin for c in config.compartments] == ["GPIO17", "GPIO5"]


def test_lock_pins_pulled_to_their_active_level_at_boot_are_warned() -> None:
    assert LockersConfig.model_validate(CONFIG).boot_warnings() == []
    risky = [dict(CONFIG["compartments"][0], lock_pin="GPIO4"), dict(CONFIG["compartments"][1], lock_pin="GPIO26")]
    warnings = LockersConfig.model_validate({**CONFIG, "compartments": risky}).boot_warnings()
    assert len(warnings) == 2
    assert warnings[0].startswith("compartments[0].lock_pin: GPIO4 is pulled up while the Pi boots")
    assert "use GPIO0-GPIO8" in warnings[1]
