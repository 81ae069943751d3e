"""The ingest's single writer: validate device messages, store events once, move watermarks, detect gaps.

``IngestCore`` takes a batch of (topic, payload, received at), validates each message against its channel's
model, stores what is new in one transaction (synchronous=FULL: an acknowledged event survives a power cut),
advances each (device, boot) watermark in memory and returns the acks to publish. ``writer_main`` runs it in
a process (or thread) of its own, fed through a pipe by ``hub_server.ingest.service.Ingest``.

Watermark: ``upto`` of (device, boot) is the highest seq such that every seq <= upto is stored or declared
dropped by an ``OutboxGap``. The device deletes its outbox rows up to it. A duplicate changes nothing and is
acknowledged again (the device sent it because it missed our ack).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from hub_protocol.codec import ProtocolError, decode, encode
from hub_protocol.envelope import Ack, Availability, AvailabilityState, Health
from hub_protocol.flows import FlowWindow
from hub_protocol.topics import DEVICE_CHANNELS, SEQUENCED_CHANNELS, Channel, TopicParts, device_topic, parse_topic
from hub_server.config import IngestConfig
from hub_server.ingest.limits import BAD_BURST, BAD_PER_S, DeviceLog, TokenBuckets
from hub_server.ingest.mqtt import BROKER_UPTIME_TOPIC
from hub_server.ingest.rows import typed_rows
from hub_server.ingest.watermarks import BootState
from hub_server.store import ingest as store
from hub_server.store.db import connect, transaction
from hub_server.store.engine import is_postgres
from hub_server.store.singleton import Singleton

log = logging.getLogger("hub_server.ingest.service")

Message = tuple[str, bytes, float]
"""(topic, payload, received at in Unix seconds)"""

Note = tuple[str, str, str, str]
"""(kind, site, device, JSON text): what happened, for handlers and live pages. Kinds: the channel names of
device messages, ``silent`` (offline by silence), ``SEQUENCE_GAP_NOTE`` (a sequence hole recorded)."""

BROKER_RESTART = "broker-restart"
"""Offline reason and note kind: the broker restarted after the device was last heard (its connection closed)."""

SYS_INTERVAL_S = 10
"""Mosquitto's default sys_interval: a retained uptime may be this much older than it looks."""

SHARED_CHECK_S = 5.0
"""Sharing the ingest, how often the leading instance checks for silence and gaps."""

SEQUENCE_GAP_NOTE = "sequence-gap"
"""Note kind of a hole the hub found; not ``gap``, which is the device channel where a device declares drops."""

_UNSEEN: Any = object()

DEVICE_CHANNEL_VALUES = frozenset(c.value for c in DEVICE_CHANNELS)

EARLIEST_WINDOW_START = 1_577_836_800.0
"""2020-01-01: earlier than any device of this project; a Pi without a clock battery starts in 1970."""

MAX_FLOW_NOTES_PER_BATCH = 20
"""Flow windows are the bulk of traffic; live pages need a sample, not every window of a backlog."""


@dataclass(slots=True)
class DeviceState:
    site: str
    first_seen: float
    last_seen: float
    online: bool = False
    reason: str | None = None
    status_changed: float | None = None
    boot: str | None = None
    dropped_total: int = 0


@dataclass(slots=True)
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    batches: int = 0
    throttled: int = 0


