"""Failed logins by key (a user, an address, a known browser's user), shared by the hub instances on one store."""

from __future__ import annotations

from collections.abc import Iterable

from hub_server.store.engine import Connection


def recent(conn: Connection, key: str, since: float) -> tuple[int, float | None]:
    """How many failures ``key`` has after ``since`` (Unix seconds), and the time of the latest."""
    row = conn.execute(
        "SELECT COUNT(*), MAX(failed_at) FROM login_failures WHERE key = ? AND failed_at > ?", (key, since)
    ).fetchone()
    return int(row[0]), row[1]


def record(conn: Connection, keys: Iterable[str], at: float, forget_before: float) -> None:
    """A failure at ``at`` for each key; failures at or before ``forget_before`` no longer count and go."""
    conn.execute("DELETE FROM login_failures WHERE failed_at <= ?", (forget_before,))
    conn.executemany("INSERT INTO login_failures (key, failed_at) VALUES (?, ?)", [(key, at) for key in keys])


def forget(conn: Connection, key: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE key = ?", (key,))
