"""The durable outbox: every event is in SQLite (WAL, synchronous=FULL) before ``emit`` returns.

Rows leave the outbox only when the hub acknowledges them (``ack``), never on a broker PUBACK. The outbox
is bounded: at its cap the overflow policy drops the oldest rows or the new event. Whatever is dropped is
counted (persisted across restarts) and declared to the hub by an ``OutboxGap`` event, so the hub can move
its watermark past the hole and show the loss instead of waiting for events that will never come.

Drops are recorded per boot as exact ranges (adjacent ones merged): a number the outbox still holds is never
inside one, because the hub acknowledges past every declared number and the device then deletes what it
holds up to there. At most one notice per boot sits in the outbox; a fresh one supersedes (deletes) it, and
the superseded notice's own number becomes a dropped number of its own. A notice is written when a boot
without a waiting notice drops, when the waiting notice is itself dropped, and when an ack shows the hub
waiting for a number that no waiting notice declares: not at every drop, so that during a long overflow the
notices' numbers do not splinter the held events into thousands of ranges.

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
from hub_protocol.codec import decode, encode
from hub_protocol.envelope import MAX_GAP_RANGES, OutboxGap
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
    "CREATE TABLE IF NOT EXISTS drop_ranges (boot TEXT NOT NULL, first_seq INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL, PRIMARY KEY (boot, first_seq))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    # Producers with a store of their own (the locker bank) hand events over with an increasing key; the mark
    # is written with the event, so a crash between the two stores cannot make a second copy.
    "CREATE TABLE IF NOT EXISTS handoffs (source TEXT PRIMARY KEY, upto INTEGER NOT NULL)",
]
_HELD_IN = "SELECT seq FROM events WHERE boot = ? AND seq BETWEEN ? AND ? ORDER BY seq"
_UPSERT_HANDOFF = "INSERT INTO handoffs (source, upto) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET upto = MAX(upto, excluded.upto)"
_COMPONENT = "outbox"
_T = TypeVar("_T")


def _create(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'drops'").fetchone():
        _migrate_drops(conn)


def _migrate_drops(conn: sqlite3.Connection) -> None:
    """Earlier versions kept one range per boot that could span numbers still held: keep only the rest."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for boot, first, last in conn.execute("SELECT boot, first_seq, last_seq FROM drops").fetchall():
            held = [s for (s,) in conn.execute(_HELD_IN, (boot, first, last))]
            conn.executemany(
                "INSERT OR REPLACE INTO drop_ranges (boot, first_seq, last_seq) VALUES (?, ?, ?)",
                [(boot, f, la) for f, la in subtract_held(first, last, held)],
            )
        conn.execute("DROP TABLE drops")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def subtract_held(first: int, last: int, held: list[int]) -> list[tuple[int, int]]:
    """``[first, last]`` without the numbers of ``held`` (ascending): the exact ranges left."""
    pieces: list[tuple[int, int]] = []
    cursor = first
    for seq in held:
        if seq > last:
            break
        if seq >= cursor:
            if seq > cursor:
                pieces.append((cursor, seq - 1))
            cursor = seq + 1
    if cursor <= last:
        pieces.append((cursor, last))
    return pieces


def merge_range(ranges: list[tuple[int, int]], first: int, last: int) -> tuple[list[tuple[int, int]], int, int]:
    """``ranges`` (ascending, apart) with ``[first, last]`` added; also the merged range that now holds it."""
    kept: list[tuple[int, int]] = []
    for f, la in ranges:
        if la < first - 1 or f > last + 1:
            kept.append((f, la))
        else:
            first, last = min(first, f), max(last, la)
    kept.append((first, last))
    kept.sort()
    return kept, first, last


