"""The README's operator first steps, as written: first admin, a token, a device, a locker bank, a delivery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_server.app import create_app
from hub_server.appkeys import LOGISTICS_KEY
from hub_server.cli import main
from hub_server.config import load_hub_config
from hub_server.store.db import Database
from tests.hub.conftest import SITE


@pytest.mark.timeout(60)
async def test_first_steps(
    managed_broker: tuple[Any, Path, Any],
    tmp_path: Path,
    aiohttp_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, config_path, _ = managed_broker
    password = tmp_path / "alice.pw"
    password.write_text("a long enough password\n")
    password.chmod(0o600)
    cli = ["--config", str(config_path)]
    assert main(["user", *cli, "add", "alice", "--role", "admin", "--password-file", str(password)]) == 0
    assert main(["user", *cli, "token-add", "setup-script", "--role", "admin"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["device", *cli, "add", "locker-1", "--site", SITE]) == 0
    assert (config_path.parent / "out" / "locker-1" / "agent.toml").exists()

    config = load_hub_config(config_path)
    app = create_app(config, database=Database(config.store.path), background=False, pages=False)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {token}"}
    bank = {"compartments": [{"number": 1, "size": "S"}, {"number": 2, "size": "M", "accessible": True}]}
    described = await client.put("/api/v1/lockers/locker-1", json=bank, headers=auth)
    assert described.status == 200, await described.text()
    # The bank reports its compartments when its agent starts (here handed to the hub's logistics directly).
    for number in (1, 2):
        report = LockerEvent(
            device="locker-1",
            boot="boot-1",
            seq=number,
            at=datetime.now(UTC),
            compartment=number,
            state=CompartmentState.FREE,
            previous=None,
            cause="recovered",
            door_open=False,
        )
        await asyncio.to_thread(app[LOGISTICS_KEY].on_locker_event, report)
    delivery = {"size": "M", "resident_name": "J. Jansen", "resident_contact": "j.jansen@example.org"}
    created = await client.post("/api/v1/deliveries", json=delivery, headers=auth)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["dropoff_code"].isdigit()
    assert body["resident_link"].startswith(config.http.public_url)
    assert (body["delivery"]["device"], body["delivery"]["compartment"]) == ("locker-1", 2)
