"""PostgreSQL for the store tests: a fresh database per hub, on the server at ``$HUB_TEST_POSTGRES_URL``
(default: the local server, user postgres, as ``scripts/system-deps.sh --postgres`` sets it up).

``HUB_TEST_STORE=postgresql`` runs the hub's tests on PostgreSQL instead of SQLite (``make test`` does this for
the store suite after the SQLite run); then an unreachable server is an error, never a quiet skip.
"""

from __future__ import annotations

import atexit
import os
import secrets

import pytest

ADMIN_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_created: list[str] = []


def store_under_test() -> str:
    return os.environ.get("HUB_TEST_STORE", "sqlite")


def unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {ADMIN_URL} ({str(exc).strip()}); scripts/system-deps.sh --postgres starts one"
    return None


def fresh_database() -> str:
    """URL of a new, empty database, dropped when the test run ends."""
    import psycopg

    name = "hub_test_" + secrets.token_hex(6)
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _created.append(name)
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def require() -> None:
    """Skip (with the reason) where no server answers; under ``HUB_TEST_STORE=postgresql`` fail instead."""
    reason = unavailable()
    if reason is None:
        return
    if store_under_test() == "postgresql":
        pytest.fail(reason)
    pytest.skip(reason)


@atexit.register
def drop_created() -> None:
    """Drop the databases made so far, closing what is still connected to them (each open hub keeps one
    connection per thread: left open, a few dozen tests exhaust the server's connections)."""
    if not _created:
        return
    import psycopg

    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            while _created:
                conn.execute(f'DROP DATABASE IF EXISTS "{_created.pop()}" WITH (FORCE)')
    except psycopg.Error:
        pass  # a server gone at the end leaves databases named hub_test_*, nothing else
