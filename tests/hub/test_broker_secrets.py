"""Broker passwords never appear on a command line: every process the hub starts is audited for them."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import pytest

from hub_server.cli import main
from hub_server.config import HubConfig
from hub_server.fleet.broker import PrivateBroker
from hub_server.fleet.devices import add_device
from hub_server.store.db import Database
from hub_server.store.provisioning import ProvisioningError
from tests.conftest import BrokerSetup
from tests.hub.conftest import SITE
from tests.hub.mqtt_probe import Probe

_RECORDING: list[list[str]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Audit hooks cannot be removed: this one records only while a test has set _RECORDING.
    if _RECORDING is None or event not in {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.system"}:
        return
    argv = args[1] if event != "os.system" else args[0]
    if isinstance(argv, (str, bytes, Path)):
        argv = [argv]
    _RECORDING.append([a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in argv or []])


sys.addaudithook(_audit)


@pytest.fixture
def command_lines() -> Any:
    global _RECORDING
    _RECORDING = []
    yield _RECORDING
    _RECORDING = None


@pytest.mark.timeout(60)
def test_no_broker_password_in_any_command_line(
    managed_broker: tuple[BrokerSetup, Path, HubConfig], command_lines: list[list[str]], tmp_path: Path
) -> None:
    broker, config_path, config = managed_broker
    # The hub's own user, added to an empty password file at the first device change (the install's path).
    assert config.provisioning is not None
    fresh = config.model_copy(
        update={"provisioning": config.provisioning.model_copy(update={"passwd_file": tmp_path / "fresh-passwd"})}
    )
    add_device(Database(config.store.location), fresh, "dev-first", SITE, actor="test")
    # Devices added and revoked through the CLI, as the technician does; the tests' broker adds a user too.
    for device in ("dev-one", "dev-two"):
        assert main(["device", "--config", str(config_path), "add", device, "--site", SITE]) == 0
    assert main(["device", "--config", str(config_path), "revoke", "dev-two"]) == 0
    extra = secrets.token_urlsafe(18)
    broker.broker.add_user("dev-extra", extra, [])
    with PrivateBroker(tmp_path / "own", {"hub": secrets.token_urlsafe(18)}, []) as own:
        own_passwords = list(own.users.values())

    out = config_path.parent / "out"
    passwords = [
        broker.hub_password,
        extra,
        *own_passwords,
        *((out / d / "mqtt-password").read_text().strip() for d in ("dev-first", "dev-one", "dev-two")),
    ]
    assert any(Path(argv[0]).name == "mosquitto_passwd" for argv in command_lines), command_lines
    for argv in command_lines:
        line = " ".join(argv)
        leaked = [p for p in passwords if p in line]
        assert not leaked, f"a broker password is on the command line {argv[0]} ..."
    # And the passwords set through standard input are the right ones: the device logs in with its file.
    device = Probe(broker.host, broker.device_port, "dev-one", (out / "dev-one" / "mqtt-password").read_text().strip())
    assert device.connect(), device.connect_reason
    device.close()


def test_device_cannot_be_named_like_the_hubs_client_ids(managed_broker: tuple[BrokerSetup, Path, HubConfig]) -> None:
    _, _, config = managed_broker
    db = Database(config.store.location)
    for name in (config.ingest.client_id, "hub-cli-0123456789ab"):
        with pytest.raises(ProvisioningError, match="client id"):
            add_device(db, config, name, SITE, actor="test")
