"""The run-time side of a config push: restart, trial, confirmation or roll-back, each reported to the hub."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig
from edge_agent.deploy.config_update import RESTART_EXIT_CODE
from edge_agent.deploy.service import ServiceLifecycle
from edge_agent.events import MemorySink
from hub_protocol.commands import PushConfig
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import Channel
from tests.deploy.conftest import write_agent_config


def push_command(installed: Path, host: str, command_id: str = "push-1") -> PushConfig:
    now = datetime.now(UTC)
    return PushConfig(
        id=command_id,
        device="dev-a",
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        action="push-config",
        config_toml=installed.read_text().replace('host = "hub.example.org"', f'host = "{host}"'),
    )


def start(installed: Path, timeout: float = 60) -> tuple[ServiceLifecycle, AgentConfig]:
    lifecycle = ServiceLifecycle(installed, trial_timeout_s=timeout)
    return lifecycle, lifecycle.load_config()


def test_push_restart_and_confirm(tmp_path: Path) -> None:
    installed = write_agent_config(tmp_path, host="hub.example.org", port=8883)
    first, config = start(installed)
    handlers = first.handlers(lambda: config)
    assert not first.tick(healthy=True)
    assert first.exit_code == 0
    status, _ = handlers["push-config"](push_command(installed, "hub2.example.org"))
    assert status is ResultStatus.DONE
    assert first.tick(healthy=True) and first.exit_code == RESTART_EXIT_CODE

    second, config = start(installed)
    assert config.mqtt.host == "hub2.example.org"
    sink = MemorySink(device="dev-a")
    assert not second.tick(healthy=False, sink=sink)
    assert not second.tick(healthy=True, sink=sink)
    results = sink.of(Channel.RESULT)
    assert [(r.command_id, r.status) for r in results] == [("push-1", ResultStatus.DONE)]
    second.tick(healthy=True, sink=sink)
    assert len(sink.of(Channel.RESULT)) == 1  # confirmed once


def test_unhealthy_trial_is_rolled_back_and_reported(tmp_path: Path) -> None:
    installed = write_agent_config(tmp_path, host="hub.example.org", port=8883)
    first, config = start(installed)
    first.handlers(lambda: config)["push-config"](push_command(installed, "nowhere.example.org"))

    second, config = start(installed, timeout=0.2)
    assert config.mqtt.host == "nowhere.example.org"
    time.sleep(0.3)
    assert second.tick(healthy=False) and second.exit_code == RESTART_EXIT_CODE

    third, config = start(installed)
    assert config.mqtt.host == "hub.example.org"
    sink = MemorySink(device="dev-a")
    third.report(sink)
    (result,) = sink.of(Channel.RESULT)
    assert result.command_id == "push-1" and result.status is ResultStatus.FAILED
    assert "rolled back: not healthy within 0.2 s" in result.detail


def test_pushed_config_that_no_longer_loads_is_rolled_back_at_start(tmp_path: Path) -> None:
    installed = write_agent_config(tmp_path, host="hub.example.org", port=8883)
    first, config = start(installed)
    first.handlers(lambda: config)["push-config"](push_command(installed, "hub2.example.org"))
    # E.g. an update of the agent that no longer accepts a key the pushed file uses.
    pushed = first.store.pushed
    pushed.write_text(pushed.read_text().replace("port = 8883", "port = 8883\nunknown_key = 1"))

    second, config = start(installed)
    assert config.mqtt.host == "hub.example.org"
    assert second.decision is not None and second.decision.rolled_back is not None
    assert "it does not load: mqtt.unknown_key: Extra inputs are not permitted" in second.decision.rolled_back


def test_upgrade_notices_of_an_old_installed_file_appear_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = write_agent_config(tmp_path, host="hub.example.org", port=8883)
    installed.write_text(installed.read_text().replace("config_version = 1\n", "").replace("[mqtt]", "[broker]"))
    _lifecycle, config = start(installed)
    assert config.mqtt.host == "hub.example.org"
    assert capsys.readouterr().err.count("notice: config version 0 is upgraded") == 1
