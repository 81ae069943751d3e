"""``edge-agent setup`` and ``edge-agent validate`` against a running agent, and the hub's ``open-setup``."""

from __future__ import annotations

import io
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from edge_agent.cli import main
from edge_agent.setup.access import Access, read_grant
from edge_agent.setup.config import SetupConfig
from hub_protocol import tomlwrite
from hub_protocol.commands import OpenSetup, command_header, new_setup_code, setup_code_hash
from hub_protocol.envelope import ResultStatus
from hub_server.fleet.broker import free_port
from tests.conftest import BrokerSetup, agent_config, wait_for

COUNTING = {
    "source": "synthetic",
    "fps": 30,
    "lines": [{"name": "entrance", "points": [320, 0, 320, 480]}],
}


def started_agent(broker: BrokerSetup, folder: Path) -> tuple[Agent, Path]:
    config = agent_config(
        broker,
        "dev-a",
        folder,
        counting=COUNTING,
        privacy={"policy": "none", "window_seconds": 60},
    )
    # (``agent_config``'s first parameter is called setup too)
    config.setup = SetupConfig(host="127.0.0.1", port=free_port(), background_frames=50)
    path = folder / "agent.toml"
    path.write_text(tomlwrite.dumps(config.model_dump(mode="json")))
    agent = Agent(config)
    agent.start()
    return agent, path


def tick_until(agent: Agent, condition: Any, what: str) -> None:
    def ticked() -> Any:
        agent.tick(datetime.now(UTC))
        return condition()

    wait_for(ticked, timeout=20, what=what, interval=0.2)


def test_setup_command_opens_and_closes_the_page(
    broker: BrokerSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent, path = started_agent(broker, tmp_path)
    try:
        assert agent.setup is not None and agent.setup.server is None, "off unless opened"
        assert main(["setup", "--config", str(path), "--for", "30m"]) == 0
        out = capsys.readouterr().out
        code = re.search(r"one-time code: (\S+)", out)
        assert code and f":{agent.config.setup.port}/setup" in out
        tick_until(agent, lambda: agent.setup is not None and agent.setup.server is not None, "the page to open")
        assert Access(Path(agent.config.device.state_dir)).login(code.group(1)) is not None
        assert main(["setup", "--config", str(path), "--close"]) == 0
        tick_until(agent, lambda: agent.setup is not None and agent.setup.server is None, "the page to close")
        assert main(["setup", "--config", str(path), "--for", "9h"]) == 1
        assert "1 minute to 4 hours" in capsys.readouterr().err
    finally:
        agent.request_stop()
        agent.stop()


def test_validate_command_taps_from_a_terminal(
    broker: BrokerSetup, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, path = started_agent(broker, tmp_path)
    assert agent.setup is not None
    stop = False

    def keep_ticking() -> None:
        while not stop:
            agent.tick(datetime.now(UTC))
            wait_for(lambda: True, timeout=0.2)

    ticker = threading.Thread(target=keep_ticking, daemon=True)
    ticker.start()
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("1i 1i 1o\n1ic nonsense 7i\ndone\n"))
        assert main(["validate", "--config", str(path), "--minutes", "1"]) == 0
        captured = capsys.readouterr()
        assert "not a tap: nonsense 7i" in captured.err
        assert "entrance in: counted" in captured.out and "tallied 3" in captured.out
        assert "overall count error" in captured.out
    finally:
        stop = True
        ticker.join(5)
        agent.request_stop()
        agent.stop()
    stored = json.loads((Path(agent.config.device.state_dir) / "setup" / "validations.json").read_text())
    assert len(stored) == 1
    tallied = {(c["line"], c["direction"], c["object_class"]): c["tallied"] for c in stored[0]["cells"]}
    assert tallied[("entrance", "in", "pedestrian")] == 2 and tallied[("entrance", "in", "cyclist")] == 1
    assert tallied[("entrance", "out", "pedestrian")] == 1
    assert stored[0]["policy"]["kind"] == "none" and 0 < stored[0]["minutes"] < 1


def test_open_setup_from_the_hub_keeps_only_the_hash(broker: BrokerSetup, tmp_path: Path) -> None:
    agent, _ = started_agent(broker, tmp_path)
    try:
        assert agent.setup is not None
        code = new_setup_code()
        command = OpenSetup(
            action="open-setup",
            **command_header("dev-a", timedelta(minutes=5), "user:olga"),
            minutes=15,
            code_sha256=setup_code_hash(code),
        )
        status, detail = agent.setup.handlers()["open-setup"](command)
        assert status is ResultStatus.DONE and "setup page open until" in detail
        state_dir = Path(agent.config.device.state_dir)
        grant = read_grant(state_dir)
        assert (
            grant is not None
            and grant.origin == "hub"
            and code not in (state_dir / "setup" / "access.json").read_text()
        )
        assert 14 * 60 < grant.until - datetime.now(UTC).timestamp() <= 15 * 60
        assert Access(state_dir).login(code) is not None
        assert Access(state_dir).login(code) is None, "once"
    finally:
        agent.request_stop()
        agent.stop()


def test_the_picture_is_forgotten_when_the_page_closes(broker: BrokerSetup, tmp_path: Path) -> None:
    agent, path = started_agent(broker, tmp_path)
    try:
        assert agent.setup is not None
        assert main(["setup", "--config", str(path), "--for", "5m"]) == 0
        tick_until(agent, lambda: agent.setup is not None and agent.setup.server is not None, "the page to open")
        learned = agent.setup.parts.background
        wait_for(lambda: learned.state() == "ready", timeout=120, what="the background")
        assert main(["setup", "--config", str(path), "--close"]) == 0
        tick_until(agent, lambda: agent.setup is not None and agent.setup.server is None, "the page to close")
        assert agent.setup.parts.background is not learned
    finally:
        agent.request_stop()
        agent.stop()
