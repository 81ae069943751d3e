"""What every SQLite file of the agent shares: surviving a full disk and a damaged file.

A full disk makes SQLite fail a write with "database or disk is full" and roll the transaction back by
itself, so a following ``ROLLBACK`` fails too ("no transaction is active"): ``rollback`` rolls back only
when a transaction is still open. Writers report such failures to a ``StorageWatch``; the agent turns its
state into a ``disk-full`` alarm and the health sample reports it while the disk is still full.

A file that is not a valid database (a power cut on a failing card) is moved aside with a loud error and
a fresh one is started (``open_database``), so the lockers keep serving; its owner declares what was lost.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SQLITE_FULL = 13
WAL_CHECKPOINT_PAGES = 128
"""Checkpoint once the WAL holds this many pages (512 KiB), not SQLite's 1000 (4 MiB)."""
WAL_LIMIT_BYTES = 512 * 1024
"""The WAL file is cut back to this size when it restarts after a checkpoint.

Why both: SQLite never shrinks a WAL and checkpoints only at its threshold. On a disk with less free room than
that, the WAL itself fills the disk; the checkpoint, which needs a few more pages in the database file, then
fails too, and every later write fails for ever although the tables hold almost nothing. A small bounded WAL
is reused in place, so once a full disk has room again it stays usable."""
QUIET_S = 30.0
"""A disk-full state ends only after this long without a new failure, so a nearly full disk does not flap."""


def is_disk_full(exc: BaseException) -> bool:
    """True for SQLite's "database or disk is full" and for ENOSPC from a plain file write."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_FULL) or "disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open; never raises (the caller is already handling an error)."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("rollback failed: %s", exc)


class StorageWatch:
    """Thread-safe record of writes that failed because the disk was full, by component."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic, quiet_s: float = QUIET_S) -> None:
        self._monotonic = monotonic
        self.quiet_s = quiet_s
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}
        self._last_failure: float | None = None
        self.failures = 0

    def failed(self, component: str, exc: BaseException) -> bool:
        """Note a failed write; True when it was a full disk (the caller logs anything else itself)."""
        if not is_disk_full(exc):
            return False
        with self._lock:
            if not self._failing:
                log.error("disk full: %s could not write (%s)", component, exc)
            self._failing[component] = str(exc)[:200]
            self._last_failure = self._monotonic()
            self.failures += 1
        return True

    def succeeded(self, component: str) -> None:
        with self._lock:
            self._failing.pop(component, None)

    @property
    def disk_full(self) -> bool:
        """A component's last write failed, or any failed within the quiet time."""
        with self._lock:
            recent = self._last_failure is not None and self._monotonic() - self._last_failure < self.quiet_s
            return bool(self._failing) or recent

    def detail(self) -> str:
        with self._lock:
            names = ", ".join(sorted(self._failing)) or "no component now"
        return f"state disk full: writes failed ({names})"


@dataclass(frozen=True, slots=True)
class Damage:
    """A database file found damaged at open and moved aside."""

    path: Path
    moved_to: Path
    reason: str


def open_database(
    path: Path, prepare: Callable[[sqlite3.Connection], object]
) -> tuple[sqlite3.Connection, Damage | None]:
    """Open ``path`` (WAL, synchronous=FULL) and run ``prepare`` (the schema); a damaged file is moved aside.

    The check is SQLite's ``quick_check``: it reads every page once, which the bounded outbox and the small
    state files allow at start.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open(path, prepare, check=True), None
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and not _damage_message(exc):
            raise  # locked, unreadable, disk full: not a damaged file, and moving it would lose good data
        reason = str(exc)
    moved = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(moved) + suffix))
    log.critical("database %s is damaged (%s): moved to %s, starting a fresh one", path, reason, moved)
    return _open(path, prepare, check=False), Damage(path, moved, reason)


def _damage_message(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


def _open(path: Path, prepare: Callable[[sqlite3.Connection], object], check: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        if check:
            verdict = conn.execute("PRAGMA quick_check").fetchall()
            if verdict != [("ok",)]:
                raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(r[0] for r in verdict[:3]))
        prepare(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def copy_readable(conn: sqlite3.Connection, damaged: Path, tables: list[str]) -> dict[str, int]:
    """Copy the rows of ``tables`` that the damaged file still gives (each table up to its first bad page)
    into ``conn``; returns how many rows each table gave. The damaged file is opened read-only."""
    copied: dict[str, int] = {}
    try:
        old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    except sqlite3.Error:
        return copied
    try:
        for table in tables:
            rows: list[tuple[object, ...]] = []
            try:
                rows.extend(old.execute(f"SELECT * FROM {table}"))  # noqa: S608 - table names are our own
            except sqlite3.Error as exc:
                log.warning("damaged %s: %d rows of %s read before %s", damaged.name, len(rows), table, exc)
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)  # noqa: S608
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    rollback(conn)
                    log.warning("rows of %s not copied from %s: %s", table, damaged.name, exc)
                    continue
            copied[table] = len(rows)
    finally:
        old.close()
    return copied
