"""The README's operator first steps, as written: first admin, a device, the locker bank, a delivery."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_server.cli import main
from hub_server.commands.delivery import service
from hub_server.config import load_hub_config
from hub_server.store.db import Database
from tests.conftest import write_secret
from tests.hub.conftest import SITE


@pytest.mark.timeout(60)
def test_first_steps(managed_broker: tuple[Any, Path, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, config_path, _ = managed_broker
    password = write_secret(tmp_path / "alice.pw", "a long enough password")
    cli = ["--config", str(config_path)]

    # 1. The first admin: there is no default account.
    assert main(["user", *cli, "add", "alice", "--role", "admin", "--password-file", str(password)]) == 0
    # 2. A device with its own broker account; the folder goes to the Pi.
    assert main(["device", *cli, "add", "locker-1", "--site", SITE]) == 0
    assert (config_path.parent / "out" / "locker-1" / "agent.toml").exists()
    assert main(["device", *cli, "list"]) == 0
    assert "locker-1" in capsys.readouterr().out
    # 3. Describe the locker bank, then create a delivery.
    assert main(["delivery", *cli, "describe-locker", "locker-1", "1:S", "2:M:accessible", "3:L"]) == 0
    config = load_hub_config(config_path)
    logistics = service(config, Database(config.store.location))
    for number in (1, 2, 3):  # what the bank reports when its agent starts (the ingest hands these over)
        logistics.on_locker_event(
            LockerEvent(
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
        )
    capsys.readouterr()
    code = main(["delivery", *cli, "create", "--size", "M", "--name", "J. Jansen", "--contact", "j@example.org"])
    assert code == 0
    out = capsys.readouterr().out
    assert "locker locker-1, compartment 2 (M)" in out
    assert "drop-off code (shown once):" in out and f"{config.http.public_url}/r/" in out
