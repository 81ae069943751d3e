"""Old config layouts load with a notice; the current layout loads untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import CONFIG_VERSION, load_agent_config
from edge_agent.deploy.migrate import LATEST, _line_v0_to_v1, detect_version, migrate_config
from hub_protocol.validation import ConfigError

V0 = """
[device]
id = "lamp-post-7"
site = "old-street"

[broker]
host = "hub.example.org"
port = 8883
user = "lamp-post-7"
password_file = "/etc/edge-agent/mqtt-password"
ca = "/etc/edge-agent/ca.pem"
keepalive = 45
"""


def test_steps_lead_to_the_current_version() -> None:
    assert LATEST == CONFIG_VERSION


def test_version_0_file_loads_with_notices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(V0)
    config = load_agent_config(path)
    assert config.config_version == CONFIG_VERSION
    assert config.mqtt.host == "hub.example.org"
    assert config.mqtt.username == "lamp-post-7"
    assert config.mqtt.ca_file == Path("/etc/edge-agent/ca.pem")
    assert config.mqtt.keepalive_s == 45
    err = capsys.readouterr().err
    assert f"{path}: notice: config version 0 is upgraded" in err
    assert "[broker] is now [mqtt] (ca -> ca_file, keepalive -> keepalive_s, user -> username)" in err


def test_current_layout_is_untouched(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "configs" / "agent.example.toml"
    load_agent_config(example)
    assert capsys.readouterr().err == ""
    data = {"config_version": 1, "mqtt": {"host": "x"}}
    assert migrate_config(data) == (data, [])


def test_migration_does_not_change_its_input() -> None:
    data = {"broker": {"host": "h", "password_file": "p"}, "device": {"id": "a", "site": "b"}}
    migrated, notices = migrate_config(data)
    assert "broker" in data and "mqtt" not in data
    assert migrated["mqtt"] == {"host": "h", "password_file": "p"}
    assert migrated["config_version"] == 1
    assert notices


def test_old_lines_become_tables() -> None:
    data = {
        "broker": {"host": "h", "password_file": "p"},
        "counting": {"lines": ["h-mid=0,288,768,288", {"name": "diag", "points": "160, 96.5, 672, 528"}]},
    }
    migrated, notices = migrate_config(data)
    assert migrated["counting"]["lines"] == [
        {"name": "h-mid", "points": [0, 288, 768, 288]},
        {"name": "diag", "points": [160, 96.5, 672, 528]},
    ]
    assert any("counting lines" in n for n in notices)
    # Garbage stays as it is so that validation reports it at its key path.
    assert _line_v0_to_v1("a=1,b,3,4") == {"name": "a", "points": "1,b,3,4"}


def test_version_detection() -> None:
    assert detect_version({"config_version": 1}) == 1
    assert detect_version({"broker": {}}) == 0
    assert detect_version({"config_version": 0, "mqtt": {}}) == 0
    assert detect_version({"mqtt": {}}) is None
    assert detect_version({"config_version": "1"}) is None


def test_old_file_with_errors_names_current_keys(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(V0.replace("port = 8883", "port = 99999"))
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    assert any(p.startswith("mqtt.port:") for p in info.value.problems)


def test_too_new_version_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    current = V0.replace("[broker]", "[mqtt]").replace("user =", "username =").replace("ca =", "ca_file =")
    path.write_text(f"config_version = {CONFIG_VERSION + 1}\n" + current.replace("keepalive =", "keepalive_s ="))
    with pytest.raises(ConfigError) as info:
        load_agent_config(path)
    assert any(p.startswith("config_version:") for p in info.value.problems)
