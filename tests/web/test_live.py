"""The live bus and its event stream, over a real aiohttp server and a real HTTP client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub_server.web import live
from hub_server.web.live import LiveBus, LiveEvent


async def _read_events(resp: aiohttp.ClientResponse, count: int) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "", ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and name:
            events.append((name, json.loads(data)))
            name, data = "", ""
            if len(events) == count:
                break
    return events


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, LiveBus]]:
    bus = LiveBus()

    async def formatter(event: LiveEvent) -> dict[str, Any] | None:
        if event.kind == "ignored":
            return None
        return {"kind": event.kind, **event.data}

    async def handler(request: web.Request) -> web.StreamResponse:
        return await live.stream(request, bus, formatter)

    app = web.Application()
    app.router.add_get("/live", handler)

    async def shutdown(app: web.Application) -> None:
        bus.close()

    app.on_shutdown.append(shutdown)
    srv = TestServer(app)
    await srv.start_server()
    bus.attach(asyncio.get_running_loop())
    yield srv, bus
    await srv.close()


async def test_events_published_from_another_thread_reach_the_page(
    server: tuple[TestServer, LiveBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv, bus = server
    monkeypatch.setattr(live, "HEARTBEAT_S", 0.1)  # a closed page is noticed at the next keep-alive write
    async with aiohttp.ClientSession() as session, session.get(srv.make_url("/live")) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Cache-Control"].startswith("no-cache")
        hello = await asyncio.wait_for(_read_events(resp, 1), 5)
        assert hello[0][0] == "hello"

        def ingest_thread() -> None:
            bus.publish("ignored", {"device": "dev-a"})
            bus.publish("flow", {"device": "dev-a", "n": 1})
            bus.publish("availability", {"device": "dev-b", "text": "line\nbreak"})

        thread = threading.Thread(target=ingest_thread)
        thread.start()
        thread.join()
        events = await asyncio.wait_for(_read_events(resp, 2), 5)
    assert events == [
        ("update", {"kind": "flow", "device": "dev-a", "n": 1}),
        ("update", {"kind": "availability", "device": "dev-b", "text": "line\nbreak"}),
    ]
    for _ in range(50):
        if bus.subscribers == 0:
            break
        await asyncio.sleep(0.1)
    assert bus.subscribers == 0  # the subscription ended with the connection


async def test_a_page_that_falls_behind_is_told_to_reload(server: tuple[TestServer, LiveBus]) -> None:
    _srv, bus = server
    async with bus.subscribe() as sub:
        for i in range(live.QUEUE_SIZE + 10):
            bus.publish("flow", {"i": i})
        assert sub.overflowed
        items = []
        while not sub.queue.empty():
            items.append(sub.queue.get_nowait())
    assert len(items) == live.QUEUE_SIZE
    assert not isinstance(items[-1], LiveEvent)  # the last item is the overflow notice
    assert all(isinstance(item, LiveEvent) for item in items[:-1])


async def test_shutdown_ends_open_streams(server: tuple[TestServer, LiveBus]) -> None:
    srv, bus = server
    async with aiohttp.ClientSession() as session, session.get(srv.make_url("/live")) as resp:
        await asyncio.wait_for(_read_events(resp, 1), 5)
        bus.close()
        rest = await asyncio.wait_for(resp.content.read(), 5)  # returns only because the server ended the stream
    assert rest == b""


def test_message_framing_is_one_data_line() -> None:
    raw = live.sse_message("update", {"a": "x\ny"}, 7).decode()
    assert raw == 'id: 7\nevent: update\ndata: {"a":"x\\ny"}\n\n'


def test_publish_before_the_loop_is_attached_is_dropped() -> None:
    bus = LiveBus()
    bus.publish("flow", {"device": "dev-a"})  # no loop yet: nothing to deliver to, and no error
    assert bus.subscribers == 0
