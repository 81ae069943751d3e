"""The live notes' channel between hub instances that share a PostgreSQL store: NOTIFY to send, LISTEN to hear.

A NOTIFY payload must be shorter than 8000 bytes; a longer note is kept in ``live_notes`` (migration 0160) and
its id is sent instead. Those rows are pruned after ``KEEP_S``: a note is for the pages open now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hub_server.store.engine import Connection, OperationalError, PostgresConnection, _pg_errors, transaction

CHANNEL = "hub_live"
MAX_PAYLOAD_BYTES = 7900
"""Below PostgreSQL's limit of 8000 bytes, with room for the envelope around a kept note's id."""
KEEP_S = 300.0

_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
"""A listening connection only reads: without keepalives a silently dropped link would go unnoticed for hours."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One note to send: ``payload`` fits a NOTIFY; with ``body`` (too long for one) the body is kept and the
    payload is ``payload(id)``."""

    payload: str | Callable[[int], str]
    body: str | None = None


def send(conn: Connection, notes: Sequence[Outgoing], now: float) -> None:
    """Notify every note in one transaction: the listeners get them at the commit, with their kept bodies
    readable by then."""
    with transaction(conn):
        if any(not isinstance(note.payload, str) for note in notes):
            conn.execute("DELETE FROM live_notes WHERE at < ?", (now - KEEP_S,))
        payloads = []
        for note in notes:
            payload = note.payload
            if not isinstance(payload, str):
                row = conn.execute(
                    "INSERT INTO live_notes (at, body) VALUES (?, ?) RETURNING id", (now, note.body or "")
                ).fetchone()
                payload = payload(int(row[0]))
            payloads.append((CHANNEL, payload))
        # In order, in one round trip (executemany pipelines them): one note per round trip took more of the
        # sending thread's time than making the notes.
        conn.executemany("SELECT pg_notify(?, ?)", payloads)


def kept(conn: Connection, key: int) -> str | None:
    """The body of a kept note; None once pruned."""
    row = conn.execute("SELECT body FROM live_notes WHERE id = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


class ChannelListener:
    """A dedicated connection that LISTENs on the channel (a connection of its own: while it waits for
    notifications it runs nothing else). Use it from one thread; close it when done."""

    def __init__(self, url: str) -> None:
        self._conn = PostgresConnection(url, **_KEEPALIVE)
        try:
            self._conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            self._conn.close()
            raise
        self._reader: Connection | None = None
        self._url = url

    @property
    def backend_pid(self) -> int:
        """The server process of the listening connection (what ``pg_terminate_backend`` takes)."""
        return int(self._conn.raw.info.backend_pid)

    def receive(self, timeout: float) -> Iterator[str]:
        """Payloads as they arrive, for up to ``timeout`` seconds. A lost connection raises the store's
        ``OperationalError``."""
        with _pg_errors():
            for notification in self._conn.raw.notifies(timeout=timeout):
                yield notification.payload

    def kept(self, key: int) -> str | None:
        """A kept note's body, read on a second connection (the listening one is busy in ``receive``)."""
        for attempt in (1, 2):
            if self._reader is None:
                self._reader = PostgresConnection(self._url)
            try:
                return kept(self._reader, key)
            except OperationalError:
                self._reader.close()
                self._reader = None  # lost since the last note: once more on a new connection
                if attempt == 2:
                    raise
        return None

    def close(self) -> None:
        for conn in (self._conn, self._reader):
            if conn is not None:
                conn.close()
