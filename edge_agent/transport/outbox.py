"""The durable outbox: every event is in SQLite (WAL, synchronous=FULL) before ``emit`` returns.

Rows leave the outbox only when the hub acknowledges them (``ack``), never on a broker PUBACK. The outbox
is bounded: at its cap the overflow policy drops the oldest rows or the new event. Whatever is dropped is
counted (persisted across restarts) and declared to the hub by an ``OutboxGap`` event, so the hub can move
its watermark past the hole and show the loss instead of waiting for events that will never come.

Drop records are kept per boot as one range ``[first, last]`` that only grows until the hub acknowledges
past it; each new ``OutboxGap`` for a boot supersedes (deletes) the earlier one still waiting, so at most
one notice per boot sits in the outbox, and a superseded notice's own sequence number lies inside a
declared range. The hub treats every number of a declared range that it has not stored as dropped.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge_agent.events import build_event
from edge_agent.transport.config import OutboxConfig
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
    ) -> None:
        self.path = path
        self.device = device
        self.boot = boot or new_boot_id()
        self.config = config
        self._clock = clock
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # an event is on disk when emit() returns
        for statement in _SCHEMA:
            self._conn.execute(statement)
        self._depth = 0
        self._dropped_total = 0
        self._drops: dict[str, tuple[int, int]] = {}
        self._reload_counters()
        self._next_seq = 1
        self._last_id: int = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
        self._dropping = False

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
            self._next_seq = seq + 1  # gap notices written below take the numbers after it
            now = self._clock()
            announce: set[str] = set()
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
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
                    cur.execute(
                        "INSERT INTO handoffs (source, upto) VALUES (?, ?)"
                        " ON CONFLICT (source) DO UPDATE SET upto = MAX(upto, excluded.upto)",
                        handoff,
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                self._reload_counters()
                self._next_seq = seq  # nothing was stored: a number used now would be a gap the hub never closes
                raise
            if announce and not self._dropping:
                log.warning("outbox full (%d events): dropping by policy %s", self._depth, self.config.overflow)
            self._dropping = bool(announce)
            return seq

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
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.execute("DELETE FROM events WHERE boot = ? AND seq <= ?", (boot, upto))
                deleted = cur.rowcount
                record = self._drops.get(boot)
                if record is not None and record[1] <= upto:
                    cur.execute("DELETE FROM drops WHERE boot = ?", (boot,))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            if record is not None and record[1] <= upto:
                del self._drops[boot]
            self._depth -= deleted
            return deleted

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
            cur.execute(
                "INSERT INTO meta (key, value) VALUES ('dropped_total', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._dropped_total,),
            )

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
