"""What the hub knows right now about each device, filled by the ingest, read by the API and the pages.

Kept in memory: it is rebuilt from retained ``status``/``health`` messages within seconds of a restart. Listeners
get every change (for live pages); ``notify`` may be called from any thread. With several instances on one
PostgreSQL store, ``relay`` also hands each note to the other instances (``hub_server.ingest.fanout``), whose
notes come in through ``notify_here``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from hub_protocol.envelope import Health

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
"""``listener(kind, data)``: kind is e.g. ``availability``, ``health``, ``flow``, ``locker``, ``alarm``."""


@dataclass(frozen=True, slots=True)
class DeviceLive:
    device: str
    site: str
    online: bool | None = None
    boot: str | None = None
    last_seen: datetime | None = None
    health: Health | None = None


@dataclass
class LiveRegistry:
    devices: dict[str, DeviceLive] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    broker_connected: bool | None = None  # set by the ingest; None while it does not run
    relay: Listener | None = None
    """Called with every note published here (not with those from other instances); must not block."""
    _listeners: list[tuple[Listener, asyncio.AbstractEventLoop | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def is_revoked(self, device: str) -> bool:
        """The ingest drops every message of a revoked device (the broker refuses it too, this is the second lock)."""
        return device in self.revoked

    def seen(self, device: str, site: str, *, at: datetime | None = None, **changes: Any) -> DeviceLive:
        """Record a message from ``device``; ``changes`` sets ``online``, ``boot`` or ``health``."""
        with self._lock:
            current = self.devices.get(device) or DeviceLive(device, site)
            updated = replace(current, site=site, last_seen=at or datetime.now(UTC), **changes)
            self.devices[device] = updated
            return updated

    def changed(self, device: str, site: str, **changes: Any) -> DeviceLive:
        """Record what another instance heard from ``device`` (``online``, ``boot``, ``health``); its last
        message time stays as this instance knows it."""
        with self._lock:
            current = self.devices.get(device) or DeviceLive(device, site)
            updated = replace(current, site=site, **changes)
            self.devices[device] = updated
            return updated

    def snapshot(self) -> list[DeviceLive]:
        with self._lock:
            return sorted(self.devices.values(), key=lambda d: d.device)

    def get(self, device: str) -> DeviceLive | None:
        with self._lock:
            return self.devices.get(device)

    def subscribe(self, listener: Listener, loop: asyncio.AbstractEventLoop | None = None) -> Callable[[], None]:
        """Add a listener; with ``loop`` it is called in that loop's thread. Returns the unsubscribe function."""
        entry = (listener, loop)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    def notify(self, kind: str, data: dict[str, Any]) -> None:
        """Tell this instance's listeners, and through ``relay`` the other instances'."""
        self.notify_here(kind, data)
        relay = self.relay
        if relay is not None:
            try:
                relay(kind, data)
            except Exception:  # the other instances' pages are a bonus; the ingest goes on
                log.exception("live relay failed on %s", kind)

    def notify_here(self, kind: str, data: dict[str, Any]) -> None:
        """Tell this instance's listeners only (a note another instance published)."""
        with self._lock:
            listeners = list(self._listeners)
        for listener, loop in listeners:
            try:
                if loop is None:
                    listener(kind, data)
                elif not loop.is_closed():
                    loop.call_soon_threadsafe(listener, kind, data)
            except Exception:  # one broken listener must not stop the ingest
                log.exception("live listener failed on %s", kind)


def wake_on(live: LiveRegistry, wake: asyncio.Event, kinds: set[str]) -> Callable[[], None]:
    """Set ``wake`` whenever the live bus carries one of ``kinds`` (not for the alarms' own notices)."""

    def listener(kind: str, data: dict[str, Any]) -> None:
        if kind in kinds and data.get("origin") != "hub-alarms":
            wake.set()

    return live.subscribe(listener, asyncio.get_running_loop())


async def run_rounds(
    work: Callable[[], Awaitable[object]],
    wake: asyncio.Event,
    interval_s: float,
    what: str,
    logger: logging.Logger,
    *,
    min_gap_s: float = 0.0,
) -> None:
    """A background loop: ``work`` now, then whenever ``wake`` is set (by ``wake_on``) or ``interval_s`` passed. A
    failed round is logged on ``logger`` and the next one comes; only cancelling ends it. With ``min_gap_s`` a
    round starts at least that long after the one before: what wakes it meanwhile is looked at together."""
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s failed; trying again next round", what)
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that comes as the event is
        # set, and a loop woken all the time (a busy fleet) then never stops.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval_s):
                await wake.wait()
        if (rest := started + min_gap_s - loop.time()) > 0:
            await asyncio.sleep(rest)
        wake.clear()
