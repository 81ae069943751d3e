"""Live notes across hub instances that share one PostgreSQL store.

Each instance's ingest publishes its notes to its own ``LiveRegistry``; with several instances each ingesting a
share of the devices' messages, a page served by one would never hear what another stored. ``LiveFanout``
sends every note published here on a PostgreSQL channel (``hub_server.store.live_channel``) and hands the
notes of the other instances to the local listeners, so every instance's pages, and its alarm and logistics
loops, hear every event. Each instance tags its notes with a random id and skips its own: local listeners hear
a note once. Notes from elsewhere about a device's availability or health also update the local registry,
which the pages read the device's state from.

Two threads, neither on the event loop: the sender drains a bounded queue (a publisher never waits for the
database); the listener waits on a connection of its own. A lost connection is logged once and retried every
``retry_s`` until it is back; notes sent while an instance was not listening are not replayed (an open page
catches up at its next event or reload). On SQLite nothing of this runs: one store file, one instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from hub_protocol.codec import decode
from hub_protocol.topics import Channel
from hub_server.ingest.live import LiveRegistry
from hub_server.store import live_channel
from hub_server.store.engine import Connection, OperationalError, connect, is_postgres

__all__ = ["LiveFanout", "fanout_ctx"]

log = logging.getLogger(__name__)

OUTBOX = 10_000
"""Notes waiting to be sent; beyond it they are dropped for the other instances (never blocking the ingest)."""
BATCH = 200
"""Notes per transaction: one commit sends them all."""
RETRY_S = 5.0


class LiveFanout:
    """``start()`` hooks into ``live`` and starts both threads; ``stop()`` undoes it."""

    def __init__(self, url: str, live: LiveRegistry, *, retry_s: float = RETRY_S) -> None:
        self.url = url
        self.live = live
        self.retry_s = retry_s
        self.instance = secrets.token_hex(8)
        self.listening = threading.Event()
        """Set while the listener's connection listens (cleared when it is lost)."""
        self.listener_pid: int | None = None
        self.dropped = 0
        self._outbox: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(OUTBOX)
        self._sequence = itertools.count()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._full_logged = False

    def start(self, timeout: float = 10.0) -> None:
        """Start; waits up to ``timeout`` for the listener to listen (it keeps trying after that)."""
        self._stopping.clear()
        for target, name in ((self._send_loop, "live-fanout-send"), (self._listen_loop, "live-fanout-listen")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.live.relay = self._relay
        if not self.listening.wait(timeout):
            log.warning("live fan-out: not listening yet; pages here miss other instances' events until it is")

    def stop(self, timeout: float = 10.0) -> None:
        self.live.relay = None
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # wakes the sender, which sends what was queued before it
            self._outbox.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    # -- sending -------------------------------------------------------------------------------------------

    def _relay(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self._outbox.put_nowait((kind, data))
        except queue.Full:
            self.dropped += 1
            if not self._full_logged:
                self._full_logged = True
                log.warning("live fan-out: %d notes waiting; dropping notes for the other instances", OUTBOX)

    def _send_loop(self) -> None:
        conn: Connection | None = None
        failing = False
        while True:
            try:
                first = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if self._stopping.is_set():
                    break
                continue
            batch = [first]
            while len(batch) < BATCH:
                try:
                    batch.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            notes = [note for note in batch if note is not None]
            try:
                if notes:
                    conn = self._send(conn, [self._outgoing(kind, data) for kind, data in notes])
                    self._full_logged = False
                if failing:
                    log.info("live fan-out: sending again")
                    failing = False
            except Exception:
                # The notes of this batch are lost for the other instances; the next batch goes on a new connection.
                if not failing:
                    log.exception("live fan-out could not send; retrying every %g s", self.retry_s)
                    failing = True
                if conn is not None:
                    _close(conn)
                    conn = None
                self._stopping.wait(self.retry_s)
            if None in batch:
                break
        if conn is not None:
            _close(conn)

    def _send(self, conn: Connection | None, notes: list[live_channel.Outgoing]) -> Connection:
        """Send on ``conn`` (None: a new connection); returns the connection to send on next time."""
        if conn is not None:
            try:
                live_channel.send(conn, notes, time.time())
                return conn
            except OperationalError:
                # Idle since the last batch, it may have been dropped by the server (a restart, a terminated
                # backend): nothing was sent then, so once more on a new connection.
                _close(conn)
        conn = connect(self.url)
        try:
            live_channel.send(conn, notes, time.time())
        except BaseException:
            _close(conn)
            raise
        return conn

    def _outgoing(self, kind: str, data: dict[str, Any]) -> live_channel.Outgoing:
        # The sequence number keeps two equal notes apart: PostgreSQL delivers equal payloads of one
        # transaction once.
        head = {"i": self.instance, "s": next(self._sequence), "k": kind}
        payload = json.dumps({**head, "d": data}, separators=(",", ":"), ensure_ascii=False, default=str)
        if len(payload.encode()) <= live_channel.MAX_PAYLOAD_BYTES:
            return live_channel.Outgoing(payload)
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
        short = {"device": str(data.get("device", ""))[:200], "site": str(data.get("site", ""))[:200]}

        def keyed(key: int) -> str:
            return json.dumps({**head, "n": key, "d": short}, separators=(",", ":"), ensure_ascii=False)

        return live_channel.Outgoing(keyed, body)

    # -- listening -----------------------------------------------------------------------------------------

    def _listen_loop(self) -> None:
        failing = False
        while not self._stopping.is_set():
            channel: live_channel.ChannelListener | None = None
            try:
                channel = live_channel.ChannelListener(self.url)
                self.listener_pid = channel.backend_pid
                self.listening.set()
                if failing:
                    log.info("live fan-out: listening again")
                    failing = False
                while not self._stopping.is_set():
                    for payload in channel.receive(1.0):
                        self._arrived(channel, payload)
            except Exception:
                self.listening.clear()
                if not failing:
                    log.exception("live fan-out: listening failed; reconnecting every %g s", self.retry_s)
                    failing = True
                self._stopping.wait(self.retry_s)
            finally:
                if channel is not None:
                    _close(channel)
        self.listening.clear()

    def _arrived(self, channel: live_channel.ChannelListener, payload: str) -> None:
        try:
            note = json.loads(payload)
            if note.get("i") == self.instance:
                return
            kind, data = str(note["k"]), dict(note.get("d") or {})
            if "n" in note:
                body = channel.kept(int(note["n"]))
                if body is not None:
                    data = json.loads(body)
            self._apply(kind, data)
            self.live.notify_here(kind, data)
        except Exception:  # one strange note must not end the listening
            log.exception("live fan-out: could not hand on a note (%.200s)", payload)

    def _apply(self, kind: str, data: dict[str, Any]) -> None:
        """What the pages read from the registry about a device, as the instance that heard it recorded it."""
        device, site = data.get("device"), data.get("site")
        if not isinstance(device, str) or not isinstance(site, str) or not device:
            return
        if kind == "availability" and isinstance(data.get("online"), bool):
            changes: dict[str, Any] = {"online": data["online"]}
            if isinstance(data.get("boot"), str):
                changes["boot"] = data["boot"]
            self.live.changed(device, site, **changes)
        elif kind == Channel.HEALTH.value:
            message = {key: value for key, value in data.items() if key != "site"}
            try:
                health = decode(Channel.HEALTH, json.dumps(message).encode())
            except Exception:
                return  # the note still goes to the pages; only the registry's figures stay as they were
            self.live.changed(device, site, health=health)


def _close(closable: Connection | live_channel.ChannelListener) -> None:
    try:
        closable.close()
    except Exception:
        log.debug("closing a live fan-out connection failed", exc_info=True)


async def fanout_ctx(app: Any) -> AsyncIterator[None]:
    """aiohttp cleanup context (``hub_server.app.BACKGROUND``): on a PostgreSQL store, fan live notes out."""
    from hub_server.appkeys import DB_KEY, LIVE_KEY

    location = app[DB_KEY].location
    if not is_postgres(location):
        yield
        return
    fanout = LiveFanout(str(location), app[LIVE_KEY])
    await asyncio.to_thread(fanout.start)
    try:
        yield
    finally:
        await asyncio.to_thread(fanout.stop)
