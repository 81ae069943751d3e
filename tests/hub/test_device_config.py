"""Config changes without SSH: push-config and reload-config reach the device's cmd topic, its answer comes back."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub_protocol import tomlwrite
from hub_protocol.codec import decode, encode
from hub_protocol.commands import PushConfig, ReloadConfig
from hub_protocol.envelope import Availability, AvailabilityState, CommandResult, ResultStatus
from hub_protocol.topics import Channel, device_topic
from hub_server.accounts import audit
from hub_server.app import create_app
from hub_server.cli import main
from hub_server.config import HubConfig
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, write_secret
from tests.hub.conftest import add_token, hub_config_data
from tests.hub.mqtt_probe import Probe

AGENT_TOML = 'config_version = 1\n[device]\nid = "cam-1"\nsite = "test-street"\n'


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> bool:
    """Whether ``check`` (plain or async) came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        done = bool(await result) if inspect.isawaitable(result) else bool(result)
        if done or time.monotonic() >= deadline:
            return done
        await asyncio.sleep(0.1)


@pytest.mark.timeout(90)
async def test_push_and_reload_config_through_api_and_cli(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup], aiohttp_client: Any
) -> None:
    broker = make_broker(devices=("cam-1",))
    data = hub_config_data(tmp_path / "hub", mqtt={"port": broker.port}, ingest={"writer_process": False})
    write_secret(Path(data["mqtt"]["password_file"]), broker.hub_password)
    config_path = tmp_path / "hub.toml"
    config_path.write_text(tomlwrite.dumps(data))
    config = HubConfig.model_validate(data)
    db = Database(config.store.location)
    admin = {"Authorization": f"Bearer {add_token(db, Role.ADMIN)}"}
    operator = {"Authorization": f"Bearer {add_token(db, Role.OPERATOR, 'ops')}"}
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config, database=db, pages=False))

    async def listening() -> bool:
        return bool((await (await client.get("/api/v1/health")).json())["broker_connected"])

    # The hub ignores a retained status (it may be stale): the device's "online" must reach it live.
    await eventually(listening, 15)

    device = Probe(broker.host, broker.port, "cam-1", broker.device_passwords["cam-1"])
    assert await asyncio.to_thread(device.connect)
    device.subscribe(device_topic(broker.prefix, broker.site, "cam-1", Channel.COMMAND))
    online = Availability(device="cam-1", boot="boot-1", state=AvailabilityState.ONLINE)
    device.client.publish(device_topic(broker.prefix, broker.site, "cam-1", Channel.STATUS), encode(online), 1, True)

    async def known() -> bool:
        return (await client.get("/api/v1/devices/cam-1", headers=admin)).status == 200

    await eventually(known, 15)

    url = "/api/v1/devices/cam-1/config"
    assert (await client.post(url, json={"config_toml": AGENT_TOML}, headers=operator)).status == 403
    wrong = await client.post(url, json={"config_toml": AGENT_TOML.replace("cam-1", "cam-9")}, headers=admin)
    assert wrong.status == 422 and "wrong file" in (await wrong.json())["problems"][0]
    broken = await client.post(url, json={"config_toml": "[device\nid="}, headers=admin)
    assert broken.status == 422 and "not valid TOML" in (await broken.json())["problems"][0]
    sent = await client.post(url, json={"config_toml": AGENT_TOML}, headers=admin)
    assert sent.status == 202, await sent.text()
    command_id = (await sent.json())["command"]

    assert await eventually(lambda: len(device.messages) >= 1)
    received = decode(Channel.COMMAND, device.messages[0][1])
    assert isinstance(received, PushConfig) and received.id == command_id and received.config_toml == AGENT_TOML

    outcome_url = f"/api/v1/devices/cam-1/commands/{command_id}"
    assert (await (await client.get(outcome_url, headers=operator)).json())["status"] is None
    answer = CommandResult(
        device="cam-1",
        boot="boot-1",
        seq=1,
        command_id=command_id,
        status=ResultStatus.DONE,
        detail="restarting with the new config",
        at=datetime.now(UTC),
    )
    device.publish(device_topic(broker.prefix, broker.site, "cam-1", Channel.RESULT), encode(answer))

    async def answered() -> bool:
        return (await (await client.get(outcome_url, headers=operator)).json())["status"] == "done"

    deadline = time.monotonic() + 15
    while not await answered() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert await answered()
    entry = audit.query(db.conn, action="device.push-config")[0]
    assert entry.target == "device:cam-1" and entry.detail["command"] == command_id
    assert "config_toml" not in entry.detail and len(entry.detail["sha256"]) == 64

    # The CLI sends the same commands from a shell on the hub, in a broker session of its own.
    code = await asyncio.to_thread(main, ["device", "--config", str(config_path), "reload-config", "cam-1"])
    assert code == 0
    assert await eventually(lambda: len(device.messages) >= 2)
    assert isinstance(decode(Channel.COMMAND, device.messages[1][1]), ReloadConfig)
    agent_file = tmp_path / "agent.toml"
    agent_file.write_text(AGENT_TOML)
    code = await asyncio.to_thread(
        main, ["device", "--config", str(config_path), "push-config", "cam-1", str(agent_file)]
    )
    assert code == 0
    assert await eventually(lambda: len(device.messages) >= 3)
    assert isinstance(decode(Channel.COMMAND, device.messages[2][1]), PushConfig)
    assert [e.action for e in audit.query(db.conn, target="device:cam-1")][:2] == [
        "device.push-config",
        "device.reload-config",
    ]
    device.close()
