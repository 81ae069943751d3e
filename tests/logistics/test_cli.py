"""``hub-server delivery ...``: an operator's first steps from the shell, on the hub's database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from hub_protocol import tomlwrite
from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_server.accounts import audit
from hub_server.commands.delivery import service
from hub_server.config import load_hub_config
from hub_server.store import logistics as store
from hub_server.store.db import Database
from tests.hub.conftest import hub_config_data


def _hub(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(tomlwrite.dumps(hub_config_data(tmp_path / "hub")))
    return path


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_server.cli", "delivery", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_describe_create_list_cancel(tmp_path: Path) -> None:
    config_path = _hub(tmp_path)
    done = _run(config_path, "describe-locker", "hub-1", "1:S", "2:M:accessible", "3:L")
    assert done.returncode == 0, done.stderr
    assert "hub-1/2: M accessible" in done.stdout

    bad = _run(config_path, "describe-locker", "hub-1", "4:XL")
    assert bad.returncode == 1 and "NUMBER:SIZE" in bad.stderr and "Traceback" not in bad.stderr

    none_free = _run(config_path, "create", "--size", "S", "--name", "Sam")
    assert none_free.returncode == 1 and "no free compartment" in none_free.stderr  # nothing reported free yet

    config = load_hub_config(config_path)
    db = Database(config.store.location)
    logistics = service(config, db)
    for n in (1, 2, 3):
        logistics.on_event(
            LockerEvent(
                device="hub-1",
                boot="b1",
                seq=n,
                at=datetime.now(UTC),
                compartment=n,
                state=CompartmentState.FREE,
                previous=None,
                cause="recovered",
                door_open=False,
            )
        )
    created = _run(config_path, "create", "--size", "M", "--name", "Sam", "--contact", "sam@example.org")
    assert created.returncode == 0, created.stderr
    code = re.search(r"drop-off code \(shown once\): (\d{8})", created.stdout)
    link = re.search(r"resident's page .*: (\S+/r/\S+)", created.stdout)
    delivery = re.search(r"delivery (d-[0-9a-f]+): locker hub-1, compartment 2", created.stdout)
    assert code and link and delivery, created.stdout
    # Stored for the running hub to send (it publishes unsent commands every round).
    [command] = store.commands_for(db.conn, delivery[1])
    assert command.purpose == "dropoff" and command.sent_at is None
    view = logistics.resident_view(link[1].rsplit("/", 1)[1])
    assert view is not None and view.compartment == 2  # the link works for the hub's own service

    listed = _run(config_path, "list")
    assert delivery[1] in listed.stdout and "awaiting-dropoff" in listed.stdout
    cancelled = _run(config_path, "cancel", delivery[1])
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    again = _run(config_path, "cancel", delivery[1])
    assert again.returncode == 1 and "nothing to cancel" in again.stderr

    actions = [e.action for e in audit.query(db.conn)]
    assert actions[:3] == ["delivery.cancel", "delivery.create", "locker.configure"]
    assert all(e.actor.startswith("cli:") for e in audit.query(db.conn))


def test_without_the_session_key_the_hint_says_where_it_is(tmp_path: Path) -> None:
    data = hub_config_data(tmp_path / "hub")
    data["http"]["session_key_file"] = "session-key"  # a systemd credential name, as in production
    config_path = tmp_path / "hub.toml"
    config_path.write_text(tomlwrite.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "hub_server.cli", "delivery", "--config", str(config_path), "lockers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "CREDENTIALS_DIRECTORY=/etc/hub-server/credentials" in done.stderr
