"""Broker accounts in Mosquitto's dynamic-security plugin: refused or failed changes leave nothing behind,
sync-acl repairs what was changed by hand, and a config that cannot work says why."""

from __future__ import annotations

import secrets
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub_protocol import tomlwrite
from hub_protocol.topics import Channel, device_acl, device_topic
from hub_server.cli import main
from hub_server.config import HubConfig
from hub_server.fleet import dynsec
from hub_server.fleet.broker import PrivateBroker
from hub_server.ingest.mqtt import BROKER_UPTIME_TOPIC, HubMqtt
from hub_server.store import provisioning
from hub_server.store.db import Database
from tests.conftest import ADMIN, BrokerSetup, wait_until, write_secret
from tests.hub.conftest import SITE, dynsec_hub_config, hub_config_data
from tests.hub.mqtt_probe import Probe
from tests.hub.test_provisioning import one_line_error, provision, provisioning_state


@pytest.fixture
def dynsec_broker(make_broker: Callable[..., BrokerSetup], tmp_path: Path) -> tuple[BrokerSetup, Path, HubConfig]:
    return dynsec_hub_config(make_broker, tmp_path)


@pytest.mark.timeout(60)
def test_a_refused_step_undoes_the_steps_before_it(
    dynsec_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, config_path, config = dynsec_broker
    provision(config_path, "dev-before")
    # An account of that name made by hand: the device's role is created, then its account is refused.
    with broker.broker.admin() as admin:
        admin.command("createClient", username="dev-taken", password=secrets.token_urlsafe(18))
    before = provisioning_state(broker, config)
    capsys.readouterr()

    assert main(["device", "--config", str(config_path), "add", "dev-taken", "--site", SITE]) == 1
    err = one_line_error(capsys)
    assert "cannot create the broker account of dev-taken" in err and "Client already exists" in err, err
    assert provisioning_state(broker, config) == before
    with broker.broker.admin() as admin:
        assert admin.get_role(dynsec.role_name("dev-taken")) is None


@pytest.mark.timeout(60)
def test_a_wrong_admin_password_is_refused_clearly_and_changes_nothing(
    dynsec_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, config_path, config = dynsec_broker
    provision(config_path, "dev-before")
    assert config.provisioning and config.provisioning.dynsec
    write_secret(Path(config.provisioning.dynsec.admin_password_file), "not-the-password")
    before = provisioning_state(broker, config)
    capsys.readouterr()
    for args in (["add", "dev-new", "--site", SITE], ["revoke", "dev-before"], ["sync-acl"]):
        assert main(["device", "--config", str(config_path), *args]) == 1
        err = one_line_error(capsys)
        assert f"refused the account administrator {ADMIN!r}" in err, err
    assert provisioning_state(broker, config) == before


@pytest.mark.timeout(60)
def test_a_broker_without_the_plugin_gives_a_clear_error(
    managed_broker: tuple[BrokerSetup, Path, HubConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The account may publish on the plugin's topic, but nothing answers there: a timeout that says why."""
    broker, config_path, config = managed_broker
    admin_password = secrets.token_urlsafe(18)
    broker.broker.add_user(ADMIN, admin_password, [f"user {ADMIN}", "topic readwrite $CONTROL/dynamic-security/#"])
    data = tomllib.loads(config_path.read_text())
    for key in ("passwd_file", "acl_file", "pid_file"):
        data["provisioning"].pop(key)
    data["provisioning"]["broker_accounts"] = "dynsec"
    secret = write_secret(tmp_path / "admin.pw", admin_password)
    data["provisioning"]["dynsec"] = {"admin_username": ADMIN, "admin_password_file": str(secret), "timeout_s": 1}
    config_path.write_text(tomlwrite.dumps(data))

    assert main(["device", "--config", str(config_path), "add", "dev-new", "--site", SITE]) == 1
    err = one_line_error(capsys)
    assert "no answer to" in err and "is the plugin loaded" in err, err
    assert provisioning.list_all(Database(config.store.location).conn) == []
    assert not (tmp_path / "out" / "dev-new").exists()


@pytest.mark.timeout(90)
def test_sync_acl_repairs_hand_made_changes_and_removes_revoked_leftovers(
    dynsec_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, config_path, _ = dynsec_broker
    _, password = provision(config_path, "dev-x")
    provision(config_path, "dev-gone")
    assert main(["device", "--config", str(config_path), "revoke", "dev-gone"]) == 0
    health = device_topic(broker.prefix, SITE, "dev-x", Channel.HEALTH)
    neighbour = device_topic(broker.prefix, SITE, "dev-gone", Channel.FLOW)
    role = dynsec.role_name("dev-x")
    with broker.broker.admin() as admin:
        assert admin.get_client("dev-gone") is None  # the revocation deleted the account
        # By hand: one right taken away, a neighbour's given, and a revoked device's account back.
        admin.command("removeRoleACL", rolename=role, acltype="publishClientSend", topic=health)
        admin.command("addRoleACL", rolename=role, acltype="publishClientSend", topic=neighbour, allow=True)
        admin.command("createClient", username="dev-gone", password=secrets.token_urlsafe(18))
    device = Probe(broker.host, broker.port, "dev-x", password)
    assert device.connect(), device.connect_reason
    assert device.publish(health, b"{}").is_failure
    assert not device.publish(neighbour, b"{}").is_failure
    device.close()

    assert main(["device", "--config", str(config_path), "sync-acl"]) == 0
    with broker.broker.admin() as admin:
        found = admin.get_role(role)
        assert found is not None
        have = sorted((a["acltype"], a["topic"]) for a in found["acls"])
        want = dynsec.acl_entries(device_acl(broker.prefix, SITE, "dev-x"))
        assert have == sorted((a["acltype"], a["topic"]) for a in want)
        assert admin.get_client("dev-gone") is None
    device = Probe(broker.host, broker.port, "dev-x", password)
    assert device.connect(), device.connect_reason
    assert not device.publish(health, b"{}").is_failure
    assert device.publish(neighbour, b"{}").is_failure
    device.close()


@pytest.mark.timeout(60)
def test_revoke_disconnects_at_once_on_the_devices_listener(
    dynsec_broker: tuple[BrokerSetup, Path, HubConfig],
) -> None:
    """On the TLS-less stand-in of the devices' listener (client id = user name), as agents connect."""
    broker, config_path, _ = dynsec_broker
    _, password = provision(config_path, "dev-live")
    device = Probe(broker.host, broker.device_port, "dev-live", password)
    assert device.connect(), device.connect_reason
    started = time.monotonic()
    assert main(["device", "--config", str(config_path), "revoke", "dev-live"]) == 0
    assert device.disconnected.is_set() or wait_until(device.disconnected.is_set), "still connected"
    assert time.monotonic() - started < 30  # a generous bound: the point is no keepalive wait (10 s here)
    device.close()
    again = Probe(broker.host, broker.device_port, "dev-live", password)
    assert not again.connect()
    again.close()


@pytest.mark.parametrize(
    ("provisioning_section", "message"),
    [
        ({"broker_accounts": "dynsec"}, "needs a [provisioning.dynsec] section"),
        (
            {"broker_accounts": "dynsec", "dynsec": {"admin_password_file": "x"}, "pid_file": "/run/m.pid"},
            'pid_file: only for broker_accounts = "files"',
        ),
        ({"dynsec": {"admin_password_file": "x"}}, 'broker_accounts is "files"'),
        ({"broker_accounts": "dynsec", "dynsec": {"admin_password_file": "x", "admin_username": "hub"}}, "differ"),
        ({"broker_accounts": "plugin"}, "'files' or 'dynsec'"),
        ({"broker_accounts": "dynsec", "dynsec": {"admin_password_file": "x", "timeout_s": 0}}, "timeout_s"),
    ],
)
def test_config_that_cannot_work_is_refused_with_the_reason(
    tmp_path: Path, provisioning_section: dict[str, Any], message: str
) -> None:
    data = hub_config_data(tmp_path, provisioning={"agent_mqtt_host": "hub.example", **provisioning_section})
    with pytest.raises(ValidationError, match=None) as caught:
        HubConfig.model_validate(data)
    assert message in str(caught.value), str(caught.value)


@pytest.mark.timeout(90)
def test_accounts_move_from_the_password_file_to_the_plugin_with_their_passwords(
    managed_broker: tuple[BrokerSetup, Path, HubConfig],
    make_broker: Callable[..., BrokerSetup],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same hub (same database) switched from the file method to the plugin on a new broker: the hub and
    its active devices log in with the passwords they have; revoked and unknown accounts stay behind."""
    old, config_path, _ = managed_broker
    out = tmp_path / "out"
    _, kept = provision(config_path, "dev-kept")
    _, gone = provision(config_path, "dev-gone")
    assert main(["device", "--config", str(config_path), "revoke", "dev-gone"]) == 0
    stranger = secrets.token_urlsafe(18)
    old.broker.add_user("stranger", stranger, [])
    data = tomllib.loads(config_path.read_text())

    def prepare(new: PrivateBroker) -> None:
        assert new.dynsec_admin is not None
        for key in ("passwd_file", "acl_file", "pid_file"):
            data["provisioning"].pop(key)
        secret = write_secret(tmp_path / "admin.pw", new.dynsec_admin[1])
        data["mqtt"]["port"] = new.port
        data["provisioning"] |= {
            "broker_accounts": "dynsec",
            "dynsec": {"admin_username": new.dynsec_admin[0], "admin_password_file": str(secret)},
            "agent_mqtt_port": new.device_port,
        }
        config_path.write_text(tomlwrite.dumps(data))
        args = ["dynsec-init", str(new.dynsec_path), "--import-passwd", str(old.broker.folder / "passwd")]
        assert main(["device", "--config", str(config_path), *args]) == 0

    capsys.readouterr()
    new = make_broker(devices=(), dynsec=True, hub_user=False, prepare=prepare)
    assert "admin account and hub, dev-kept\n" in capsys.readouterr().out
    old.broker.stop()

    hub = Probe(new.host, new.port, "hub", old.hub_password)
    assert hub.connect(), hub.connect_reason
    device = Probe(new.host, new.device_port, "dev-kept", kept)
    assert device.connect(), device.connect_reason
    assert not device.publish(device_topic(new.prefix, SITE, "dev-kept", Channel.FLOW), b"{}").is_failure
    assert device.publish(device_topic(new.prefix, SITE, "dev-gone", Channel.FLOW), b"{}").is_failure
    for user, password in (("dev-gone", gone), ("stranger", stranger)):
        left = Probe(new.host, new.device_port, user, password)
        assert not left.connect(), user
        left.close()
    hub.close()

    assert main(["device", "--config", str(config_path), "sync-acl"]) == 0  # nothing missing, nothing to fix
    assert main(["device", "--config", str(config_path), "revoke", "dev-kept"]) == 0
    assert wait_until(device.disconnected.is_set), "revoked device is still connected"
    device.close()
    assert (out / "dev-kept").is_dir()


def test_a_password_file_with_an_old_hash_is_refused_before_anything_is_written(
    dynsec_broker: tuple[BrokerSetup, Path, HubConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config_path, _ = dynsec_broker
    passwd = tmp_path / "old-passwd"
    passwd.write_text("hub:$6$abc$notpbkdf2\n")
    target = tmp_path / "dynamic-security.json"
    assert (
        main(["device", "--config", str(config_path), "dynsec-init", str(target), "--import-passwd", str(passwd)]) == 1
    )
    err = one_line_error(capsys)
    assert f"{passwd} line 1" in err and "'hub'" in err and "mosquitto_passwd" in err, err
    assert not target.exists()
    # And an existing file of the plugin is never overwritten.
    target.write_text("{}")
    assert main(["device", "--config", str(config_path), "dynsec-init", str(target)]) == 1
    assert "never overwritten" in one_line_error(capsys)
    assert target.read_text() == "{}"


@pytest.mark.timeout(60)
def test_the_hub_client_hears_devices_and_the_broker_uptime_with_the_account_it_created(
    dynsec_broker: tuple[BrokerSetup, Path, HubConfig],
) -> None:
    """The hub's own account, created by the hub in the plugin, has the file method's rights: its real MQTT
    client subscribes to every device channel and the broker's uptime, and may send commands."""
    broker, config_path, config = dynsec_broker
    _, password = provision(config_path, "dev-talk")
    heard: list[tuple[str, bytes]] = []
    hub = HubMqtt(config.mqtt, broker.hub_password, "hub-ingest", lambda t, p: heard.append((t, p)))
    hub.start()
    try:
        assert hub.wait_connected(10)
        device = Probe(broker.host, broker.device_port, "dev-talk", password)
        assert device.connect(), device.connect_reason
        cmd = device_topic(broker.prefix, SITE, "dev-talk", Channel.COMMAND)
        device.subscribe(cmd)
        flow = device_topic(broker.prefix, SITE, "dev-talk", Channel.FLOW)
        assert wait_until(lambda: not device.publish(flow, b"{}").is_failure and any(t == flow for t, _ in heard))
        assert wait_until(lambda: any(t == BROKER_UPTIME_TOPIC for t, _ in heard), timeout=15)
        assert wait_until(lambda: hub.publish(cmd, b"open") and (cmd, b"open") in device.messages)
        device.close()
    finally:
        hub.stop()


def test_a_dynsec_config_written_out_whole_loads_again(dynsec_broker: tuple[BrokerSetup, Path, HubConfig]) -> None:
    """As the demo writes its config: every default spelled out, the file method's ones included."""
    _, _, config = dynsec_broker
    assert HubConfig.model_validate(config.model_dump(mode="json")) == config
