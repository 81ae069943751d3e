"""MQTT ingest as the hub runs it: messages in, acks out, handlers and live pages told what changed.

The MQTT client (``hub_server.ingest.mqtt``) feeds every message into small batches; the single writer
(``hub_server.ingest.writer.IngestCore``) runs in a process of its own, because validation is CPU work that
would otherwise compete with the MQTT client for the interpreter, and stores them; its results come back here
as acks to publish, handler calls and live notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub_protocol.codec import decode, encode
from hub_protocol.commands import CommandBase
from hub_protocol.envelope import AvailabilityState, Health
from hub_protocol.secrets import read_secret
from hub_protocol.topics import Channel, device_topic
from hub_server.config import HubMqttConfig, IngestConfig
from hub_server.ingest.live import LiveRegistry
from hub_server.ingest.mqtt import HubMqtt
from hub_server.ingest.watermarks import BootState
from hub_server.ingest.writer import (
    BROKER_RESTART,
    DEVICE_CHANNEL_VALUES,
    IngestCore,
    Message,
    Note,
    writer_main,
)
from hub_server.store import provisioning
from hub_server.store.db import connect, migrate

__all__ = ["BootState", "Ingest", "IngestCore", "IngestStats", "ingest_ctx", "ingest_of"]

log = logging.getLogger(__name__)

COMMAND_CONFIRM_S = 5.0
"""How long a command waits for the broker's PUBACK before it counts as not sent (the caller may resend it)."""
MAX_BATCH = 2_000
"""Messages per hand-over: pickling a bigger batch holds the interpreter long enough to delay the MQTT thread's
acknowledgements to the broker, which then holds back further messages."""

LINGER_S = 0.01

SLOTS = 8
"""Hand-overs in the writer's pipe at once; they queue while it syncs and are committed together."""

MAX_PENDING = 500_000
"""Messages received and not yet handed to the writer; beyond it the hub refuses (devices resend), never grows."""


Handler = Callable[[str, BaseModel], None]
"""``handler(site, model)`` for every newly stored non-flow event, availability change and health message."""

LIVE_KINDS = {Channel.STATUS.value: "availability", "silent": "availability", BROKER_RESTART: "availability"}
"""Note kinds that live listeners know by another name; every other kind (a channel name, ``sequence-gap``) is
kept."""


@dataclass(frozen=True, slots=True)
class IngestStats:
    received: int
    stored: int
    duplicates: int
    invalid: int
    batches: int
    throttled: int
    """Messages skipped unread because their device had spent its budget of bad traffic (not acknowledged)."""
    revoked_dropped: int
    overflow_dropped: int
    errors: int


