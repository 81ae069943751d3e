"""The device's MQTT link: one paho client per connection, run in its own thread.

Why a fresh client per connection: with a clean session paho re-sends its in-memory QoS 1 queue on
reconnect, while the outbox already re-sends everything unacknowledged; one source of truth (the outbox)
keeps the duplicates to what the protocol needs. The broker's PUBACK only frees an in-flight slot; rows
leave the outbox when the hub's ``ack`` arrives.

Flow control: at most ``max_inflight`` events await a PUBACK, and at most ``window`` events are sent but
not yet acknowledged by the hub. When the hub's watermark stops moving (``resend.py``: silent for
``ack_timeout_s``, or acknowledging newer events for ``ack_stall_s`` without the older ones) the window is sent
again from its start; the hub re-acknowledges duplicates, so repetition is harmless and loss is impossible.

Faults: every paho callback is guarded (paho re-raises a callback's exception out of ``loop()``, which
would end the thread while the link still looked connected), the thread's loop survives any exception,
and ``alive()`` tells a supervisor when the thread stopped turning; ``revive()`` starts a fresh one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.guard import guarded
from edge_agent.progress import Heartbeat
from edge_agent.transport.config import MqttConfig
from edge_agent.transport.outbox import Outbox
from edge_agent.transport.resend import ResendTimer
from hub_protocol.backoff import Backoff
from hub_protocol.codec import ProtocolError, decode, encode
from hub_protocol.envelope import Ack, Availability, AvailabilityState
from hub_protocol.topics import Channel, device_topic

log = logging.getLogger(__name__)

_LOOP_TICK_S = 0.05


@dataclass(frozen=True, slots=True)
class Identity:
    device: str
    site: str
    boot: str
    username: str
    password: str


@dataclass(slots=True)
class LinkStats:
    connects: int = 0
    published: int = 0
    resends: int = 0
    acks: int = 0


class MqttLink:
    """Publishes the outbox in order and applies the hub's acks; also carries health and commands."""

    def __init__(
        self,
        config: MqttConfig,
        identity: Identity,
        outbox: Outbox,
        on_command: Callable[[bytes], None],
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.outbox = outbox
        self.on_command = on_command
        self.backoff = backoff or Backoff(config.reconnect_min_s, config.reconnect_max_s)
        self.stats = LinkStats()
        self._topics = {ch: device_topic(config.prefix, identity.site, identity.device, ch) for ch in Channel}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0  # a revived link's old thread, should it wake up, sees it is no longer current
        self._heart = Heartbeat()
        self._connected = threading.Event()
        self._extra: deque[tuple[Channel, bytes, int, bool]] = deque(maxlen=100)
        self._retained: dict[Channel, bytes] = {}
        self._lock = threading.Lock()
        # Per connection, touched only by the link thread:
        self._cursor = 0
        self._inflight: dict[int, int] = {}
        self._resend = ResendTimer(config.ack_timeout_s, config.ack_stall_s)

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._spawn()

    def _spawn(self) -> None:
        self._generation += 1
        self._heart.beat()
        generation = self._generation
        self._thread = threading.Thread(target=self._run, args=(generation,), name="mqtt-link", daemon=True)
        self._thread.start()

    def alive(self, stall_s: float = 30.0) -> bool:
        """The thread exists and went round its loop (every 50 ms while connected) within ``stall_s`` seconds."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._heart.recent(stall_s)

    def revive(self) -> None:
        """A fresh link thread after the current one died or hung; the outbox resends what was unacknowledged."""
        if self._stop.is_set():
            return
        log.error("the MQTT link thread stopped working; starting a new one")
        self._connected.clear()
        self._spawn()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish a graceful ``offline`` (when connected), disconnect, join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish_soon(self, channel: Channel, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Non-event messages (health): sent by the link thread if connected, otherwise dropped."""
        if retain or self._connected.is_set():
            self._extra.append((channel, payload, qos, retain))

    def set_retained(self, channel: Channel, payload: bytes) -> None:
        """A retained message (register) sent now if connected and again at every connect."""
        with self._lock:
            self._retained[channel] = payload
        self.publish_soon(channel, payload, qos=1, retain=True)

    # -- the thread --------------------------------------------------------------------------------------

    def _availability(self, state: AvailabilityState, graceful: bool) -> bytes:
        return encode(
            Availability(device=self.identity.device, boot=self.identity.boot, state=state, graceful=graceful)
        )

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.identity.device,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(self.identity.username, self.identity.password)
        if self.config.tls:
            client.tls_set(ca_certs=str(self.config.ca_file) if self.config.ca_file else None)
        client.will_set(
            self._topics[Channel.STATUS], self._availability(AvailabilityState.OFFLINE, False), qos=1, retain=True
        )
        client.max_inflight_messages_set(self.config.max_inflight + 10)
        client.max_queued_messages_set(0)
        client.on_connect = guarded(self._on_connect, "MQTT on_connect", log)
        client.on_message = guarded(self._on_message, "MQTT on_message", log)
        client.on_publish = guarded(self._on_publish, "MQTT on_publish", log)
        return client

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self._stop.is_set()

    def _run(self, generation: int) -> None:
        while self._current(generation):
            try:
                self._connect_once(generation)
            except Exception:
                # Whatever paho or our code raised: the thread must go on, the outbox keeps every event.
                log.exception("the MQTT link failed; reconnecting")
                self._connected.clear()
                self._heart.pause(self._stop, self.backoff.next_delay())

    def _connect_once(self, generation: int) -> None:
        client = self._new_client()
        try:
            client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        except (OSError, ValueError) as exc:
            delay = self.backoff.next_delay()
            log.info("broker %s:%d unreachable (%s); retry in %.1f s", self.config.host, self.config.port, exc, delay)
            self._heart.pause(self._stop, delay)
            return
        try:
            self._session(client, generation)
        finally:
            self._connected.clear()
        if not self._current(generation):
            return
        delay = self.backoff.next_delay()
        log.info("connection to the broker lost; retry in %.1f s", delay)
        self._heart.pause(self._stop, delay)

    def _session(self, client: mqtt.Client, generation: int) -> None:
        if generation != self._generation:
            client.disconnect()  # a thread replaced while it was connecting: the new one owns the state below
            return
        self._cursor = 0
        self._inflight = {}
        self._resend.reset()
        started = time.monotonic()
        while True:
            self._heart.beat()
            rc = client.loop(timeout=_LOOP_TICK_S)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return
            if self._stop.is_set():
                self._goodbye(client)
                return
            if generation != self._generation:
                client.disconnect()  # replaced by a revived thread: leave quietly, it has the link now
                return
            if not self._connected.is_set():
                if time.monotonic() - started > self.config.keepalive_s:
                    log.warning("no CONNACK within %d s; reconnecting", self.config.keepalive_s)
                    client.disconnect()
                    return
                continue
            try:
                self._send_extra(client)
                self._pump(client)
            except Exception:
                # A bug here must not end the thread: the outbox keeps everything, the next session resends.
                log.exception("publishing failed; reconnecting")
                client.disconnect()
                return

    def _goodbye(self, client: mqtt.Client) -> None:
        if self._connected.is_set():
            info = client.publish(
                self._topics[Channel.STATUS], self._availability(AvailabilityState.OFFLINE, True), qos=1, retain=True
            )
            deadline = time.monotonic() + 2.0
            while not info.is_published() and time.monotonic() < deadline:
                if client.loop(timeout=_LOOP_TICK_S) != mqtt.MQTT_ERR_SUCCESS:
                    break
        client.disconnect()
        self._connected.clear()

    # -- callbacks (all in the link thread) --------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        self.backoff.reset()
        self.stats.connects += 1
        client.subscribe([(self._topics[Channel.COMMAND], 1), (self._topics[Channel.ACK], 1)])
        client.publish(
            self._topics[Channel.STATUS], self._availability(AvailabilityState.ONLINE, False), qos=1, retain=True
        )
        with self._lock:
            retained = list(self._retained.items())
        for channel, payload in retained:
            client.publish(self._topics[channel], payload, qos=1, retain=True)
        self._connected.set()
        log.info("connected to %s:%d as %s", self.config.host, self.config.port, self.identity.username)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self._inflight.pop(mid, None)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._topics[Channel.ACK]:
            try:
                ack: Ack = decode(Channel.ACK, bytes(message.payload))
            except ProtocolError as exc:
                log.warning("ignored an invalid ack: %s", exc.reason)
                return
            progressed = self.outbox.ack(ack.boot, ack.upto) > 0
            if progressed:
                self.stats.acks += 1
            self._resend.on_ack(progressed, time.monotonic())
        elif message.topic == self._topics[Channel.COMMAND]:
            self.on_command(bytes(message.payload))

    # -- sending -----------------------------------------------------------------------------------------

    def _send_extra(self, client: mqtt.Client) -> None:
        while self._extra:
            channel, payload, qos, retain = self._extra.popleft()
            client.publish(self._topics[channel], payload, qos=qos, retain=retain)

    def _pump(self, client: mqtt.Client) -> None:
        now = time.monotonic()
        outstanding = self.outbox.count_upto(self._cursor)
        waiting_since = self._resend.since
        if self._resend.due(outstanding, now):
            log.info(
                "the hub's ack has not moved for %.0f s: sending the %d unacknowledged events again",
                now - (waiting_since or now),
                outstanding,
            )
            self.stats.resends += 1
            self._cursor = 0
            outstanding = 0
        if self.outbox.last_id <= self._cursor:
            return
        room = min(self.config.max_inflight - len(self._inflight), self.config.window - outstanding)
        if room <= 0:
            return
        for row in self.outbox.pending_after(self._cursor, room):
            info = client.publish(self._topics[row.channel], row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # connection gone: the session loop notices, the next one starts over
            self._inflight[info.mid] = row.id
            self._cursor = row.id
            self.stats.published += 1
            self._resend.on_send(now)
