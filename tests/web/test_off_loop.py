"""The pages never wait for the store on the event loop, and a live update is read once for every open page.

The ``db`` fixture refuses a store call made by a handler on the loop, so every page test proves that too;
these tests show what it buys: a page stuck behind a long write does not hold up the others.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_server.app import create_app
from hub_server.appkeys import LIVE_KEY
from hub_server.config import HubConfig
from hub_server.store import provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from hub_server.web.context import WEB_KEY
from hub_server.web.model import AlarmView, DeviceStatus
from hub_server.web.sources import HubSource
from tests.hub.conftest import ClientFactory, add_user
from tests.web.test_pages import _csrf, log_in


class CountingSource(HubSource):
    """The real source, counting its costly reads and the threads they run on."""

    def __init__(self, app: web.Application) -> None:
        super().__init__(app)
        self.reads: dict[str, int] = {"devices": 0, "alarms": 0, "flow_sums": 0}
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._lock:
            self.reads[name] += 1
            self.threads.add(threading.get_ident())

    def devices(self) -> list[DeviceStatus]:
        self._count("devices")
        return super().devices()

    def alarms(self, active_only: bool = False, limit: int = 200, device: str | None = None) -> list[AlarmView]:
        self._count("alarms")
        return super().alarms(active_only, limit, device)

    def flow_sums(
        self, since: datetime, until: datetime, device: str | None = None, *, protected_only: bool = False
    ) -> Any:
        self._count("flow_sums")
        return super().flow_sums(since, until, device, protected_only=protected_only)


@pytest.fixture
async def counted(
    hub_config: HubConfig, db: Database, aiohttp_client: ClientFactory
) -> tuple[TestClient[Any, Any], web.Application, CountingSource]:
    add_user(db, "olga", Role.OPERATOR)
    with db.write() as conn:
        provisioning.add(conn, "dev-a", "test-street", "dev-a", "test")
    app = create_app(hub_config, database=db, background=False)
    source = CountingSource(app)
    app[WEB_KEY].source = source
    return await aiohttp_client(app), app, source


async def test_a_page_waiting_for_the_store_does_not_hold_up_other_pages(
    counted: tuple[TestClient[Any, Any], web.Application, CountingSource], db: Database
) -> None:
    client, _, _ = counted
    await log_in(client, "olga")
    token = await _csrf(client, "/dashboard/deliveries")
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, bool] = {}

    def long_write() -> None:
        # Another writer's long transaction (a retention run, a provisioning): the delivery below waits for it.
        with db.write():
            holding.set()
            # Released by the test once the other page answered; the timeout only ends a blocked loop's wait.
            outcome["released_by_test"] = release.wait(60)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert holding.wait(10)
    form = {"csrf_token": token, "device": "dev-a", "size": "M", "resident_name": "Ada", "kind": "delivery"}
    waiting = asyncio.ensure_future(client.post("/dashboard/deliveries", data=form, allow_redirects=False))
    await asyncio.sleep(0.5)  # the delivery reaches the write and waits
    other = await client.get("/dashboard/alarms")
    assert other.status == 200
    assert not waiting.done(), "the delivery went through while another write held the store"
    release.set()
    writer.join(10)
    assert outcome["released_by_test"], "the loop was blocked until the long write gave up"
    created = await asyncio.wait_for(waiting, 30)
    assert created.status == 409  # dev-a has no compartments: refused with a reason, after the write ended


async def _next_update(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    name = ""
    async for raw in stream.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == "update":
            data: dict[str, Any] = json.loads(line[6:])
            return data
    raise AssertionError("the stream ended without an update")


async def test_a_live_update_is_read_once_and_shared_by_every_open_page(
    counted: tuple[TestClient[Any, Any], web.Application, CountingSource],
) -> None:
    client, app, source = counted
    await log_in(client, "olga")
    languages = ["en", "de", "nl", "en"]
    streams = [await client.get(f"/live?lang={lang}") for lang in languages]
    try:
        for stream in streams:
            assert (await stream.content.readuntil(b"\n\n")) == b"retry: 3000\n\n"
            assert (await stream.content.readuntil(b"\n\n")).startswith(b"event: hello")
        before = dict(source.reads)
        app[LIVE_KEY].notify("availability", {"device": "dev-a"})
        availability = await asyncio.wait_for(asyncio.gather(*(_next_update(s) for s in streams)), 30)
        app[LIVE_KEY].notify("flow", {"device": "dev-a"})
        flow = await asyncio.wait_for(asyncio.gather(*(_next_update(s) for s in streams)), 30)
    finally:
        for stream in streams:
            stream.close()
    assert all(u["kind"] == "availability" and "status-dev-a" in u["text"] for u in availability)
    assert all(u["kind"] == "flow" and "today-dev-a" in u["text"] for u in flow)
    # Each page in its own language, from one read per event.
    assert availability[0]["announce"] != availability[1]["announce"]
    assert source.reads["devices"] - before["devices"] == 2
    assert source.reads["flow_sums"] - before["flow_sums"] == 1
    assert threading.get_ident() not in source.threads  # every read ran on a worker thread, not the loop