class Ingest:
    """``Ingest(db_path, mqtt_config, settings).start()``; ``stop()``; ``feed(topic, payload)`` is the entry."""

    def __init__(
        self,
        db_path: Path | str,
        mqtt_config: HubMqttConfig,
        settings: IngestConfig | None = None,
        *,
        live: LiveRegistry | None = None,
        password: str | None = None,
    ) -> None:
        self.db_path = db_path  # a SQLite file or a PostgreSQL URL
        self.mqtt_config = mqtt_config
        self.settings = settings or IngestConfig()
        self.live = live
        self._password = password
        self._handlers: list[Handler] = []
        self._pending: deque[Message] = deque()
        self._wake = threading.Event()
        self._slots = threading.Semaphore(SLOTS)
        self._outstanding = 0
        self._idle = threading.Condition()
        self._sites: dict[str, str] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._worker: Any = None
        self._to_writer: Connection | None = None
        self._from_writer: Connection | None = None
        self._counters = (0, 0, 0, 0, 0, 0)
        self._revoked_dropped = 0
        self._overflow = 0
        self._errors = 0
        self.mqtt: HubMqtt | None = None

    # -- wiring ------------------------------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> None:
        """Called in the ingest's result thread; must be quick and must not raise (errors are logged)."""
        self._handlers.append(handler)

    def start(self, timeout: float = 60.0) -> None:
        password = self._password or read_secret(self.mqtt_config.password_file, "mqtt.password_file")
        conn = connect(self.db_path)
        try:
            migrate(conn)  # the writer expects the schema; usually the app's Database did this already
        finally:
            conn.close()
        self._start_writer(timeout)
        for target, name in ((self._forward, "ingest-forward"), (self._receive, "ingest-results")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.mqtt = HubMqtt(
            self.mqtt_config,
            password,
            self.settings.client_id,
            self.feed,
            on_connection=self._on_connection,
            shared_group=self.settings.shared_group,
        )
        self.mqtt.start()

    def _start_writer(self, timeout: float) -> None:
        a_recv, a_send = multiprocessing.Pipe(duplex=False)
        b_recv, b_send = multiprocessing.Pipe(duplex=False)
        args = (a_recv, b_send, str(self.db_path), self.mqtt_config.prefix, self.settings.model_dump_json())
        if self.settings.writer_process:
            ctx = multiprocessing.get_context("spawn")  # no fork of a threaded process
            self._worker = ctx.Process(target=writer_main, args=args, name="hub-ingest-writer", daemon=True)
        else:
            self._worker = threading.Thread(target=writer_main, args=args, name="hub-ingest-writer", daemon=True)
        self._worker.start()
        if not b_recv.poll(timeout):
            raise RuntimeError("the ingest writer did not start")
        ready = b_recv.recv()
        self._sites.update(ready[1])
        self._to_writer, self._from_writer = a_send, b_recv

    def _restart_writer(self) -> None:
        """The writer died (a crash, the OOM killer): start another. What it held was never acknowledged."""
        self._errors += 1
        old = self._slots
        self._slots = threading.Semaphore(SLOTS)
        with self._idle:
            self._outstanding = 0
            self._idle.notify_all()
        old.release()  # a forwarder waiting on the old slots goes on with the new writer
        while not self._stopping.is_set():
            try:
                self._start_writer(60.0)
                log.warning("ingest writer restarted")
                return
            except Exception:
                log.exception("could not restart the ingest writer; retrying")
                time.sleep(5)

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect, store what arrived, stop the writer. Unacknowledged messages come again from devices."""
        if self.mqtt is not None:
            self.mqtt.stop()
        self.flush(timeout)
        self._stopping.set()
        self._wake.set()
        for thread in self._threads[:1]:
            thread.join(timeout)
        if self._to_writer is not None:
            with contextlib.suppress(OSError):
                self._to_writer.send(("stop",))
        for thread in self._threads[1:]:
            thread.join(timeout)
        if self._worker is not None:
            self._worker.join(timeout)
        self._threads = []

    def feed(self, topic: str, payload: bytes, received_at: float | None = None) -> None:
        """One message as received from the broker (any thread)."""
        live = self.live
        if live is not None and live.revoked:
            parts = topic.split("/")
            if len(parts) >= 2 and parts[-2] in live.revoked:
                self._revoked_dropped += 1
                return
        if len(self._pending) >= MAX_PENDING:
            self._overflow += 1  # never acknowledged: the devices send it again later
            return
        self._pending.append((topic, payload, received_at if received_at is not None else time.time()))
        if not self._wake.is_set():  # setting an Event takes a lock: once per batch is enough
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything fed so far is stored; True if it was within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending or self._outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    def stats(self) -> IngestStats:
        return IngestStats(*self._counters, self._revoked_dropped, self._overflow, self._errors)

    def site_of(self, device: str) -> str | None:
        return self._sites.get(device)

    def publish_command(self, command: CommandBase) -> None:
        """QoS 1 on the device's ``cmd`` topic, returning once the broker acknowledged it (PUBACK); raises
        LookupError for a device never heard of, RuntimeError offline or without the broker's acknowledgement.
        Blocks up to ``COMMAND_CONFIRM_S``: call it from a worker thread."""
        site = self._sites.get(command.device) or _provisioned_site(self.db_path, command.device)
        if site is None:
            raise LookupError(f"device {command.device} has never connected and is not provisioned")
        if self.mqtt is None or not self.mqtt.connected:
            raise RuntimeError("the hub is not connected to the broker")
        topic = device_topic(self.mqtt_config.prefix, site, command.device, Channel.COMMAND)
        if not self.mqtt.publish(topic, encode(command), qos=1, confirm_s=COMMAND_CONFIRM_S):
            # paho may still deliver it after a reconnect: commands carry an id and expiry, so a resend or a
            # late copy does nothing twice.
            raise RuntimeError(f"the broker did not acknowledge the command within {COMMAND_CONFIRM_S:g} s")

    # -- threads -----------------------------------------------------------------------------------------

    def _forward(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if 0 < len(self._pending) < MAX_BATCH:
                # Linger a moment so a burst goes over in few hand-overs: each one costs the MQTT thread
                # interpreter switches, and a broker that waits for its PUBACKs slows down.
                time.sleep(LINGER_S)
            while self._pending and not self._stopping.is_set():
                slots = self._slots
                if not slots.acquire(timeout=0.5):
                    continue
                batch: list[Message] = []
                pending = self._pending
                while pending and len(batch) < MAX_BATCH:
                    batch.append(pending.popleft())
                with self._idle:
                    self._outstanding += 1
                try:
                    assert self._to_writer is not None
                    self._to_writer.send(("batch", batch))
                except (OSError, ValueError):
                    # The writer is gone; the result thread restarts it. The batch was never acknowledged.
                    log.error("ingest writer unreachable: %d messages left to the devices' resending", len(batch))
                    slots.release()
                    with self._idle:
                        self._outstanding = max(0, self._outstanding - 1)
                        self._idle.notify_all()
                    time.sleep(0.2)

    def _receive(self) -> None:
        while True:
            try:
                assert self._from_writer is not None
                message = self._from_writer.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                log.error("the ingest writer ended unexpectedly")
                self._restart_writer()
                continue
            kind = message[0]
            if kind == "stopped":
                self._counters = message[1]
                return
            if kind == "error":
                self._errors += 1
                self._done(message[2])
                continue
            _, acks, notes, seen, counters, size = message
            self._counters = counters
            if self.mqtt is not None:
                for topic, payload in acks:
                    self.mqtt.publish(topic, payload, qos=1)
            for device, site, last_seen, online in seen:
                self._sites[device] = site
                if self.live is not None:
                    self.live.seen(device, site, at=datetime.fromtimestamp(last_seen, UTC), online=online)
            for note in notes:
                self._dispatch(note)
            self._done(size)

    def _done(self, chunks: int) -> None:
        if chunks:
            for _ in range(chunks):
                self._slots.release()
            with self._idle:
                self._outstanding = max(0, self._outstanding - chunks)
                self._idle.notify_all()

    def _dispatch(self, note: Note) -> None:
        kind, site, device, text = note
        try:
            data: dict[str, Any] = json.loads(text) if text else {}
            model: BaseModel | None = None
            if kind in DEVICE_CHANNEL_VALUES and kind != Channel.FLOW.value:
                model = decode(Channel(kind), text.encode())
            live = self.live
            if kind == Channel.STATUS.value:
                online = data.get("state") == AvailabilityState.ONLINE.value
                data = {
                    **data,
                    "online": online,
                    "reason": None if online else ("graceful" if data.get("graceful") else "will"),
                }
                if live is not None:
                    live.seen(device, site, online=online, boot=data.get("boot"))
            elif kind in ("silent", BROKER_RESTART):
                data = {"device": device, "online": False, "reason": kind}
            elif kind == Channel.HEALTH.value and live is not None and isinstance(model, Health):
                live.seen(device, site, health=model)
            if model is not None:
                for handler in self._handlers:
                    try:
                        handler(site, model)
                    except Exception:
                        log.exception("ingest handler %r failed on %s", handler, kind)
            if live is not None:
                live.notify(LIVE_KINDS.get(kind, kind), {**data, "device": device, "site": site})
        except Exception:
            log.exception("could not dispatch a %s note", kind)

    def _on_connection(self, connected: bool) -> None:
        if self.live is not None:
            self.live.broker_connected = connected


def _provisioned_site(db_path: Path | str, device: str) -> str | None:
    """Heard-from devices are in ``Ingest._sites`` already; a provisioned one may not have connected yet."""
    conn = connect(db_path)
    try:
        record = provisioning.get(conn, device)
    finally:
        conn.close()
    return record.site if record is not None else None


async def ingest_ctx(app: Any) -> AsyncIterator[None]:
    """aiohttp cleanup context (see ``hub_server.app.BACKGROUND``): runs the ingest with the app."""
    from hub_server.appkeys import CONFIG_KEY, DB_KEY, LIVE_KEY

    config = app[CONFIG_KEY]
    ingest = Ingest(app[DB_KEY].location, config.mqtt, config.ingest, live=app[LIVE_KEY])
    INGESTS[id(app)] = ingest
    await asyncio.to_thread(ingest.start)
    try:
        yield
    finally:
        await asyncio.to_thread(ingest.stop)
        INGESTS.pop(id(app), None)


INGESTS: dict[int, Ingest] = {}
"""The running ingest of each app (by ``id(app)``), for code that must publish commands: ``ingest_of(app)``."""


def ingest_of(app: Any) -> Ingest | None:
    return INGESTS.get(id(app))