def declares(ranges: list[tuple[int, int]], seq: int) -> bool:
    return any(first <= seq <= last for first, last in ranges)


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
        self._drops: dict[str, list[tuple[int, int]]] = {}
        """Exact dropped ranges by boot, ascending and apart (never a number still held)."""
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
        touched: set[str] = set()
        if self._depth >= self.config.max_events:
            if self.config.overflow == "drop-newest":
                self._record_drop(cur, self.boot, seq, seq)
                self._count_dropped(cur, 1)
                touched.add(self.boot)
                payload = b""
            else:
                touched |= self._drop_oldest(cur, self._depth - self.config.max_events + 1)
        if payload:
            self._insert(cur, self.boot, seq, channel, payload, now, None)
        # A waiting notice is left alone: the hub's ack tells when it needs the newer drops declared.
        waiting = {b for (b,) in cur.execute("SELECT DISTINCT gap_boot FROM events WHERE gap_boot IS NOT NULL")}
        self._announce(cur, touched - waiting, now)
        if handoff is not None:
            cur.execute(_UPSERT_HANDOFF, handoff)
        return touched

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
            if boot in self._drops:
                cur.execute("DELETE FROM drop_ranges WHERE boot = ? AND last_seq <= ?", (boot, upto))
                left = [(f, la) for f, la in self._drops[boot] if la > upto]
                if left:
                    self._drops[boot] = left
                else:
                    del self._drops[boot]
            self._answer_wait(cur, boot, upto)
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

    def _answer_wait(self, cur: sqlite3.Cursor, boot: str, upto: int) -> None:
        """The hub stored everything of ``boot`` up to ``upto`` and waits for the next number. If the outbox
        holds it, it is on its way. If it was dropped and no waiting notice declares it, declare it now.
        If it is neither held nor dropped, it was never stored (a failed write that burned its number before
        this version gave it back): declare it too, or the hub waits for it and the events after it are sent
        again for ever; such numbers are not counted as dropped events."""
        wanted = upto + 1
        row = cur.execute("SELECT MIN(seq) FROM events WHERE boot = ?", (boot,)).fetchone()
        lowest_held = None if row[0] is None else int(row[0])
        if lowest_held == wanted:
            return
        if declares(self._drops.get(boot, []), wanted):
            if declares(self._live_notice(cur, boot) or [], wanted):
                return
        else:
            if lowest_held is not None:
                end = lowest_held - 1
            elif boot == self.boot:
                end = self._next_seq - 1
            else:
                return
            if end < wanted:
                return
            log.warning("outbox: %s numbers %d..%d were never stored; declared to the hub", boot, wanted, end)
            self._record_unheld(cur, boot, wanted, end)
        self._announce(cur, {boot}, self._clock())

    def _live_notice(self, cur: sqlite3.Cursor, boot: str) -> list[tuple[int, int]] | None:
        """The ranges the waiting notice for ``boot`` declares; None when no notice waits."""
        rows = cur.execute("SELECT payload FROM events WHERE gap_boot = ?", (boot,)).fetchall()
        if not rows:
            return None
        declared: list[tuple[int, int]] = []
        for (payload,) in rows:
            notice: OutboxGap = decode(Channel.GAP, bytes(payload))
            declared.extend(notice.declared())
        return declared

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
        # The rows read back are held and sent: only the rest of each boot's numbers is declared.
        for boot, last in declare.items():
            self._record_unheld(cur, boot, 1, last)
        for boot, first, last in found.drops:
            self._record_unheld(cur, boot, first, last)
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
        """``first..last`` of ``boot`` are gone from the outbox (the caller deleted or never stored them)."""
        self._drops[boot], first, last = merge_range(self._drops.get(boot, []), first, last)
        cur.execute("DELETE FROM drop_ranges WHERE boot = ? AND first_seq BETWEEN ? AND ?", (boot, first, last))
        cur.execute("INSERT INTO drop_ranges (boot, first_seq, last_seq) VALUES (?, ?, ?)", (boot, first, last))

    def _record_unheld(self, cur: sqlite3.Cursor, boot: str, first: int, last: int) -> None:
        """``first..last`` of ``boot`` except the numbers the outbox holds."""
        held = [int(s) for (s,) in cur.execute(_HELD_IN, (boot, first, last))]
        for f, la in subtract_held(first, last, held):
            self._record_drop(cur, boot, f, la)

    def _count_dropped(self, cur: sqlite3.Cursor, count: int) -> None:
        if count:
            self._dropped_total += count
            self._set_meta(cur, "dropped_total", self._dropped_total)

    def _announce(self, cur: sqlite3.Cursor, boots: set[str], now: float) -> None:
        """One fresh OutboxGap per boot, declaring its lowest exact ranges; it supersedes the earlier notice."""
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
            # Beyond the first MAX_GAP_RANGES the hub stops and acks; _answer_wait then declares the next ones.
            ranges = self._drops[boot][:MAX_GAP_RANGES]
            fields: dict[str, Any] = {
                "dropped_boot": boot,
                "first_seq": ranges[0][0],
                "last_seq": ranges[-1][1],
                "dropped_total": self._dropped_total,
            }
            if len(ranges) > 1:
                fields["ranges"] = ranges
            seq = self._next_seq
            self._next_seq += 1
            notice = build_event(Channel.GAP, self.device, self.boot, seq, fields)
            self._insert(cur, self.boot, seq, Channel.GAP, encode(notice), now, boot)

    def _reload_counters(self) -> None:
        """Counters kept in memory, read from the database (at open, and after a failed transaction)."""
        conn = self._conn
        self._depth = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        row = conn.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
        self._dropped_total = row[0] if row else 0
        drops: dict[str, list[tuple[int, int]]] = {}
        for boot, first, last in conn.execute(
            "SELECT boot, first_seq, last_seq FROM drop_ranges ORDER BY boot, first_seq"
        ):
            drops.setdefault(boot, []).append((first, last))
        self._drops = drops
        self._last_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
