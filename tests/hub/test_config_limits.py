"""Hostile config text: deeply nested or huge TOML is refused with a plain message by both check-config
commands and by config push (a 4xx, never a 500 or a traceback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from edge_agent.cli import main as agent_main
from hub_server.cli import main as hub_main
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.hub.conftest import add_token

NESTED_ARRAY = "a = " + "[" * 5000 + "]" * 5000 + "\n"
NESTED_TABLE = "a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n"
DEEP_BUT_PARSABLE = "a = " + "[" * 40 + "]" * 40 + "\n"
HUGE = "# padding\n" * 200_000 + 'config_version = 1\n[device]\nid = "cam-1"\nsite = "s"\n'


@pytest.mark.parametrize(
    "text", [NESTED_ARRAY, NESTED_TABLE, DEEP_BUT_PARSABLE, HUGE], ids=["array", "table", "40", "huge"]
)
@pytest.mark.parametrize("main", [hub_main, agent_main], ids=["hub", "agent"])
def test_check_config_refuses_hostile_toml_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], main: Any, text: str
) -> None:
    path = tmp_path / "hostile.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err
    assert "nested deeper" in err or "larger than" in err, err


@pytest.mark.parametrize("text", [NESTED_ARRAY, NESTED_TABLE, DEEP_BUT_PARSABLE])
async def test_config_push_refuses_nested_toml_with_422(client: TestClient[Any, Any], db: Database, text: str) -> None:
    headers = {"Authorization": f"Bearer {add_token(db, Role.ADMIN)}"}
    answer = await client.post("/api/v1/devices/cam-1/config", json={"config_toml": text}, headers=headers)
    assert answer.status == 422, await answer.text()
    assert "nested deeper" in (await answer.json())["problems"][0]
