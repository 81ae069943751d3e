"""Config sections and the register entry built from them; active_until ends counting."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import load_agent_config
from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig, RegisterConfig
from edge_agent.privacy.register import build_register_entry, is_active
from edge_agent.privacy.reporter import LEDGER_FILE, FlowReporter
from hub_protocol.codec import decode, encode
from hub_protocol.flows import PolicyKind
from hub_protocol.topics import Channel
from hub_protocol.validation import ConfigError

BASE = """
[device]
id = "lamp-post-12"
site = "oosterpark-east"
state_dir = "{state}"

[mqtt]
password_file = "mqtt-password"
"""

SECTIONS = """
[privacy]
window_seconds = 900
policy = "dp"
epsilon = 0.5

[sensor_register]
purpose = "Measure how many people walk and cycle through the street, to plan pavements and bike racks"
organisation = "Cities of Things field lab"
contact = "sensors@example.org"
website = "https://example.org/sensors"
active_until = 2027-06-30
street = "Wibautstraat"
city = "Amsterdam"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(BASE.format(state=tmp_path / "state") + text)
    return path


def test_sections_are_optional_and_off_by_default(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, ""))
    assert config.privacy is None and config.sensor_register is None


def test_register_entry_is_built_from_the_config(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, SECTIONS))
    assert config.privacy is not None and config.sensor_register is not None
    entry = build_register_entry(config.device.id, config.device.site, config.sensor_register, config.privacy)
    assert entry.device == "lamp-post-12" and entry.site == "oosterpark-east"
    assert entry.location == "Wibautstraat, Amsterdam"
    assert entry.active_until == date(2027, 6, 30)
    assert entry.contact == "sensors@example.org" and entry.organisation == "Cities of Things field lab"
    assert entry.privacy is not None
    assert (entry.privacy.kind, entry.privacy.epsilon, entry.privacy.daily_budget) == (PolicyKind.DP, 0.5, 96.0)
    leaves = " ".join(entry.leaves_device)
    assert "15-minute window" in leaves and "epsilon 0.5 per crossing" in leaves
    # The guarantee in plain words: per window (per person), per day, and what it does not cover.
    assert "at most 2 crossings" in leaves and "1-differentially private for that person" in leaves
    assert "at most 96 per UTC day" in leaves and "track breaks into two" in leaves
    never = " ".join(entry.never_leaves)
    assert "images" in never and "track ids" in never and "times of individual crossings" in never
    # It travels as a retained message on the register channel: round-trip through the codec.
    assert decode(Channel.REGISTER, encode(entry)) == entry


def test_retention_is_left_to_the_hub_even_when_an_old_config_states_one(tmp_path: Path) -> None:
    """The device cannot know what the hub keeps: it sends no retention (the hub writes its own, tested in
    tests/web/test_public_truth.py); an older config that still has the free-text key loads."""
    old = SECTIONS + 'retention = "deleted after 1 day"\n'
    config = load_agent_config(write(tmp_path, old))
    assert config.privacy is not None and config.sensor_register is not None
    entry = build_register_entry(config.device.id, config.device.site, config.sensor_register, config.privacy)
    assert entry.retention is None
    assert "deleted after 1 day" not in encode(entry).decode()


@pytest.mark.parametrize(
    ("street", "ok"),
    [
        ("Wibautstraat", True),
        ("1e Jan Steenstraat", True),
        ("Wibautstraat 150", False),
        ("Wibautstraat 150-2", False),
        ("Wibautstraat 12a", False),
        ("Wibautstraat, 1091 GL", False),
    ],
)
def test_location_must_be_street_level(tmp_path: Path, street: str, ok: bool) -> None:
    path = write(tmp_path, SECTIONS.replace('"Wibautstraat"', f'"{street}"'))
    if ok:
        assert load_agent_config(path).sensor_register is not None
    else:
        with pytest.raises(ConfigError) as err:
            load_agent_config(path)
        assert any(p.startswith("sensor_register.street:") and "street name only" in p for p in err.value.problems)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        ("window_seconds = 900", "privacy.window_seconds", "divide 86400"),
        ("epsilon = 0.5", "privacy.epsilon", "greater than or equal to 0.01"),
        ('policy = "dp"', "privacy.policy", "Input should be"),
    ],
)
def test_bad_privacy_settings_name_the_key(tmp_path: Path, change: str, where: str, message: str) -> None:
    replacement = {
        "window_seconds = 900": "window_seconds = 700",
        "epsilon = 0.5": "epsilon = 0",
        'policy = "dp"': 'policy = "blur"',
    }[change]
    with pytest.raises(ConfigError) as err:
        load_agent_config(write(tmp_path, SECTIONS.replace(change, replacement)))
    assert any(p.startswith(f"{where}:") and message in p for p in err.value.problems), err.value.problems


