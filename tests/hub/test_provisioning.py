"""Device provisioning against a real Mosquitto: own credentials work, other devices' topics and revoked
devices are refused, and the technician's files are complete."""

from __future__ import annotations

import asyncio
import stat
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from edge_agent.config import load_agent_config
from hub_protocol import tomlwrite
from hub_protocol.topics import Channel, device_topic
from hub_server.accounts import audit
from hub_server.app import LIVE_KEY, create_app
from hub_server.cli import main
from hub_server.config import HubConfig
from hub_server.store import provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, wait_until
from tests.hub.conftest import PASSWORD, SITE, add_user, login
from tests.hub.mqtt_probe import Probe


def provision(config_path: Path, device: str) -> tuple[Path, str]:
    assert main(["device", "--config", str(config_path), "add", device, "--site", SITE]) == 0
    folder = config_path.parent / "out" / device
    return folder, (folder / "mqtt-password").read_text().strip()


def account_store(broker: BrokerSetup) -> bytes:
    """What the broker keeps its accounts in: the password file and ACL, or the plugin's file."""
    folder = broker.broker.folder
    if broker.admin_password is not None:
        return (folder / "dynamic-security.json").read_bytes()
    return (folder / "passwd").read_bytes() + (folder / "acl").read_bytes()


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command printed on standard error, checked to be one line and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.timeout(60)
def test_new_device_connects_publishes_own_topics_only_and_is_cut_off_by_revoke(
    accounts_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, config_path, config = accounts_broker
    folder, password = provision(config_path, "dev-new")
    _, other_password = provision(config_path, "dev-other")

    # The technician's files: a valid agent config that names the credential, and a private credential file.
    agent = load_agent_config(folder / "agent.toml")
    assert (agent.device.id, agent.device.site, agent.mqtt.port) == ("dev-new", SITE, broker.device_port)
    assert agent.mqtt.password_file == "mqtt-password"
    assert stat.S_IMODE((folder / "mqtt-password").stat().st_mode) == 0o600
    assert len(password) >= 24
    assert password.encode() not in account_store(broker)  # only a hash is kept

    hub = Probe(broker.host, broker.port, "hub", broker.hub_password)
    assert hub.connect()
    hub.subscribe(f"{broker.prefix}/v1/#")
    device = Probe(broker.host, broker.port, "dev-new", password)
    assert device.connect(), device.connect_reason
    time.sleep(0.2)

    own = device_topic(broker.prefix, SITE, "dev-new", Channel.HEALTH)
    other = device_topic(broker.prefix, SITE, "dev-other", Channel.FLOW)
    assert not device.publish(own, b"{}").is_failure
    refused = device.publish(other, b"{}")
    assert refused.is_failure and refused.value == 0x87  # Not authorized
    assert wait_until(lambda: any(t == own for t, _ in hub.messages))
    time.sleep(0.3)
    assert all(t != other for t, _ in hub.messages)
    # It reads only its own commands: subscribing to a neighbour's brings nothing.
    own_cmd = device_topic(broker.prefix, SITE, "dev-new", Channel.COMMAND)
    other_cmd = device_topic(broker.prefix, SITE, "dev-other", Channel.COMMAND)
    device.subscribe(other_cmd)
    device.subscribe(own_cmd)
    time.sleep(0.3)
    assert not hub.publish(other_cmd, b"theirs").is_failure
    assert not hub.publish(own_cmd, b"mine").is_failure
    assert wait_until(lambda: (own_cmd, b"mine") in device.messages)
    assert all(t != other_cmd for t, _ in device.messages)

    # Revoke: the connected device is dropped at once and cannot come back.
    assert main(["device", "--config", str(config_path), "revoke", "dev-new"]) == 0
    assert wait_until(device.disconnected.is_set), "revoked device is still connected"
    device.close()
    again = Probe(broker.host, broker.port, "dev-new", password)
    assert not again.connect()
    assert again.connect_reason is not None and again.connect_reason.is_failure
    again.close()
    # The other devices are unaffected.
    neighbour = Probe(broker.host, broker.port, "dev-other", other_password)
    assert neighbour.connect()
    assert not neighbour.publish(other, b"{}").is_failure
    neighbour.close()
    hub.close()

    entries = audit.query(Database(config.store.location).conn, target="device:dev-new")
    assert [e.action for e in entries] == ["device.revoke", "device.add"]
    assert all(e.actor.startswith("cli:") for e in entries)

    capsys.readouterr()
    assert main(["device", "--config", str(config_path), "list"]) == 0
    listing = capsys.readouterr().out
    assert "dev-new" in listing and "revoked" in listing


def test_a_device_id_is_provisioned_once_and_never_reused_after_revoke(
    accounts_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    _, config_path, _ = accounts_broker
    provision(config_path, "dev-once")
    assert main(["device", "--config", str(config_path), "add", "dev-once", "--site", SITE]) == 1
    assert "provisioned already" in capsys.readouterr().err
    assert main(["device", "--config", str(config_path), "revoke", "dev-once"]) == 0
    assert main(["device", "--config", str(config_path), "add", "dev-once", "--site", SITE]) == 1
    assert "never reused" in capsys.readouterr().err


def test_bad_device_ids_are_refused_before_anything_is_written(
    accounts_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, config_path, config = accounts_broker
    provision(config_path, "dev-before")
    before = account_store(broker)
    assert main(["device", "--config", str(config_path), "add", "Dev/#", "--site", SITE]) == 1
    assert "must match" in capsys.readouterr().err
    assert main(["device", "--config", str(config_path), "add", "hub", "--site", SITE]) == 1
    assert "hub's own broker user" in capsys.readouterr().err
    if config.provisioning and config.provisioning.dynsec:
        assert main(["device", "--config", str(config_path), "add", "hub-accounts", "--site", SITE]) == 1
        assert "account administrator" in capsys.readouterr().err
    assert account_store(broker) == before


def _broken(tmp_path: Path, case: str) -> tuple[dict[str, Any], str]:
    """Provisioning settings with one expected I/O problem, and what the error must name."""
    if case == "ca-missing":
        return {"agent_ca_file": str(tmp_path / "no-such-ca.pem")}, str(tmp_path / "no-such-ca.pem")
    if case == "ca-folder":
        (tmp_path / "ca-dir").mkdir()
        return {"agent_ca_file": str(tmp_path / "ca-dir")}, str(tmp_path / "ca-dir")
    if case == "output-unwritable":
        (tmp_path / "a-file").write_text("not a folder")
        return {"output_dir": str(tmp_path / "a-file" / "out")}, str(tmp_path / "a-file" / "out")
    assert case == "reload-fails"  # the last step, after the password and the files were written
    return {"pid_file": None, "reload_command": [str(tmp_path / "no-such-reload")]}, "no-such-reload"


def provisioning_state(broker: BrokerSetup, config: HubConfig) -> tuple[Any, ...]:
    """Everything a provisioning change touches: the broker's accounts, the output folder, devices, audit."""
    db = Database(config.store.location)
    out = config.provisioning.output_dir if config.provisioning else None
    return (
        account_store(broker),
        sorted(p.name for p in out.iterdir()) if out and out.is_dir() else None,
        [d.device for d in provisioning.list_all(db.conn)],
        audit.query(db.conn),
    )


@pytest.mark.parametrize("case", ["ca-missing", "ca-folder", "output-unwritable", "reload-fails"])
def test_device_add_with_an_io_problem_says_what_and_where_and_changes_nothing(
    managed_broker: tuple[BrokerSetup, Path, HubConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    broker, config_path, _ = managed_broker
    provision(config_path, "dev-before")  # the broker's files hold a device already
    data = tomllib.loads(config_path.read_text())
    change, where = _broken(tmp_path, case)
    for key, value in change.items():
        if value is None:
            data["provisioning"].pop(key)
        else:
            data["provisioning"][key] = value
    config_path.write_text(tomlwrite.dumps(data))
    config = HubConfig.model_validate(data)
    before = provisioning_state(broker, config)
    capsys.readouterr()

    assert main(["device", "--config", str(config_path), "add", "dev-new", "--site", SITE]) == 1
    err = one_line_error(capsys)
    assert err.startswith("hub-server: error: cannot ") and where in err, err
    assert provisioning_state(broker, config) == before
    assert not (config.provisioning and (config.provisioning.output_dir / "dev-new").exists())


@pytest.mark.timeout(60)
async def test_provisioning_through_the_api_needs_an_admin_and_is_audited(
    accounts_broker: tuple[BrokerSetup, Path, HubConfig], aiohttp_client: Any
) -> None:
    broker, _, config = accounts_broker
    db = Database(config.store.location)
    add_user(db, "root-admin", Role.ADMIN)
    add_user(db, "olga", Role.OPERATOR)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config, database=db, background=False, pages=False))
    csrf = await login(client, "olga")
    body = {"device": "dev-api", "site": SITE}
    assert (await client.post("/api/v1/devices", json=body, headers={"X-CSRF-Token": csrf})).status == 403
    assert (await client.post("/api/v1/session", json={"username": "root-admin", "password": PASSWORD})).status == 403
    csrf = await login(client, "root-admin", csrf=csrf)
    created = await client.post("/api/v1/devices", json=body, headers={"X-CSRF-Token": csrf})
    assert created.status == 201, await created.text()
    out = await created.json()
    assert 'id = "dev-api"' in out["agent_config"] and out["broker_reloaded"] is True
    again = await client.post("/api/v1/devices", json=body, headers={"X-CSRF-Token": csrf})
    assert again.status == 409

    device = Probe(broker.host, broker.port, "dev-api", out["mqtt_password"])
    assert await asyncio.to_thread(device.connect)
    revoked = await client.post("/api/v1/devices/dev-api/revoke", headers={"X-CSRF-Token": csrf})
    assert revoked.status == 200
    assert await asyncio.to_thread(wait_until, device.disconnected.is_set)
    device.close()
    assert client.app[LIVE_KEY].is_revoked("dev-api")
    listed = await (await client.get("/api/v1/devices")).json()
    assert [(d["device"], d["provisioned"], d["revoked"]) for d in listed] == [("dev-api", True, True)]
    assert (await client.post("/api/v1/devices/nope/revoke", headers={"X-CSRF-Token": csrf})).status == 404
    actions = [(e.actor, e.action) for e in audit.query(db.conn, target="device:dev-api")]
    assert actions == [("user:root-admin", "device.revoke"), ("user:root-admin", "device.add")]
