"""Pushed configs are validated, tried, confirmed or rolled back; the installed file is never written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, load_agent_config
from edge_agent.deploy.config_update import ConfigCommands, ConfigStore, TrialOutcome
from hub_protocol.commands import PushConfig, ReloadConfig
from hub_protocol.envelope import ResultStatus
from tests.deploy.conftest import write_agent_config


class Agent:
    """What the handlers see of the agent: its config and a restart request."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.restarts: list[str] = []

    def request_restart(self, reason: str) -> None:
        self.restarts.append(reason)


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    return write_agent_config(tmp_path / "etc", host="hub.example.org", port=8883)


def make(installed: Path, timeout: float = 60) -> tuple[ConfigStore, Agent, ConfigCommands]:
    store = ConfigStore.for_installed(installed, trial_timeout_s=timeout)
    agent = Agent(load_agent_config(store.begin_start().config_path))
    return store, agent, ConfigCommands(store, lambda: agent.config, agent.request_restart)


def push(toml: str, command_id: str = "cmd-1") -> PushConfig:
    now = datetime.now(UTC)
    return PushConfig(
        id=command_id,
        device="dev-a",
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        action="push-config",
        config_toml=toml,
    )


def reload_command() -> ReloadConfig:
    now = datetime.now(UTC)
    return ReloadConfig(
        id="r-1", device="dev-a", issued_at=now, expires_at=now + timedelta(minutes=5), action="reload-config"
    )


def with_host(installed: Path, host: str) -> str:
    return installed.read_text().replace('host = "hub.example.org"', f'host = "{host}"')


def test_push_then_healthy_start_keeps_the_new_config(installed: Path) -> None:
    original = installed.read_bytes()
    store, agent, commands = make(installed)
    status, detail = commands.handlers()["push-config"](push(with_host(installed, "hub2.example.org")))
    assert status is ResultStatus.DONE and "restarting" in detail
    assert agent.restarts == ["push-config cmd-1"]
    assert installed.read_bytes() == original  # the technician's file stays as installed
    # The restart: the next start loads the pushed file on trial.
    decision = store.begin_start()
    assert decision.trial and decision.config_path == store.pushed
    assert load_agent_config(decision.config_path).mqtt.host == "hub2.example.org"
    assert store.settle(healthy=False, uptime_s=5) is TrialOutcome.NONE
    assert store.settle(healthy=True, uptime_s=6) is TrialOutcome.CONFIRMED
    after = store.begin_start()
    assert not after.trial and after.rolled_back is None
    assert load_agent_config(after.config_path).mqtt.host == "hub2.example.org"


def test_crash_during_trial_rolls_back_at_the_next_start(installed: Path) -> None:
    store, _agent, commands = make(installed)
    commands.push(push(with_host(installed, "unreachable.example.org")))
    assert store.begin_start().trial  # first start with the new config ... which dies before it is healthy
    decision = store.begin_start()
    assert not decision.trial
    assert decision.config_path == installed
    assert decision.rolled_back is not None and "cmd-1 rolled back" in decision.rolled_back
    assert "stopped before it became healthy" in decision.rolled_back
    assert store.begin_start().rolled_back is None  # reported once


def test_not_healthy_in_time_rolls_back(installed: Path) -> None:
    store, _agent, commands = make(installed, timeout=30)
    commands.push(push(with_host(installed, "unreachable.example.org")))
    assert store.begin_start().trial
    assert store.settle(healthy=False, uptime_s=29) is TrialOutcome.NONE
    assert store.settle(healthy=False, uptime_s=31) is TrialOutcome.ROLLED_BACK
    decision = store.begin_start()
    assert decision.config_path == installed and "not healthy within 30 s" in (decision.rolled_back or "")


def test_roll_back_returns_to_the_previous_pushed_config(installed: Path) -> None:
    store, agent, commands = make(installed)
    commands.push(push(with_host(installed, "first.example.org"), "cmd-1"))
    store.begin_start()
    store.settle(healthy=True, uptime_s=1)
    agent.config = load_agent_config(store.active_path())
    status, _ = commands.push(push(with_host(installed, "second.example.org"), "cmd-2"))
    assert status is ResultStatus.DONE
    store.begin_start()
    assert store.settle(healthy=False, uptime_s=999) is TrialOutcome.ROLLED_BACK
    decision = store.begin_start()
    assert load_agent_config(decision.config_path).mqtt.host == "first.example.org"


def test_invalid_push_changes_nothing(installed: Path) -> None:
    store, agent, commands = make(installed)
    status, detail = commands.push(push(with_host(installed, "hub.example.org").replace("port = 8883", "port = 0")))
    assert status is ResultStatus.REFUSED_INVALID
    assert "mqtt.port: Input should be greater than or equal to 1" in detail
    status, detail = commands.push(push("this is [not toml"))
    assert status is ResultStatus.REFUSED_INVALID and "not valid TOML" in detail
    assert agent.restarts == [] and not store.pushed.exists() and not store.in_trial()


def test_push_may_not_change_the_identity(installed: Path) -> None:
    _store, agent, commands = make(installed)
    status, detail = commands.push(push(installed.read_text().replace('id = "dev-a"', 'id = "dev-b"')))
    assert status is ResultStatus.REFUSED_INVALID
    assert "device.id: a pushed config may not change it" in detail and agent.restarts == []


def test_one_trial_at_a_time(installed: Path) -> None:
    _store, _agent, commands = make(installed)
    assert commands.push(push(with_host(installed, "a.example.org"), "cmd-1"))[0] is ResultStatus.DONE
    status, detail = commands.push(push(with_host(installed, "b.example.org"), "cmd-2"))
    assert status is ResultStatus.FAILED and "still on trial" in detail


def test_old_layout_push_is_upgraded_with_a_notice(installed: Path) -> None:
    store, _agent, commands = make(installed)
    old = installed.read_text().replace("[mqtt]", "[broker]").replace("config_version = 1\n", "")
    status, detail = commands.push(push(old))
    assert status is ResultStatus.DONE and "upgraded" in detail and "[broker] is now [mqtt]" in detail
    assert load_agent_config(store.begin_start().config_path).mqtt.host == "hub.example.org"


def test_reload_validates_before_restarting(installed: Path) -> None:
    store, agent, commands = make(installed)
    status, _ = commands.handlers()["reload-config"](reload_command())
    assert status is ResultStatus.DONE and agent.restarts == ["reload-config r-1"]
    installed.write_text(installed.read_text().replace("port = 8883", "port = -1"))
    status, detail = commands.reload(reload_command())
    assert status is ResultStatus.REFUSED_INVALID and "keeping the running config" in detail
    assert len(agent.restarts) == 1
    assert store.active_path() == installed


def test_reset_forgets_pushed_configs(installed: Path) -> None:
    store, _agent, commands = make(installed)
    commands.push(push(with_host(installed, "a.example.org")))
    store.reset()
    assert store.active_path() == installed and not store.in_trial()
