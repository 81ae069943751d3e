"""The store's connections and in-place schema migrations, on SQLite or PostgreSQL (``engine.py``).

Migrations are the ``NNNN_name.sql`` files in ``migrations/<dialect>/``, applied in number order, each exactly
once, in a transaction, with the applied numbers kept in ``schema_migrations``. An existing database is upgraded
in place at start. The order is one and global across dialects: a new migration takes the next number after the
highest one, whatever its domain, with one file per dialect. A migration numbered below one a database already
has is refused (it would run after that one there and before it on a fresh database, so the two would end up
different).
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from hub_server.store.engine import Connection, DatabaseError, connect, is_postgres, transaction

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["Connection", "Database", "StoreError", "connect", "migrate", "transaction"]


class StoreError(RuntimeError):
    """The database could not be opened or migrated."""


RENUMBERED = {40: 156}
"""Old number -> new number of a migration moved up to its place in the global order. ``0040_validations.sql``
came after 0155: databases made before it ran it last, new ones first. As 0156 it runs last everywhere; a
database that has it as 0040 has it as 0156 too."""

_MIGRATION_LOCK = 0x6875625F6D6967  # "hub_mig": instances starting together migrate one after the other


def _migrations(dialect: str = "sqlite") -> list[tuple[int, str, str]]:
    folder = resources.files("hub_server.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _, _ in found]
    if len(numbers) != len(set(numbers)):
        raise StoreError(f"two migrations share a number: {sorted(numbers)}")
    return found


def migrate(conn: Connection, migrations: list[tuple[int, str, str]] | None = None) -> list[str]:
    """Apply every migration not yet applied, in number order; returns the names applied now.

    ``migrations``: (number, file name, SQL) in number order; the package's own for the connection's dialect
    by default.
    """
    found = _migrations(conn.dialect) if migrations is None else migrations
    with transaction(conn):
        if conn.dialect == "postgresql":
            conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (number INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    done = {row[0]: row[1] for row in conn.execute("SELECT number, name FROM schema_migrations")}
    names = {number: name for number, name, _ in found}
    for old, new in RENUMBERED.items():
        if old in done and new not in done and new in names:
            conn.execute("INSERT INTO schema_migrations (number, name) VALUES (?, ?)", (new, names[new]))
            done[new] = names[new]
    pending = [m for m in found if m[0] not in done]
    if pending and done and pending[0][0] < max(done):
        newest = max(done)
        raise StoreError(
            f"migration {pending[0][1]} is numbered below {done[newest]}, which this database already has: it would "
            f"run after it here but before it on a new database; renumber it above {newest:04d}"
        )
    applied = []
    for number, name, sql in pending:
        try:
            if conn.dialect == "postgresql":
                with transaction(conn):
                    conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                    if conn.execute("SELECT 1 FROM schema_migrations WHERE number = ?", (number,)).fetchone():
                        continue  # another instance applied it while this one waited for the lock
                    conn.execute(sql)  # one call: PostgreSQL takes several statements (and $$ bodies) at once
                    conn.execute("INSERT INTO schema_migrations (number, name) VALUES (?, ?)", (number, name))
            else:
                _migrate_sqlite(conn, number, name, sql)
        except DatabaseError as exc:
            raise StoreError(f"migration {name} failed: {exc}") from exc
        applied.append(name)
    return applied


def _migrate_sqlite(conn: Connection, number: int, name: str, sql: str) -> None:
    # Foreign keys off, as SQLite's own procedure for rebuilding a table asks (PRAGMA foreign_keys is a no-op
    # inside a transaction, so it is set around it): with them on, dropping a parent table would fail or delete
    # its children's rows (ON DELETE CASCADE). They are checked before the commit instead.
    enforced = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        with transaction(conn):
            for statement in _statements(sql):
                conn.execute(statement)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                first = broken[0]
                raise StoreError(
                    f"migration {name} failed: it leaves {len(broken)} row(s) with a broken foreign key, "
                    f"the first in {first[0]} (rowid {first[1]}) referring to {first[2]}"
                )
            conn.execute("INSERT INTO schema_migrations (number, name) VALUES (?, ?)", (number, name))
    finally:
        if enforced:
            conn.execute("PRAGMA foreign_keys=ON")


def _statements(sql: str) -> Iterator[str]:
    # executescript() would commit on its own; split so a migration stays one transaction.
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer


_SERVING = contextvars.ContextVar("serving_request", default=False)


@contextmanager
def serving_request() -> Iterator[None]:
    """Marks a request handler's run (the app's outermost middleware), for ``refuse_on_loop``."""
    token = _SERVING.set(True)
    try:
        yield
    finally:
        _SERVING.reset(token)


def _handler_on_event_loop() -> bool:
    if not _SERVING.get():
        return False
    try:
        asyncio.get_running_loop()  # a worker thread inherits the mark but runs no loop
    except RuntimeError:
        return False
    return True


class Database:
    """Owns the store's location (a SQLite file or a ``postgresql://`` URL); hands out one connection per thread
    and a write transaction helper.

    Handlers reach the store through :meth:`read` (or ``asyncio.to_thread`` of a function that takes
    ``db.conn`` itself): the query runs on a worker thread with that thread's own connection, never on the
    event loop and never on a connection made in another thread. ``refuse_on_loop`` (the tests turn it on)
    makes a connection asked for by a request handler on the event loop an error, so a handler that would
    block the loop fails its tests.
    """

    def __init__(self, location: Path | str, *, refuse_on_loop: bool = False) -> None:
        self.location = location
        self.dialect = "postgresql" if is_postgres(location) else "sqlite"
        self.refuse_on_loop = refuse_on_loop
        self._local = threading.local()
        self._write_lock = threading.Lock()
        migrate(self._connection())

    @property
    def conn(self) -> Connection:
        """This thread's connection."""
        if self.refuse_on_loop and _handler_on_event_loop():
            raise StoreError("a store call on the event loop: run it with Database.read or asyncio.to_thread")
        return self._connection()

    async def read(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, *args)`` on a worker thread with that thread's connection; the loop waits without blocking."""

        def call() -> T:
            return fn(self.conn, *args, **kwargs)

        return await asyncio.to_thread(call)

    async def transact(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(conn, *args)`` in one write transaction (:meth:`write`) on a worker thread."""

        def call() -> T:
            with self.write() as conn:
                return fn(conn, *args, **kwargs)

        return await asyncio.to_thread(call)

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.location)
            self._local.conn = conn
        return conn

    def answers(self) -> bool:
        """Whether the database can be queried now (for health checks)."""
        try:
            self.conn.execute("SELECT 1").fetchone()
        except DatabaseError:
            return False
        return True

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; writers in this process take turns (on SQLite instead of retrying on
        SQLITE_BUSY)."""
        with self._write_lock:
            conn = self.conn
            with transaction(conn):
                yield conn
