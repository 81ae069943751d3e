"""Live updates for open dashboard pages: a fan-out bus fed by the ingest, served as server-sent events.

The ingest calls :meth:`LiveBus.publish` (from any thread) after it stored something. Each open page holds
one subscription; a slow page never blocks the ingest: its queue is bounded and, once full, the page is told
to reload instead of receiving a partial picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

QUEUE_SIZE = 256
HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class LiveEvent:
    kind: str  # availability, health, flow, locker, alarm, register, delivery
    data: Mapping[str, Any]
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """What formatters read once for this event and every open page reuses (one object reaches every page)."""


class _Closed:
    """Sentinel: the server is shutting down."""


class _Overflow:
    """Sentinel: this subscriber fell behind and lost events."""


Item = LiveEvent | _Closed | _Overflow


@dataclass(eq=False)  # identity, not value: each open page is its own subscription
class Subscription:
    queue: asyncio.Queue[Item] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False


class LiveBus:
    """Thread-safe publish; subscriptions live on the event loop that serves the pages."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.closed = False

    def publish(self, kind: str, data: Mapping[str, Any]) -> None:
        """Hand an event to every open page; safe to call from the ingest's thread or the loop itself."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        event = LiveEvent(kind, dict(data))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._fan_out(event)
        else:
            with contextlib.suppress(RuntimeError):  # loop closed between the check and the call
                loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: LiveEvent) -> None:
        for sub in list(self._subs):
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.overflowed = True
                # Make room for the overflow notice; the page reloads anyway.
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()
                sub.queue.put_nowait(_Overflow())

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription()
        with self._lock:
            self._subs.add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subs.discard(sub)

    def close(self) -> None:
        """Tell every open stream to end (at shutdown, so the server does not wait on them)."""
        self.closed = True
        for sub in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(_Closed())


Formatter = Callable[[LiveEvent], Awaitable[dict[str, Any] | None]]
"""Turns a raw event into what one page shows (in its reader's language); None = nothing for this page."""


def sse_message(event: str, data: Mapping[str, Any], event_id: int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    # json.dumps never emits a raw newline, so one data line always suffices.
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


async def stream(request: web.Request, bus: LiveBus, formatter: Formatter) -> web.StreamResponse:
    """Serve one event stream until the client leaves or the server stops."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not buffer the stream
        }
    )
    await response.prepare(request)
    await response.write(b"retry: 3000\n\n")
    if bus.closed:
        return response
    number = 0
    async with bus.subscribe() as sub:
        await response.write(sse_message("hello", {"subscribers": bus.subscribers}))
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):  # not wait_for: on 3.11 it can swallow a cancel
                    item = await sub.queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if isinstance(item, _Closed):
                break
            if isinstance(item, _Overflow):
                await response.write(sse_message("reload", {}))
                break
            update = await formatter(item)
            if update is None:
                continue
            number += 1
            await response.write(sse_message("update", update, number))
    return response