@dataclass(slots=True)
class BatchResult:
    acks: list[tuple[str, bytes]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    seen: list[tuple[str, str, float, bool]] = field(default_factory=list)


def _clean(text: str, limit: int) -> str:
    """Anything from the wire, made storable: valid UTF-8 (no lone surrogates), bounded."""
    return text.encode("utf-8", errors="replace").decode("utf-8")[:limit]


class IngestCore:
    """The single writer. Not thread-safe: one thread (or process) calls ``process`` and ``tick``."""

    def __init__(
        self, db_path: Path | str, prefix: str, settings: IngestConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.prefix = prefix
        self.settings = settings
        self._clock = clock
        self.conn = connect(db_path)
        # Sharing the ingest with other instances (an MQTT shared subscription): the database, not this
        # process's memory, knows what is stored; each batch reloads its devices' state under their locks.
        self.shared = settings.shared_group is not None
        if self.shared and self.conn.dialect != "postgresql":
            raise ValueError("ingest.shared_group needs a PostgreSQL store (store.url)")
        self._checks = Singleton(db_path, "ingest-checks")
        self._next_shared_check = 0.0
        store.tune_for_writer(self.conn)
        self._topic_cache: dict[str, TopicParts | None] = {}
        self.counters = Counters()
        self._started = clock()
        self._invalid_logged: dict[tuple[str, str], int] = defaultdict(int)
        self._bad = TokenBuckets(BAD_PER_S, BAD_BURST)
        self._device_log = DeviceLog(log)
        self._boots_of: defaultdict[str, set[str]] = defaultdict(set)
        """The boots in ``self.boots`` of each device: a batch's reload replaces its devices' without a scan of all."""
        self._load()

    def _load(self, only: list[str] | None = None) -> None:
        """The state from the database: every device's, or (``only``) the listed devices'. A hole's age is
        this process's own observation and survives a reload."""
        conn = self.conn
        previous = getattr(self, "boots", {})
        # One snapshot: another instance committing between two of the reads gave events above a watermark
        # this load had not seen (a KeyError below, an instance that failed to start or to check).
        with conn.snapshot():
            with conn.pipeline():  # the five reads in one round trip (PostgreSQL)
                cursors = (
                    store.boot_watermarks(conn, only),
                    store.events_above_watermarks(conn, only),
                    store.dropped_ranges(conn, only),
                    store.open_gaps(conn, only),
                    store.devices(conn, only),
                )
            watermarks, above, dropped, gaps, device_rows = (c.fetchall() for c in cursors)
        boots: dict[tuple[str, str], BootState] = {(d, b): BootState(upto=u, max_seq=m) for d, b, u, m in watermarks}
        for device, boot, seq in above:
            boots[(device, boot)].add(seq)
        for device, boot, first, last in dropped:
            boots.setdefault((device, boot), BootState()).add_range(first, last)
        for d, b, first, last in gaps:
            if (d, b) in boots:
                boots[(d, b)].gap_open = True
                boots[(d, b)].reported.add((first, last))
        for key, state in boots.items():
            if (old := previous.get(key)) is not None:
                state.hole_since = old.hole_since
                state.reported |= old.reported
        devices = {
            row[0]: DeviceState(row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8])
            for row in device_rows
        }
        if only is None:
            self.boots, self.devices = boots, devices
            self._boots_of = defaultdict(set)
            for device, boot in boots:
                self._boots_of[device].add(boot)
            return
        wanted = set(only)
        for device in wanted:
            for boot in self._boots_of.pop(device, ()):
                del self.boots[(device, boot)]
        self.boots.update(boots)
        for device, boot in boots:
            self._boots_of[device].add(boot)
        for device in wanted:
            self.devices.pop(device, None)
        self.devices.update(devices)

    def sites(self) -> dict[str, str]:
        return {device: state.site for device, state in self.devices.items()}

    # -- one batch ---------------------------------------------------------------------------------------

    def process(self, batch: list[Message]) -> BatchResult:
        if not self.shared:
            return self._process(batch)
        conn = self.conn
        try:
            with transaction(conn):
                devices = self._devices_named(batch)
                with conn.pipeline():  # the locks and the reads under them in one round trip
                    store.lock_devices(conn, devices)
                    self._load(devices)
                return self._process(batch)
        except Exception:
            self._load()
            raise

    def _devices_named(self, batch: list[Message]) -> list[str]:
        named = set()
        for topic, _, _ in batch:
            parts = self._topic_cache.get(topic, _UNSEEN)
            if parts is _UNSEEN:
                parts = parse_topic(self.prefix, topic)
            if parts is not None:
                named.add(parts.device)
        return sorted(named)

    def _process(self, batch: list[Message]) -> BatchResult:
        now = self._clock()
        result = BatchResult()
        rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        new_seqs: dict[tuple[str, str], set[int]] = defaultdict(set)
        batch_max: dict[tuple[str, str], int] = {}
        new_ranges: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        touched: dict[tuple[str, str], str] = {}
        changed_devices: set[str] = set()
        invalid: dict[tuple[str, str], list[Any]] = {}
        flow_notes = 0
        counters = self.counters
        counters.batches += 1
        for topic, payload, received in batch:
            counters.received += 1
            if topic == BROKER_UPTIME_TOPIC:
                self._broker_uptime(payload, received, result, changed_devices)
                continue
            parts = self._topic_cache.get(topic, _UNSEEN)
            if parts is _UNSEEN:
                if len(self._topic_cache) > 10_000:  # topics are per device and channel; junk must not grow it
                    self._topic_cache.clear()
                parts = self._topic_cache[topic] = parse_topic(self.prefix, topic)
            if parts is None:
                self._invalid(invalid, "", "topic", topic, "not a topic of this contract", received)
                continue
            channel, device, site = parts.channel, parts.device, parts.site
            if self._bad.spent(device, received):
                # Not read, not acknowledged (a healthy device sends it again later); counted in one row per batch.
                counters.throttled += 1
                entry = invalid.setdefault((device, "throttled"), [device, "throttled", 0, received, received, "", ""])
                entry[2] += 1
                entry[4], entry[5], entry[6] = received, _clean(topic, 200), "over the device's budget of bad messages"
                continue
            if channel not in DEVICE_CHANNELS:
                self._invalid(invalid, device, "channel", topic, f"{channel.value} is not a device channel", received)
                continue
            try:
                msg = decode(channel, payload)
            except ProtocolError as exc:
                self._invalid(invalid, device, "payload", topic, exc.reason, received)
                continue
            if msg.device != device:
                self._invalid(invalid, device, "device", topic, f"payload names device {msg.device}", received)
                continue
            text = payload.decode("utf-8", errors="replace")
            dev = self._touch(device, site, received, channel is not Channel.STATUS)
            changed_devices.add(device)
            if channel in SEQUENCED_CHANNELS:
                key = (device, msg.boot)
                touched[key] = site
                state = self.boots.get(key)
                if (
                    state is not None and (state.known(msg.seq) or self._stored_late_copy(state, key, msg.seq))
                ) or msg.seq in new_seqs.get(key, ()):
                    counters.duplicates += 1
                    continue
                highest = batch_max.get(key, state.max_seq if state is not None else 0)
                if channel is Channel.GAP or msg.seq > highest + 1:
                    # Declaring drops, or opening a hole: cheap to send, costly to track. Spends the budget.
                    self._bad.take(device, received)
                batch_max[key] = max(highest, msg.seq)
                new_seqs[key].add(msg.seq)
                rows["events"].append((device, msg.boot, msg.seq, channel.value, received, text))
                counters.stored += 1
                if channel is Channel.FLOW and (refusal := self._window_refusal(msg, max(now, received))):
                    # Kept as a raw event (acknowledged, so the device stops sending it) but never served or
                    # rolled into totals: a window dated 9999 or 1970 comes from a broken clock or a forger.
                    self._invalid(invalid, device, "window-time", topic, refusal, received)
                    continue
                typed_rows(rows, channel, msg, site, received)
                if channel is Channel.GAP:
                    gap_key = (device, msg.dropped_boot)
                    touched[gap_key] = site
                    # Exact ranges: the numbers between them are events the device still holds and sends.
                    for first, last in msg.declared():
                        new_ranges[gap_key].append((first, last))
                        rows["ranges"].append((device, msg.dropped_boot, first, last, received, msg.dropped_total))
                    dev.dropped_total = max(dev.dropped_total, msg.dropped_total)
                if channel is Channel.FLOW:
                    flow_notes += 1
                    if flow_notes > MAX_FLOW_NOTES_PER_BATCH:
                        continue
                result.notes.append((channel.value, site, device, text))
            elif channel is Channel.STATUS:
                if self._status(dev, msg, received):
                    result.notes.append((channel.value, site, device, text))
            elif channel is Channel.HEALTH:
                health: Health = msg
                at = health.at.timestamp()
                rows["health"].append((device, at, received, text))
                rows["samples"].append(
                    (
                        device,
                        at,
                        health.boot,
                        health.uptime_s,
                        health.cpu_temp_c,
                        health.load1,
                        health.mem_used_fraction,
                        health.disk_free_bytes,
                        health.outbox_depth,
                        health.outbox_oldest_age_s,
                        health.dropped_total,
                        health.camera_state.value,
                        health.fps,
                    )
                )
                dev.dropped_total = max(dev.dropped_total, health.dropped_total)
                result.notes.append((channel.value, site, device, text))
            elif channel is Channel.REGISTER:
                rows["register"].append((device, site, received, text))
                result.notes.append((channel.value, site, device, text))
        # Watermarks move in memory first; on a failed commit everything is reloaded from the database.
        advanced: list[tuple[str, str]] = []
        for key, seqs in new_seqs.items():
            state = self.boots.setdefault(key, BootState())
            for seq in seqs:
                state.add(seq)
        for key, ranges in new_ranges.items():
            state = self.boots.setdefault(key, BootState())
            for first, last in ranges:
                state.add_range(first, last)
        for key in touched:  # every key the batch added to self.boots is here
            self._boots_of[key[0]].add(key[1])
            state = self.boots.setdefault(key, BootState())
            if state.advance():
                state.hole_since = None
                advanced.append(key)
        if self.shared:  # inside process()'s transaction, under the devices' locks
            self._write(rows, touched, advanced, changed_devices, invalid, now)
        else:
            try:
                with transaction(self.conn):
                    self._write(rows, touched, advanced, changed_devices, invalid, now)
            except Exception:
                self._load()
                raise
        for key, site in touched.items():
            upto = self.boots[key].upto
            if upto > 0:
                device, boot = key
                result.acks.append(
                    (device_topic(self.prefix, site, device, Channel.ACK), encode(Ack(boot=boot, upto=upto)))
                )
        for device in changed_devices:
            dev = self.devices[device]
            result.seen.append((device, dev.site, dev.last_seen, dev.online))
        return result

    def _window_refusal(self, window: FlowWindow, now: float) -> str | None:
        """Why a flow window's start cannot be true, or None: more than one window ahead of the hub's clock
        (a window is published after it ends, so even a fast device clock stays below that), or implausibly old."""
        start = window.window_start.timestamp()
        if start > now + window.window_seconds:
            return f"window starts {start - now:.0f} s after the hub's clock"
        if start < max(EARLIEST_WINDOW_START, now - self.settings.flow_max_age_days * 86_400):
            return f"window starts {(now - start) / 86_400:.0f} days before the hub's clock"
        return None

    def _broker_uptime(self, payload: bytes, received: float, result: BatchResult, changed: set[str]) -> None:
        """The broker started at about ``received - uptime``: devices not heard since then are not connected,
        whatever the hub last knew, until they say so on a fresh connection."""
        seconds, _, unit = payload.decode("ascii", errors="replace").partition(" ")
        if not seconds.isdigit() or unit != "seconds":
            return
        started = received - int(seconds) - SYS_INTERVAL_S
        for device, dev in self.devices.items():
            if dev.online and dev.last_seen < started:
                dev.online, dev.reason, dev.status_changed = False, BROKER_RESTART, received
                changed.add(device)
                result.notes.append((BROKER_RESTART, dev.site, device, ""))
                self._device_log.info(device, received, "device %s offline: the broker restarted since", device)

    def _stored_late_copy(self, state: BootState, key: tuple[str, str], seq: int) -> bool:
        """Below the watermark only through a declared drop: stored already if it came before the notice."""
        if seq > state.upto:
            return False
        return store.event_stored(self.conn, *key, seq)

    def _touch(self, device: str, site: str, received: float, talking: bool) -> DeviceState:
        dev = self.devices.get(device)
        if dev is None:
            dev = DeviceState(site, received, received, online=talking, status_changed=received if talking else None)
            self.devices[device] = dev
        dev.site = site
        dev.last_seen = max(dev.last_seen, received)
        if talking and not dev.online and dev.reason in ("silent", BROKER_RESTART):
            dev.online, dev.reason, dev.status_changed = True, None, received
        return dev

    def _status(self, dev: DeviceState, msg: Availability, received: float) -> bool:
        """Apply an availability message; False when it is stale (the will of an earlier boot)."""
        if msg.state is AvailabilityState.ONLINE:
            dev.online, dev.reason, dev.boot = True, None, msg.boot
        else:
            if dev.online and dev.boot is not None and msg.boot != dev.boot:
                self._device_log.info(
                    msg.device, received, "ignored offline of earlier boot %s: boot %s is online", msg.boot, dev.boot
                )
                return False
            dev.online, dev.reason = False, "graceful" if msg.graceful else "will"
        dev.status_changed = received
        return True

    def _invalid(
        self, invalid: dict[tuple[str, str], list[Any]], device: str, kind: str, topic: str, reason: str, t: float
    ) -> None:
        self.counters.invalid += 1
        topic, reason = _clean(topic, 200), _clean(reason, 500)
        key = (device, kind)
        entry = invalid.setdefault(key, [device, kind, 0, t, t, topic, reason])
        entry[2] += 1
        entry[4], entry[5], entry[6] = t, topic, reason
        seen = self._invalid_logged[key] = self._invalid_logged[key] + 1
        self._bad.take(device, t)
        self._device_log.warning(
            device, t, "invalid message #%d from %r (%s) on %r: %s", seen, device or "?", kind, topic, reason
        )

    def _write(
        self,
        rows: dict[str, list[tuple[Any, ...]]],
        touched: dict[tuple[str, str], str],
        advanced: list[tuple[str, str]],
        changed_devices: set[str],
        invalid: dict[tuple[str, str], list[Any]],
        now: float,
    ) -> None:
        conn = self.conn
        store.insert_rows(conn, rows)
        if touched:
            store.upsert_watermarks(
                conn, [(d, b, self.boots[(d, b)].upto, self.boots[(d, b)].max_seq, now, now) for (d, b) in touched]
            )
        for device, boot in advanced:
            if self.boots[(device, boot)].gap_open:
                self._resolve_gaps(device, boot, now)
        if changed_devices:
            store.upsert_devices(conn, [self._device_row(d) for d in changed_devices])
        if invalid:
            store.upsert_invalid(conn, [tuple(v) for v in invalid.values()])

    def _resolve_gaps(self, device: str, boot: str, now: float) -> None:
        state = self.boots[(device, boot)]
        state.gap_open = store.resolve_gaps(self.conn, device, boot, state.upto, now) > 0

    def _device_row(self, device: str) -> tuple[Any, ...]:
        d = self.devices[device]
        return (device, d.site, d.first_seen, d.last_seen, int(d.online), d.reason, d.status_changed, d.boot,
                d.dropped_total)  # fmt: skip

    # -- time-driven checks ------------------------------------------------------------------------------

    def tick(self) -> BatchResult:
        """Offline by silence, and holes that stayed open long enough to be called gaps. Sharing the ingest, one
        instance does it (the first to take the lead; another takes over when it dies), from the database's
        state: what other instances stored is in no one else's memory."""
        if self.shared:
            now = self._clock()
            if now < self._next_shared_check:
                return BatchResult()
            self._next_shared_check = now + SHARED_CHECK_S  # each check reads every device's state
            if not self._checks.held():
                return BatchResult()
            try:
                # Every device's state from one snapshot, then the silent candidates' again under their locks
                # (a device heard meanwhile is not silent). Read under the locks alone, the other devices'
                # tables could be read at different moments (see ``_load``).
                self._load()
                candidates = self._silent_candidates()
                with transaction(self.conn):
                    if candidates:
                        store.lock_devices(self.conn, candidates)
                        self._load(candidates)
                    return self._tick()
            except Exception:
                self._load()
                raise
        return self._tick()

    def _silent_candidates(self) -> list[str]:
        # From the snapshot just loaded, before the locks; the candidates' reload under them decides (a device
        # heard meanwhile is not silent).
        cut = self._clock() - self.settings.offline_after_s
        return [device for device, d in self.devices.items() if d.online and d.last_seen < cut]

    def _tick(self) -> BatchResult:
        now = self._clock()
        result = BatchResult()
        silent = [
            device
            for device, d in self.devices.items()
            if d.online and max(d.last_seen, self._started) < now - self.settings.offline_after_s
        ]
        gap_rows: list[tuple[Any, ...]] = []
        for (device, boot), state in self.boots.items():
            if state.upto >= state.max_seq:
                state.hole_since = None
                state.reported.clear()
                continue
            if state.hole_since is None:
                state.hole_since = now
            elif now - state.hole_since >= self.settings.gap_after_s:
                state.hole_since = now  # look again one period later for holes that appear meanwhile
                holes = [hole for hole in state.missing() if hole not in state.reported]
                if holes:
                    state.gap_open = True
                    state.reported.update(holes)
                    gap_rows.extend((device, boot, first, last, now) for first, last in holes)
        if not silent and not gap_rows:
            return result
        for device in silent:
            d = self.devices[device]
            d.online, d.reason, d.status_changed = False, "silent", now
        conn = self.conn
        if self.shared:  # inside tick()'s transaction
            self._write_checks(silent, gap_rows)
        else:
            try:
                with transaction(conn):
                    self._write_checks(silent, gap_rows)
            except BaseException:
                self._load()
                raise
        for device in silent:
            d = self.devices[device]
            log.info("device %s offline: nothing heard for %.0f s", device, now - d.last_seen)
            result.notes.append(("silent", d.site, device, ""))
            result.seen.append((device, d.site, d.last_seen, False))
        for device, boot, first, last, _ in gap_rows:
            self._device_log.warning(
                device, now, "sequence gap: device %s boot %s seq %d..%d missing", device, boot, first, last
            )
            data = {"device": device, "boot": boot, "first_seq": first, "last_seq": last}
            site = self.devices[device].site if device in self.devices else ""
            result.notes.append((SEQUENCE_GAP_NOTE, site, device, json.dumps(data)))
        return result

    def _write_checks(self, silent: list[str], gap_rows: list[tuple[Any, ...]]) -> None:
        if silent:
            store.upsert_devices(self.conn, [self._device_row(d) for d in silent])
        if gap_rows:
            store.insert_gaps(self.conn, gap_rows)

    def close(self) -> None:
        self._checks.release()
        self.conn.close()


# -- the writer loop, in a process or a thread -------------------------------------------------------------

TICK_S = 0.5
GROUP_COMMIT_MAX = 20_000


def writer_main(inbox: Connection, outbox: Connection, db_path: str, prefix: str, settings_json: str) -> None:
    """Receives ("batch", messages) / ("stop",); sends ("ready", sites), ("result", ..., chunks), ("stopped",).

    Group commit: the batches that queued up while the last transaction was syncing to disk are stored
    together in the next one, so the rate is not bounded by one fsync per hand-over.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    core = IngestCore(
        db_path if is_postgres(db_path) else Path(db_path), prefix, IngestConfig.model_validate_json(settings_json)
    )
    outbox.send(("ready", core.sites()))
    next_tick = time.monotonic() + TICK_S
    try:
        while True:
            timeout = max(0.0, next_tick - time.monotonic())
            if inbox.poll(timeout):
                request = inbox.recv()
                if request[0] == "stop":
                    break
                messages, chunks, stop = list(request[1]), 1, False
                while len(messages) < GROUP_COMMIT_MAX and inbox.poll(0):
                    more = inbox.recv()
                    if more[0] == "stop":
                        stop = True
                        break
                    messages.extend(more[1])
                    chunks += 1
                try:
                    res = core.process(messages)
                except Exception as exc:
                    # The batch is lost to this hub, not to the system: it was never acknowledged, devices resend.
                    log.exception("ingest batch failed")
                    outbox.send(("error", f"{type(exc).__name__}: {exc}", chunks))
                    continue
                outbox.send(("result", res.acks, res.notes, res.seen, _counters(core.counters), chunks))
                if stop:
                    break
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + TICK_S
                try:
                    res = core.tick()
                except Exception:
                    log.exception("ingest checks failed")
                    continue
                if res.notes:
                    outbox.send(("result", res.acks, res.notes, res.seen, _counters(core.counters), 0))
    finally:
        core.close()
        outbox.send(("stopped", _counters(core.counters)))


def _counters(c: Counters) -> tuple[int, int, int, int, int, int]:
    return (c.received, c.stored, c.duplicates, c.invalid, c.batches, c.throttled)
