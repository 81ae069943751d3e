"""The durable outbox: every event is in SQLite (WAL, synchronous=FULL) before ``emit`` returns.

Rows leave the outbox only when the hub acknowledges them (``ack``), never on a broker PUBACK. The outbox
is bounded: at its cap the overflow policy drops the oldest rows or the new event. Whatever is dropped is
counted (persisted across restarts) and declared to the hub by an ``OutboxGap`` event, so the hub can move
its watermark past the hole and show the loss instead of waiting for events that will never come.

Drop records are kept per boot as one range ``[first, last]`` that only grows until the hub acknowledges
past it; each new ``OutboxGap`` for a boot supersedes (deletes) the earlier one still waiting, so at most
one notice per boot sits in the outbox, and a superseded notice's own sequence number lies inside a
declared range. The hub treats every number of a declared range that it has not stored as dropped.

A sequence number is used only by a transaction that commits: a write that fails (a full disk, where
SQLite has already rolled back by itself) leaves the next number where it was, so the hub never waits for
a number that was never stored. A damaged file found at open is moved aside; the rows still readable are
copied into the fresh one and the rest is declared dropped (see ``edge_agent.transport.salvage``).
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from edge_agent.events import build_event
from edge_agent.storage import StorageWatch, is_disk_full, open_database, rollback
from edge_agent.transport.config import OutboxConfig
from edge_agent.transport.salvage import Salvage, salvage_outbox
from hub_protocol.alarms import AlarmKind
from hub_protocol.codec import encode
from hub_protocol.topics import Channel
from hub_protocol.validation import describe_errors

log = logging.getLogger(__name__)

OUTBOX_FILENAME = "outbox.sqlite3"
"""The outbox's file inside ``device.state_dir``."""
OUTBOX_TABLE = "events"
"""The table of stored, unacknowledged events (``edge-agent doctor`` counts it read-only)."""

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        boot TEXT NOT NULL,
        seq INTEGER NOT NULL,
        channel TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at REAL NOT NULL,
        gap_boot TEXT,
        UNIQUE (boot, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS events_gap_boot ON events (gap_boot) WHERE gap_boot IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS drops (boot TEXT PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Producers with a store of their own (the locker bank) hand events over with an increasing key; the mark
    # is written with the event, so a crash between the two stores cannot make a second copy.
    "CREATE TABLE IF NOT EXISTS handoffs (source TEXT PRIMARY KEY, upto INTEGER NOT NULL)",
]
_UPSERT_HANDOFF = "INSERT INTO handoffs (source, upto) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET upto = MAX(upto, excluded.upto)"
_COMPONENT = "outbox"
_T = TypeVar("_T")


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def new_boot_id() -> str:
    """Random per start: sequence numbers restart at 1 without ever colliding with an earlier boot's."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    boot: str
    seq: int
    channel: Channel
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_age_s: float
    dropped_total: int


class Outbox:
    """Implements ``edge_agent.events.EventSink``; thread-safe (one connection behind a lock)."""

    def __init__(
        self,
        path: Path,
        device: str,
        config: OutboxConfig,
        *,
        boot: str | None = None,
        clock: Callable[[], float] = time.time,
        watch: StorageWatch | None = None,
    ) -> None:
        self.path = path
        self.device = device
        self.boot = boot or new_boot_id()
        self.config = config
        self._clock = clock
        self.watch = watch or StorageWatch()
        self._lock = threading.RLock()
        # synchronous=FULL (set by open_database): an event is on disk when emit() returns.
        self._conn, damage = open_database(path, _create)
        self._depth = 0
        self._dropped_total = 0
        self._drops: dict[str, tuple[int, int]] = {}
        self._last_id = 0
        self._stale = False
        self._reload_counters()
        self._next_seq = 1
        self._dropping = False
        self._disk_alarm = self._meta("disk_full_alarm") == 1
        self.salvage: Salvage | None = None
        if damage is not None:
            self.salvage = salvage_outbox(damage, device, self.boot)
            self._transaction(self._take_salvage)

    # -- EventSink ---------------------------------------------------------------------------------------

    def emit(self, channel: Channel, fields: dict[str, Any], *, handoff: tuple[str, int] | None = None) -> int:
        """Validate, store durably, return the sequence number (also when the drop-newest policy drops it).

        ``handoff=(source, key)`` records, in the same transaction, that ``source`` has handed over every key up
        to ``key`` (see ``handed_upto``)."""
        with self._lock:
            seq = self._next_seq
            try:
                event = build_event(channel, self.device, self.boot, seq, fields)
            except ValidationError as exc:
                raise ValueError(f"{channel.value} event: " + "; ".join(describe_errors(exc))) from None
            payload = encode(event)
            announce = self._transaction(lambda cur: self._store(cur, seq, channel, payload, handoff))
            if announce and not self._dropping:
                log.warning("outbox full (%d events): dropping by policy %s", self._depth, self.config.overflow)
            self._dropping = bool(announce)
            return seq

    def _store(
        self, cur: sqlite3.Cursor, seq: int, channel: Channel, payload: bytes, handoff: tuple[str, int] | None
    ) -> set[str]:
        self._next_seq = seq + 1  # gap notices written below take the numbers after it
        now = self._clock()
        announce: set[str] = set()
        if self._depth >= self.config.max_events:
            if self.config.overflow == "drop-newest":
                self._record_drop(cur, self.boot, seq, seq)
                self._count_dropped(cur, 1)
                announce.add(self.boot)
                payload = b""
            else:
                announce |= self._drop_oldest(cur, self._depth - self.config.max_events + 1)
        if payload:
            self._insert(cur, self.boot, seq, channel, payload, now, None)
        self._announce(cur, announce, now)
        if handoff is not None:
            cur.execute(_UPSERT_HANDOFF, handoff)
        return announce

    def sync_disk_alarm(self, full: bool, detail: str) -> bool:
        """Raise or clear the ``disk-full`` alarm once per change; its state is stored with the events, so a
        restart neither repeats nor forgets it. Returns True when an alarm event was written."""
        with self._lock:
            if full == self._disk_alarm:
                return False

            def write(cur: sqlite3.Cursor) -> None:
                fields = {"alarm": AlarmKind.DISK_FULL, "active": full, "at": _utc(self._clock()), "detail": detail}
                self._insert_event(cur, Channel.ALARM, fields, self._clock())
                self._set_meta(cur, "disk_full_alarm", int(full))

            self._transaction(write)
            self._disk_alarm = full
            return True

    # -- publisher side ----------------------------------------------------------------------------------

    @property
    def last_id(self) -> int:
        return self._last_id

    def pending_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Stored rows after ``after_id``, oldest first: what the publisher sends next."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, boot, seq, channel, payload FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxRow(i, b, s, Channel(c), bytes(p)) for i, b, s, c, p in rows]

    def count_upto(self, row_id: int) -> int:
        """Rows still stored with id <= ``row_id``: sent but not yet acknowledged by the hub."""
        if row_id <= 0:
            return 0
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM events WHERE id <= ?", (row_id,)).fetchone()[0])

    def ack(self, boot: str, upto: int) -> int:
        """The hub stored every event of ``boot`` up to ``upto``: delete them; returns how many went."""

        def delete(cur: sqlite3.Cursor) -> int:
            cur.execute("DELETE FROM events WHERE boot = ? AND seq <= ?", (boot, upto))
            deleted = cur.rowcount
            self._depth -= deleted
            record = self._drops.get(boot)
            if record is not None and record[1] <= upto:
                cur.execute("DELETE FROM drops WHERE boot = ?", (boot,))
                del self._drops[boot]
            self._declare_unheld(cur, boot, upto)
            return deleted

        with self._lock:
            try:
                return self._transaction(delete)
            except sqlite3.Error as exc:
                if not is_disk_full(exc):
                    raise
                return 0  # deleting needs room too; the hub acknowledges again when the events are re-sent

    def handed_upto(self, source: str) -> int:
        """The highest key ``source`` handed over with ``emit(..., handoff=...)``; 0 if none."""
        with self._lock:
            row = self._conn.execute("SELECT upto FROM handoffs WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> OutboxStats:
        with self._lock:
            row = self._conn.execute("SELECT created_at FROM events ORDER BY id LIMIT 1").fetchone()
            age = max(0.0, self._clock() - row[0]) if row else 0.0
            return OutboxStats(depth=self._depth, oldest_age_s=age, dropped_total=self._dropped_total)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- internals ---------------------------------------------------------------------------------------

    def _transaction(self, body: Callable[[sqlite3.Cursor], _T]) -> _T:
        """Run ``body`` in one write transaction. Numbers and counters it changed count only if it commits:
        after a failure they are read back from the file (on a full disk SQLite has rolled back already)."""
        start = self._next_seq
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            if self._stale:
                self._reload_counters()
            result = body(cur)
            cur.execute("COMMIT")
        except BaseException as exc:
            rollback(self._conn)
            self._next_seq = start
            self._stale = True
            self.watch.failed(_COMPONENT, exc)
            self._recover()
            raise
        self.watch.succeeded(_COMPONENT)
        return result

    def _recover(self) -> None:
        """Counters from the file after a failed write; a commit reported failed yet stored keeps its numbers."""
        try:
            self._reload_counters()
            row = self._conn.execute("SELECT MAX(seq) FROM events WHERE boot = ?", (self.boot,)).fetchone()
        except sqlite3.Error as exc:
            log.warning("outbox counters not readable now (%s); read again at the next write", exc)
            return
        self._stale = False
        if row[0] is not None:
            self._next_seq = max(self._next_seq, row[0] + 1)

    def _declare_unheld(self, cur: sqlite3.Cursor, boot: str, upto: int) -> None:
        """Numbers after the hub's watermark that the outbox does not hold were never stored (a failed write
        that burned its number before this version gave it back): declare them, or the hub waits for them and
        the events after them are sent again for ever. They are not counted as dropped events."""
        row = cur.execute("SELECT MIN(seq) FROM events WHERE boot = ?", (boot,)).fetchone()
        if row[0] is not None:
            end = int(row[0]) - 1
        elif boot == self.boot:
            end = self._next_seq - 1
        else:
            return
        record = self._drops.get(boot)
        if end <= upto or (record is not None and record[0] <= upto + 1 and end <= record[1]):
            return
        log.warning("outbox: %s numbers %d..%d were never stored; declared to the hub", boot, upto + 1, end)
        self._record_drop(cur, boot, upto + 1, end)
        self._announce(cur, {boot}, self._clock())

    def _insert_event(self, cur: sqlite3.Cursor, channel: Channel, fields: dict[str, Any], now: float) -> int:
        """An event of the outbox's own (alarm, drop notice) under the next number."""
        seq = self._next_seq
        self._next_seq += 1
        self._insert(
            cur, self.boot, seq, channel, encode(build_event(channel, self.device, self.boot, seq, fields)), now, None
        )
        return seq

    def _meta(self, key: str) -> int | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, cur: sqlite3.Cursor, key: str, value: int) -> None:
        cur.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _take_salvage(self, cur: sqlite3.Cursor) -> None:
        """Copy what a damaged file still gave, declare the rest dropped, and say so loudly."""
        assert self.salvage is not None
        found = self.salvage
        now = self._clock()
        for row in found.rows:
            cur.execute(
                "INSERT OR IGNORE INTO events (boot, seq, channel, payload, created_at, gap_boot)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            self._depth += cur.rowcount
            self._last_id = max(self._last_id, int(cur.lastrowid or 0))
        self._dropped_total = max(self._dropped_total, found.dropped_before)
        self._set_meta(cur, "dropped_total", self._dropped_total)
        self._count_dropped(cur, len(found.lost))
        declare = found.lost_boots()
        for boot, last in declare.items():
            self._record_drop(cur, boot, 1, last)
        for boot, first, last in found.drops:
            self._record_drop(cur, boot, first, last)
        for source, upto in (found.handoffs or {}).items():
            cur.execute(_UPSERT_HANDOFF, (source, upto))
        detail = (
            f"{OUTBOX_FILENAME} was damaged ({found.reason[:120]}); moved to {found.moved_to.name}; "
            f"{len(found.rows)} events recovered, up to {len(found.lost)} lost and declared dropped"
        )
        if found.handoffs is None:
            # Nothing safe to assume: skipping keys could lose events, so a source may hand its last ones again.
            detail += "; hand-over marks lost, a few locker events may arrive twice"
        fields = {"alarm": AlarmKind.STATE_DAMAGED, "active": True, "at": _utc(now), "detail": detail}
        self._insert_event(cur, Channel.ALARM, fields, now)
        self._announce(cur, set(declare) | {boot for boot, _, _ in found.drops}, now)
        log.critical("outbox: %s", detail)

    def _insert(
        self, cur: sqlite3.Cursor, boot: str, seq: int, channel: Channel, payload: bytes, now: float, gap: str | None
    ) -> None:
        cur.execute(
            "INSERT INTO events (boot, seq, channel, payload, created_at, gap_boot) VALUES (?, ?, ?, ?, ?, ?)",
            (boot, seq, channel.value, payload, now, gap),
        )
        self._depth += 1
        self._last_id = int(cur.lastrowid or self._last_id)

    def _drop_oldest(self, cur: sqlite3.Cursor, count: int) -> set[str]:
        rows = cur.execute(
            "SELECT id, boot, seq, channel, gap_boot FROM events ORDER BY id LIMIT ?", (count,)
        ).fetchall()
        if not rows:
            return set()
        cur.execute("DELETE FROM events WHERE id <= ?", (rows[-1][0],))
        self._depth -= len(rows)
        touched: set[str] = set()
        real = 0
        for _, boot, seq, channel, gap_boot in rows:
            self._record_drop(cur, boot, seq, seq)
            touched.add(boot)
            if gap_boot is not None:
                touched.add(gap_boot)  # its declaration is gone with it: declare again
            if channel != Channel.GAP.value:
                real += 1  # a dropped notice is superseded, not lost data
        self._count_dropped(cur, real)
        return touched

    def _record_drop(self, cur: sqlite3.Cursor, boot: str, first: int, last: int) -> None:
        old = self._drops.get(boot)
        if old is not None:
            first, last = min(first, old[0]), max(last, old[1])
        self._drops[boot] = (first, last)
        cur.execute(
            "INSERT INTO drops (boot, first_seq, last_seq) VALUES (?, ?, ?) "
            "ON CONFLICT (boot) DO UPDATE SET first_seq = excluded.first_seq, last_seq = excluded.last_seq",
            (boot, first, last),
        )

    def _count_dropped(self, cur: sqlite3.Cursor, count: int) -> None:
        if count:
            self._dropped_total += count
            self._set_meta(cur, "dropped_total", self._dropped_total)

    def _announce(self, cur: sqlite3.Cursor, boots: set[str], now: float) -> None:
        """One fresh OutboxGap per boot whose drop range changed; it supersedes the earlier notice."""
        done: set[str] = set()
        while boots:
            boot = boots.pop()
            if boot in done or boot not in self._drops:
                continue
            done.add(boot)
            old = cur.execute("SELECT id, boot, seq FROM events WHERE gap_boot = ?", (boot,)).fetchall()
            for row_id, old_boot, old_seq in old:
                cur.execute("DELETE FROM events WHERE id = ?", (row_id,))
                self._depth -= 1
                self._record_drop(cur, old_boot, old_seq, old_seq)
                if old_boot != boot:
                    boots.add(old_boot)
                    done.discard(old_boot)
            first, last = self._drops[boot]
            seq = self._next_seq
            self._next_seq += 1
            notice = build_event(
                Channel.GAP,
                self.device,
                self.boot,
                seq,
                {"dropped_boot": boot, "first_seq": first, "last_seq": last, "dropped_total": self._dropped_total},
            )
            self._insert(cur, self.boot, seq, Channel.GAP, encode(notice), now, boot)

    def _reload_counters(self) -> None:
        """Counters kept in memory, read from the database (at open, and after a failed transaction)."""
        conn = self._conn
        self._depth = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
        self._dropped_total = row[0] if row else 0
        self._drops = {b: (f, last) for b, f, last in conn.execute("SELECT boot, first_seq, last_seq FROM drops")}
        self._last_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
