"""Validation records through the real broker: stored once per device, served by the API (operators and the
open endpoint), shown on the device page and the public /sensors page; a device never validated says so."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub_protocol.accuracy import ValidationCell, ValidationLine, ValidationRecord
from hub_protocol.codec import decode, encode
from hub_protocol.commands import OpenSetup, setup_code_hash
from hub_protocol.flows import PolicyKind, PrivacyPolicy
from hub_protocol.topics import Channel, device_topic
from hub_server.app import create_app
from hub_server.cli import main
from hub_server.config import HubConfig
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, write_secret
from tests.hub.conftest import PASSWORD, SITE, add_token, add_user, hub_config_data
from tests.hub.mqtt_probe import Probe
from tests.hub.test_ingest_api import eventually
from tests.hub.test_provisioning import provision
from tests.web.harness import Device

STARTED = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)


def record(
    device: str, seq: int, counted: int, tallied: int, policy: PolicyKind, started: datetime
) -> ValidationRecord:
    error = round((counted - tallied) / tallied, 4)
    return ValidationRecord(
        device=device,
        boot="boot-1",
        seq=seq,
        started_at=started,
        minutes=10,
        cells=[
            ValidationCell(line="door", direction="in", object_class="pedestrian", counted=counted, tallied=tallied),
        ],
        lines=[
            ValidationLine(line="door", direction="in", counted=counted, tallied=tallied, error=error),
            ValidationLine(line="door", direction="out", counted=0, tallied=0, error=None),
        ],
        error=abs(error),
        policy=PrivacyPolicy(kind=policy, k=3) if policy is PolicyKind.THRESHOLD else PrivacyPolicy(kind=policy),
    )


@pytest.mark.timeout(120)
async def test_validation_records_are_stored_served_and_shown(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup], aiohttp_client: Any
) -> None:
    broker = make_broker(devices=("cam-1", "cam-2", "cam-3"))
    data = hub_config_data(tmp_path / "hub", mqtt={"port": broker.port}, ingest={"writer_process": False})
    write_secret(Path(data["mqtt"]["password_file"]), broker.hub_password)
    config = HubConfig.model_validate(data)
    db = Database(config.store.location)
    add_user(db, "olga", Role.VIEWER)
    viewer = {"Authorization": f"Bearer {add_token(db, Role.VIEWER)}"}
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config, database=db))

    async def connected() -> bool:
        return bool((await (await client.get("/api/v1/health")).json())["broker_connected"])

    assert await eventually(connected)
    cams = [
        Device(broker.host, broker.port, broker.prefix, broker.site, d, broker.device_passwords[d])
        for d in ("cam-1", "cam-2", "cam-3")
    ]
    for cam in cams:
        cam.connect()
        cam.register(counts=True)
    older = record("cam-1", 1, 40, 50, PolicyKind.THRESHOLD, STARTED)
    newer = record("cam-1", 2, 57, 60, PolicyKind.THRESHOLD, STARTED + timedelta(hours=1))
    probe = Probe(broker.host, broker.port, "cam-1", broker.device_passwords["cam-1"])
    assert probe.connect()
    topic = device_topic(broker.prefix, broker.site, "cam-1", Channel.VALIDATION)
    for message in (older, newer, newer):  # a resend after a lost ack is stored once
        assert not probe.publish(topic, encode(message)).is_failure
    unprotected = record("cam-2", 1, 5, 5, PolicyKind.NONE, STARTED)
    cams[1].publish(Channel.VALIDATION, unprotected)

    async def stored() -> list[Any]:
        both = await (await client.get("/api/v1/devices/cam-1/validations", headers=viewer)).json()
        other = await (await client.get("/api/v1/devices/cam-2/validations", headers=viewer)).json()
        return both if len(both) == 2 and len(other) == 1 else []

    assert await eventually(stored)
    history = await stored()
    assert [v["error"] for v in history] == [0.05, 0.2], "newest first, each once"
    assert history[0]["lines"][0] == {"line": "door", "direction": "in", "counted": 57, "tallied": 60, "error": -0.05}
    assert (await client.get("/api/v1/devices/nope/validations", headers=viewer)).status == 404
    assert (await client.get("/api/v1/devices/cam-1/validations")).status == 401

    public = await client.get("/api/v1/open/validations")
    assert public.headers["Access-Control-Allow-Origin"] == "*"
    sensors_json = await public.json()
    assert [(v["device"], v["validated"]) for v in sensors_json] == [
        ("cam-1", True),
        ("cam-2", False),
        ("cam-3", False),
    ]
    assert (sensors_json[0]["latest"]["error"], sensors_json[0]["latest"]["minutes"]) == (0.05, 10.0)
    assert sensors_json[1]["latest"] is None, "published without protection: not open data"
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/open/validations" in spec["paths"] and "/api/v1/devices/{device}/validations" in spec["paths"]

    sensors = await (await client.get("/sensors?lang=en")).text()
    card = re.search(r'id="validation-cam-1">(.*?)</p>', sensors, re.S)
    assert card and "10 minutes tallied, count error 5.0%" in card.group(1), sensors
    assert "Validated by hand on" in (re.search(r'id="validation-cam-2">(.*?)</p>', sensors, re.S) or [""])[0]
    never = re.search(r'id="validation-cam-3">(.*?)</p>', sensors, re.S)
    assert never and "Never validated by hand" in never.group(1)
    for lang, words in (("nl", "Nooit met de hand"), ("de", "Nie von Hand")):
        assert words in await (await client.get(f"/sensors?lang={lang}")).text()

    login_page = await client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', await login_page.text())
    assert csrf
    await client.post(
        "/login", data={"username": "olga", "password": PASSWORD, "csrf_token": csrf.group(1), "next": "/"}
    )
    page = await (await client.get("/dashboard/devices/cam-1?lang=en")).text()
    assert "count error 5.0%" in page and 'id="validation-lines"' in page
    assert "-5.0%" in page, "per line and direction, signed"

    # Opening the setup page from the hub: the operator gets the code once, the device only its hash.
    probe.subscribe(device_topic(broker.prefix, broker.site, "cam-1", Channel.COMMAND))
    operator = {"Authorization": f"Bearer {add_token(db, Role.OPERATOR, 'ops')}"}
    assert (await client.post("/api/v1/devices/cam-1/setup", json={}, headers=viewer)).status == 403
    bad = await client.post("/api/v1/devices/cam-1/setup", json={"minutes": 999}, headers=operator)
    assert bad.status == 422
    opened = await client.post("/api/v1/devices/cam-1/setup", json={"minutes": 20}, headers=operator)
    body = await opened.json()
    assert opened.status == 202 and re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", body["code"]), body

    async def command_arrived() -> bool:
        return any(t.endswith("/cmd") for t, _ in probe.messages)

    assert await eventually(command_arrived)
    command = decode(Channel.COMMAND, next(p for t, p in probe.messages if t.endswith("/cmd")))
    assert isinstance(command, OpenSetup) and command.minutes == 20
    assert command.code_sha256 == setup_code_hash(body["code"]) and body["code"] not in command.model_dump_json()
    logged = db.conn.execute("SELECT detail FROM audit_log WHERE action = 'device.open-setup'").fetchall()
    assert len(logged) == 1 and body["code"] not in logged[0]["detail"]
    for cam in cams:
        cam.close()
    probe.close()


def test_sync_acl_lets_an_existing_device_publish_on_a_new_channel(
    managed_broker: tuple[BrokerSetup, Path, HubConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    """A hub upgraded to a version with the validation channel: its old ACL file lacks the channel until the
    ACL is rewritten from the database."""
    broker, config_path, _ = managed_broker
    _, password = provision(config_path, "cam-old")
    acl = broker.broker.folder / "acl"
    topic = device_topic(broker.prefix, SITE, "cam-old", Channel.VALIDATION)
    acl.write_text("\n".join(line for line in acl.read_text().splitlines() if not line.endswith("/validation")) + "\n")
    assert main(["device", "--config", str(config_path), "sync-acl"]) == 0
    assert "ACL rewritten" in capsys.readouterr().out
    assert f"topic write {topic}" in acl.read_text()
    device = Probe(broker.host, broker.port, "cam-old", password)
    assert device.connect()
    assert not device.publish(topic, b"{}").is_failure
    device.close()
