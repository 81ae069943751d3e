"""``edge-agent run`` with a state_dir it cannot use: one line naming the path, not a traceback at every restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from hub_server.fleet.broker import free_port
from tests.deploy.conftest import write_agent_config


def test_a_state_dir_that_is_a_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    state = tmp_path / "state"
    state.rmdir()
    state.write_text("a file where the folder should be")
    assert main(["run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"state_dir: cannot use {state / 'config'}: Not a directory" in err and "Traceback" not in err
    assert state.read_text() == "a file where the folder should be"
