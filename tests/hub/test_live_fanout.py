"""Live notes across hub instances on one PostgreSQL store: two registries, each with the pages' bus on it, as
two instances have them; a real server (``tests/postgres.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hub_server.appkeys import DB_KEY, LIVE_KEY
from hub_server.ingest.fanout import LiveFanout, fanout_ctx
from hub_server.ingest.live import LiveRegistry
from hub_server.store import live_channel
from hub_server.store.db import Database, connect, migrate
from hub_server.web.live import LiveBus, LiveEvent, Subscription
from tests import postgres

SITE = "test-street"
WAIT_S = 10.0


@dataclass
class Instance:
    live: LiveRegistry
    bus: LiveBus
    fanout: LiveFanout


async def _instance(url: str) -> Instance:
    live, bus = LiveRegistry(), LiveBus()
    bus.attach(asyncio.get_running_loop())
    live.subscribe(bus.publish)  # as hub_server.web.site wires the pages to the registry
    fanout = LiveFanout(url, live, retry_s=0.2)
    await asyncio.to_thread(fanout.start)
    assert fanout.listening.is_set()
    return Instance(live, bus, fanout)


@pytest.fixture
def url() -> str:
    postgres.require()
    url = postgres.fresh_database()
    conn = connect(url)
    try:
        migrate(conn)
    finally:
        conn.close()
    return url


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    a = await _instance(url)
    b = await _instance(url)
    yield a, b
    for instance in (a, b):
        await asyncio.to_thread(instance.fanout.stop)
        instance.bus.close()


async def _next(sub: Subscription) -> LiveEvent:
    item = await asyncio.wait_for(sub.queue.get(), WAIT_S)
    assert isinstance(item, LiveEvent), item
    return item


async def _publish(instance: Instance, kind: str, **data: Any) -> None:
    # From a thread, as the ingest's result thread publishes.
    await asyncio.to_thread(instance.live.notify, kind, {"site": SITE, **data})


async def test_a_note_reaches_each_instance_once(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    async with a.bus.subscribe() as page_a, b.bus.subscribe() as page_b:
        await _publish(a, "flow", device="dev-a", n=1)
        assert (await _next(page_b)).data == {"site": SITE, "device": "dev-a", "n": 1}
        # Notifications arrive in commit order: each reply below is sent after the note before it was heard,
        # so a second copy of any earlier note would come before it.
        await _publish(b, "locker", device="dev-b", n=2)
        await _publish(b, "locker", device="dev-b", n=2)  # twice the same: still two notes, not one
        assert (await _next(page_a)).data["n"] == 1  # A's own note, from A
        assert [(await _next(page_a)).data["n"] for _ in range(2)] == [2, 2]
        await _publish(a, "alarm", device="dev-a", n=3)
        assert [(await _next(page_b)).data["n"] for _ in range(3)] == [2, 2, 3]
        assert (await _next(page_a)).data["n"] == 3
        await asyncio.sleep(0.5)  # a late duplicate (A hearing its own note back) would be queued by now
        assert page_a.queue.empty() and page_b.queue.empty()


async def test_a_note_too_long_for_a_notify_arrives_whole(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    text = "ÿ" * 12_000 + "end"  # 24 kB in UTF-8, three times what one NOTIFY carries
    cells = [{"line": "main", "count": n} for n in range(500)]
    async with b.bus.subscribe() as page_b:
        await _publish(a, "flow", device="dev-a", text=text, cells=cells)
        await _publish(a, "flow", device="dev-a", n=2)
        big = await _next(page_b)
        assert big.kind == "flow"
        assert big.data == {"site": SITE, "device": "dev-a", "text": text, "cells": cells}
        assert (await _next(page_b)).data["n"] == 2
        # Around the limit, where a note stops fitting one NOTIFY: every one arrives, in order.
        lengths = range(live_channel.MAX_PAYLOAD_BYTES - 150, live_channel.MAX_PAYLOAD_BYTES + 50, 10)
        for length in lengths:
            await _publish(a, "flow", device="dev-a", text="x" * length)
        assert [len((await _next(page_b)).data["text"]) for _ in lengths] == list(lengths)


def _terminate(url: str, *pids: int) -> None:
    import psycopg

    with psycopg.connect(postgres.ADMIN_URL, autocommit=True) as admin:
        database = url.rpartition("/")[2]
        if pids:
            query, params = "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(pids),)
        else:
            query = (
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            )
            params = (database,)
        admin.execute(query, params)


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_listening_survives_a_terminated_connection(url: str, pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    async with b.bus.subscribe() as page_b:
        old = b.fanout.listener_pid
        assert old is not None
        await asyncio.to_thread(_terminate, url, old)
        await _until(lambda: b.fanout.listener_pid != old and b.fanout.listening.is_set(), "B listens again")
        await _publish(a, "flow", device="dev-a", n=1)
        assert (await _next(page_b)).data["n"] == 1

        # Every connection of the database at once (A's sender too, and B's again): the first note after it
        # still goes, on a new connection.
        old = b.fanout.listener_pid
        await asyncio.to_thread(_terminate, url)
        await _until(lambda: b.fanout.listener_pid != old and b.fanout.listening.is_set(), "B listens again")
        await _publish(a, "flow", device="dev-a", n=2)
        assert (await _next(page_b)).data["n"] == 2
        assert a.fanout.dropped == 0


async def test_availability_from_another_instance_updates_the_registry(pair: tuple[Instance, Instance]) -> None:
    a, b = pair
    a.live.seen("dev-a", SITE, online=True)
    b.live.seen("dev-a", SITE, online=True)  # B heard the device earlier; A now hears it leave
    seen_before = b.live.get("dev-a")
    assert seen_before is not None
    async with b.bus.subscribe() as page_b:
        a.live.seen("dev-a", SITE, online=False)
        await _publish(a, "availability", device="dev-a", online=False, reason="will")
        assert (await _next(page_b)).kind == "availability"
    now = b.live.get("dev-a")
    assert now is not None and now.online is False
    assert now.last_seen == seen_before.last_seen  # B did not hear the device itself


async def test_the_app_context_fans_out_on_postgresql_only(url: str, tmp_path: Path) -> None:
    async def run(location: Path | str) -> tuple[LiveRegistry, Any]:
        app = web.Application()
        app[DB_KEY] = Database(location)
        app[LIVE_KEY] = LiveRegistry()
        context = fanout_ctx(app)
        await context.__anext__()
        return app[LIVE_KEY], context

    async def end(context: Any) -> None:
        with pytest.raises(StopAsyncIteration):
            await context.__anext__()

    sqlite_live, sqlite_context = await run(tmp_path / "hub.sqlite3")
    assert sqlite_live.relay is None  # one store file, one instance: nothing to fan out
    await end(sqlite_context)

    live_a, context_a = await run(url)
    live_b, context_b = await run(url)
    heard: list[tuple[str, dict[str, Any]]] = []
    live_b.subscribe(lambda kind, data: heard.append((kind, data)))
    live_a.notify("health", {"device": "dev-a", "site": SITE})
    await _until(lambda: bool(heard), "B hears A's note")
    assert heard == [("health", {"device": "dev-a", "site": SITE})]
    for context in (context_a, context_b):
        await end(context)
    assert live_a.relay is None
