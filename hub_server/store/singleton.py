"""Jobs that run in one hub instance at a time when several share a PostgreSQL store.

A :class:`Singleton` names a job (alarm evaluation, logistics rounds, retention, session purge). On PostgreSQL
it keeps a connection of its own and holds a session-level advisory lock for the name on it: the lock lasts as
long as that session, so an instance that stops, crashes or is killed loses it when the server drops its
session, and the next instance to ask takes the job over. On SQLite only one instance runs (``hub-server
serve`` refuses a second: :func:`lock_sqlite_store`), so it always holds.

``held()`` is blocking (it may reconnect): background loops call it through ``asyncio.to_thread``, one round at a
time, so any worker thread may run it; a lock keeps the shared connection to one thread at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from hub_server.store.engine import DatabaseError, PostgresConnection, is_postgres

log = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for ``name``: the same in every process and on every server version
    (PostgreSQL's own text hashes are not promised to stay the same across versions)."""
    digest = hashlib.sha256(b"hub-singleton:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Singleton:
    def __init__(self, location: Path | str, name: str) -> None:
        self.name = name
        self.key = lock_key(name)
        self._url = str(location) if is_postgres(location) else None
        self._lock = threading.Lock()
        self._conn: PostgresConnection | None = None
        self._held = False

    def held(self) -> bool:
        """Whether this process runs the job now: takes the lock when it is free. Never raises: with the
        connection broken the answer is False (another instance may have taken over) and the next call
        connects again."""
        if self._url is None:
            return True
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = PostgresConnection(self._url, any_thread=True)
                if self._held:
                    # The lock lives as long as the session: a session that still answers still holds it.
                    self._conn.execute("SELECT 1").fetchone()
                else:
                    row = self._conn.execute("SELECT pg_try_advisory_lock(?)", (self.key,)).fetchone()
                    self._held = bool(row[0])
                    if self._held:
                        log.info("this instance now runs %s", self.name)
            except DatabaseError as exc:
                if self._held:
                    log.warning("%s: lost the store connection that held the job (%s)", self.name, exc)
                self._drop()
            return self._held

    def release(self) -> None:
        """Gives the job up (closes the dedicated connection, which ends the lock); a later ``held()`` asks again."""
        with self._lock:
            if self._conn is not None and self._held:
                # Closing alone frees the lock only once the server has ended the session, a moment later; a
                # session already gone has taken the lock with it.
                with contextlib.suppress(DatabaseError):
                    self._conn.execute("SELECT pg_advisory_unlock(?)", (self.key,))
            self._drop()

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(DatabaseError):  # a broken connection is gone anyway, and the lock with it
                conn.close()


@asynccontextmanager
async def singleton(location: Path | str, name: str) -> AsyncIterator[Singleton]:
    """A job's singleton for as long as a background task runs; released (off the loop) when it stops."""
    job = Singleton(location, name)
    try:
        yield job
    finally:
        await asyncio.to_thread(job.release)


def when_held(job: Singleton, work: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[None]]:
    """``work`` as a round that is skipped while another instance runs the job."""

    async def round_() -> None:
        if await asyncio.to_thread(job.held):
            await work()

    return round_


class StoreInUse(Exception):
    """Another hub instance serves this SQLite store."""

    def __init__(self, pid: str) -> None:
        self.pid = pid
        super().__init__(f"in use by another hub instance (pid {pid})")


def lock_sqlite_store(path: Path) -> IO[str]:
    """Takes the one-instance lock of the SQLite store at ``path``: an exclusive lock on ``<path>.lock``, held
    while the returned file stays open (the system drops it when the process ends, however it ends). Raises
    ``StoreInUse`` at once when another process holds it. Only ``hub-server serve`` takes it: short commands
    may run beside the hub (SQLite lets several processes share a file); what assumes one instance is the
    serving hub's jobs and memory."""
    lock = open(Path(f"{path}.lock"), "a+", encoding="utf-8")  # noqa: SIM115 - open for as long as the hub runs
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid = lock.read().strip() or "unknown"
        lock.close()
        raise StoreInUse(pid) from None
    except BaseException:
        lock.close()
        raise
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
