"""The whole hub on a real broker: a device's events reach the API once; a revoked device is ignored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub_protocol.codec import encode
from hub_protocol.envelope import Availability, AvailabilityState
from hub_protocol.flows import FlowCell, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.topics import Channel, device_topic
from hub_server.app import LIVE_KEY, create_app
from hub_server.config import HubConfig
from hub_server.store import provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, write_secret
from tests.hub.conftest import add_token, hub_config_data
from tests.hub.mqtt_probe import Probe

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)


def window(device: str, seq: int, count: int | None, policy: PolicyKind = PolicyKind.THRESHOLD) -> FlowWindow:
    return FlowWindow(
        device=device,
        boot="boot-1",
        seq=seq,
        window_start=START + timedelta(minutes=15 * seq),
        window_seconds=900,
        cells=[
            FlowCell(line="door", direction="in", object_class="pedestrian", count=count),
            FlowCell(
                line="door",
                direction="out",
                object_class="pedestrian",
                count=None if policy is PolicyKind.THRESHOLD else 0,
            ),
        ],
        quality=WindowQuality(observed_fraction=1.0, mean_fps=8.0, dropped_frames=0),
        policy=PrivacyPolicy(kind=policy, k=5) if policy is PolicyKind.THRESHOLD else PrivacyPolicy(kind=policy),
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return await check()


@pytest.mark.timeout(90)
async def test_events_reach_the_api_once_and_revoked_devices_are_ignored(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup], aiohttp_client: Any
) -> None:
    broker = make_broker(devices=("cam-1", "cam-2"))
    data = hub_config_data(tmp_path / "hub", mqtt={"port": broker.port}, ingest={"writer_process": False})
    write_secret(Path(data["mqtt"]["password_file"]), broker.hub_password)
    config = HubConfig.model_validate(data)
    db = Database(config.store.location)
    viewer = {"Authorization": f"Bearer {add_token(db, Role.VIEWER)}"}
    client: TestClient[Any, Any] = await aiohttp_client(create_app(config, database=db, pages=False))

    async def health_says_connected() -> bool:
        return bool((await (await client.get("/api/v1/health")).json())["broker_connected"])

    assert await eventually(health_says_connected)

    cam = Probe(broker.host, broker.port, "cam-1", broker.device_passwords["cam-1"])
    assert cam.connect()
    status = Availability(device="cam-1", boot="boot-1", state=AvailabilityState.ONLINE)
    cam.client.publish(device_topic(broker.prefix, broker.site, "cam-1", Channel.STATUS), encode(status), 1, True)
    flow_topic = device_topic(broker.prefix, broker.site, "cam-1", Channel.FLOW)
    first = encode(window("cam-1", 1, 17))
    for payload in (first, first, encode(window("cam-1", 2, 9)), first):  # a resend after a lost ack
        assert not cam.publish(flow_topic, payload).is_failure
    cam.publish(flow_topic, encode(window("cam-1", 3, 4, PolicyKind.NONE)))

    params = {"since": START.isoformat(), "until": (START + timedelta(hours=2)).isoformat(), "device": "cam-1"}

    async def three_windows() -> bool:
        cells = await (await client.get("/api/v1/flows", params=params, headers=viewer)).json()
        return len(cells) == 6

    assert await eventually(three_windows)
    cells = await (await client.get("/api/v1/flows", params=params, headers=viewer)).json()
    counts = [c["count"] for c in cells if c["direction"] == "in"]
    assert counts == [17, 9, 4]  # the duplicates were stored once
    public = await (await client.get("/api/v1/open/flows", params=params)).json()
    assert [c["count"] for c in public if c["direction"] == "in"] == [17, 9]  # unprotected window left out
    devices = await (await client.get("/api/v1/devices", headers=viewer)).json()
    assert [(d["device"], d["online"], d["boot"]) for d in devices] == [("cam-1", True, "boot-1")]

    # Second lock: a device marked revoked at the hub is ignored even while the broker still lets it in.
    with db.write() as conn:
        provisioning.add(conn, "cam-2", broker.site, "cam-2", "test")
        provisioning.revoke(conn, "cam-2")
    live = client.app[LIVE_KEY]

    async def hub_knows_revocation() -> bool:
        return live.is_revoked("cam-2")

    assert await eventually(hub_knows_revocation, timeout=10)
    rogue = Probe(broker.host, broker.port, "cam-2", broker.device_passwords["cam-2"])
    assert rogue.connect()
    assert not rogue.publish(
        device_topic(broker.prefix, broker.site, "cam-2", Channel.FLOW), encode(window("cam-2", 1, 50))
    ).is_failure
    assert not cam.publish(flow_topic, encode(window("cam-1", 4, 6))).is_failure  # after it: proves the ingest ran

    async def fourth_window() -> bool:
        cells = await (await client.get("/api/v1/flows", params=params, headers=viewer)).json()
        return len(cells) == 8

    assert await eventually(fourth_window)
    rogue_params = {**params, "device": "cam-2"}
    assert await (await client.get("/api/v1/flows", params=rogue_params, headers=viewer)).json() == []
    rogue.close()
    cam.close()