def test_budget_smaller_than_one_window_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot pay even one window"):
        PrivacyConfig(policy=PolicyKind.DP, epsilon=2.0, daily_budget=1.0)


def register(active_until: date) -> RegisterConfig:
    return RegisterConfig(
        purpose="p", organisation="o", contact="a@b.c", active_until=active_until, street="Schieweg", city="Delft"
    )


def test_is_active_until_the_end_of_the_day() -> None:
    cfg = register(date(2026, 3, 2))
    assert cfg.is_active(date(2026, 3, 2)) and is_active(cfg, date(2026, 3, 1))
    assert not is_active(cfg, date(2026, 3, 3))
    assert is_active(None, date(2099, 1, 1))


def test_after_active_until_nothing_is_counted_or_sent(tmp_path: Path) -> None:
    sink = MemorySink()
    last_day = date(2026, 3, 2)
    start = datetime.combine(last_day, datetime.min.time()).astimezone() + timedelta(hours=23)  # local time
    reporter = FlowReporter(
        sink, PrivacyConfig(policy=PolicyKind.NONE), ["door"], tmp_path, active_until=last_day, now=start
    )
    reporter.add_crossing("door", "in", "pedestrian", start + timedelta(minutes=1))
    after = start + timedelta(hours=1, minutes=5)  # the next day
    reporter.add_crossing("door", "in", "pedestrian", after)
    reporter.note_frames(50, 0, 5.0, after)
    reporter.tick(start + timedelta(hours=3))
    windows = sink.of(Channel.FLOW)
    assert windows and all(w.window_start.astimezone().date() <= last_day for w in windows)
    assert sum(c.count or 0 for w in windows for c in w.cells) == 1
    assert not reporter.is_active(after)


def test_reporter_emits_protected_windows_and_keeps_the_budget_on_disk(tmp_path: Path) -> None:
    config = PrivacyConfig(policy=PolicyKind.DP, epsilon=1.0, max_crossings=1, daily_budget=3.0, window_seconds=60)
    t0 = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)
    sink = MemorySink()
    first = FlowReporter(sink, config, ["door"], tmp_path, now=t0, rng=random.Random(1))
    first.add_crossing("door", "in", "cyclist", t0)
    first.note_frames(300, 0, 30.0, t0 + timedelta(seconds=30))
    assert first.tick(t0 + timedelta(minutes=2, seconds=1)) == [1, 2]  # 10:00 and 10:01
    first.close()
    assert (tmp_path / LEDGER_FILE).exists()
    # A restart the same day continues the same budget: one window left, then counts are withheld.
    second = FlowReporter(sink, config, ["door"], tmp_path, now=t0 + timedelta(minutes=2), rng=random.Random(2))
    second.tick(t0 + timedelta(minutes=5))
    windows = sink.of(Channel.FLOW)
    assert [w.policy.spent_today for w in windows] == [1.0, 2.0, 3.0, 3.0, 3.0]
    assert [w.policy.budget_exhausted for w in windows] == [False, False, False, True, True]
    assert windows[0].quality.observed_fraction == pytest.approx(0.5)
    assert all(w.window_seconds == 60 and w.window_start.second == 0 for w in windows)


def test_default_budget_is_a_fixed_bound_that_shorter_windows_run_out(tmp_path: Path) -> None:
    """The default budget no longer grows with the number of windows: with 5-minute windows (three times as
    many as it was sized for) the day's 96 is spent by 08:00 and later windows carry no counts."""
    config = PrivacyConfig(window_seconds=300)
    assert (config.effective_budget, config.window_charge) == (96.0, 1.0)
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    sink = MemorySink()
    reporter = FlowReporter(sink, config, ["door"], tmp_path, now=t0, rng=random.Random(3))
    reporter.tick(t0 + timedelta(hours=9))
    windows = [w for w in sink.of(Channel.FLOW) if w.window_seconds == 300]
    paid = [w for w in windows if not w.policy.budget_exhausted]
    assert len(windows) == 108 and len(paid) == 96 and paid[-1].window_start.hour == 7
    assert all(c.count is None for w in windows[96:] for c in w.cells)
