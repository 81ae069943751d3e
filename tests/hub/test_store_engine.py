"""The store's two engines behind one interface: the same statements give the same answers and errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_server.store.db import Database, migrate
from hub_server.store.engine import (
    Connection,
    IntegrityError,
    MissingTable,
    PostgresConnection,
    connect,
    pg_columns,
    pg_sql,
    transaction,
)
from tests import postgres


@pytest.fixture
def conn(engine_location: Path | str) -> Iterator[Connection]:
    connection = connect(engine_location)
    connection.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER, x REAL)")
    yield connection
    connection.close()


def test_sqlite_spellings_become_postgresql_ones_and_quoted_text_stays() -> None:
    assert pg_sql("INSERT OR IGNORE INTO t (k) VALUES (?)") == "INSERT INTO t (k) VALUES (%s) ON CONFLICT DO NOTHING"
    assert (
        pg_sql("INSERT OR IGNORE INTO t (k) VALUES (?) RETURNING k")
        == "INSERT INTO t (k) VALUES (%s) ON CONFLICT DO NOTHING RETURNING k"
    )
    assert (
        pg_sql("SELECT MAX(a), min(b, MAX(c, ?)), MAX((a + b)), f(x, y) FROM t WHERE n LIKE 'a?%' AND m % 2 = ?")
        == "SELECT MAX(a), LEAST(b, GREATEST(c, %s)), MAX((a + b)), f(x, y) FROM t WHERE n LIKE 'a?%%' AND m %% 2 = %s"
    )


def test_rows_answer_by_index_and_name_with_plain_numbers(conn: Connection) -> None:
    conn.executemany("INSERT INTO t (k, name, n, x) VALUES (?, ?, ?, ?)", [(1, "a", 2, 0.5), (2, "b", 3, 1.5)])
    row = conn.execute(
        "SELECT SUM(n) AS total, MIN(SUM(n), ?) AS low, COUNT(*) FROM t WHERE name != ?", (4, "c")
    ).fetchone()
    assert (row[0], row["total"], row["low"], row[2]) == (5, 5, 4, 2)
    assert type(row["total"]) is int  # PostgreSQL's SUM is NUMERIC; callers get what SQLite gives
    assert dict(conn.execute("SELECT k, name FROM t WHERE k = ?", (1,)).fetchone()) == {"k": 1, "name": "a"}
    truncated = conn.execute(f"SELECT {conn.truncate('?')}, {conn.truncate('?')}", (2.7, 3.5)).fetchone()
    assert tuple(truncated) == (2, 3)  # toward zero on both (a plain cast rounds on PostgreSQL)


def test_many_rows_in_one_statement_store_what_one_row_at_a_time_stores() -> None:
    postgres.require()
    conn = connect(postgres.fresh_database())
    try:
        assert isinstance(conn, PostgresConnection)
        conn.execute("CREATE TABLE t (k BIGINT PRIMARY KEY, name TEXT, n BIGINT, x DOUBLE PRECISION)")
        rows = [(1, "a\x00b", True, 2), (2, None, None, 0.5), (1, "again", 7, 1.0)]
        conn.execute_columns(
            "INSERT OR IGNORE INTO t (k, name, n, x) SELECT * FROM unnest(CAST(? AS BIGINT[]), CAST(? AS TEXT[]),"
            " CAST(? AS BIGINT[]), CAST(? AS DOUBLE PRECISION[]))",
            rows,
            "itif",
        )
        stored = [tuple(r) for r in conn.execute("SELECT k, name, n, x FROM t ORDER BY k")]
        # NUL as U+FFFD and a flag as 0/1 (as execute does), ints and floats mixed in one column, the later
        # copy of a key ignored
        assert stored == [(1, "a\ufffdb", 1, 2.0), (2, None, None, 0.5)]
        with pytest.raises(ValueError, match="zip"):
            pg_columns([(1, "a"), (2,)], "it")  # a short row is a bug, not a NULL
    finally:
        conn.close()


def test_errors_arrive_as_the_stores_own_and_a_savepoint_keeps_the_transaction(conn: Connection) -> None:
    conn.execute("INSERT INTO t (k, name) VALUES (?, ?)", (1, "a"))
    with pytest.raises(IntegrityError):
        conn.execute("INSERT INTO t (k, name) VALUES (?, ?)", (1, "again"))
    with pytest.raises(MissingTable):
        conn.execute("SELECT * FROM nowhere")
    with transaction(conn):
        with pytest.raises(IntegrityError), conn.savepoint():
            conn.execute("INSERT INTO t (k, name) VALUES (?, ?)", (1, "again"))
        conn.execute("INSERT INTO t (k, name) VALUES (?, ?)", (2, "b"))  # PostgreSQL: usable after the savepoint
    assert [r["name"] for r in conn.execute("SELECT name FROM t ORDER BY k")] == ["a", "b"]
    with pytest.raises(IntegrityError), transaction(conn):
        conn.execute("INSERT INTO t (k, name) VALUES (?, ?)", (3, "c"))
        conn.execute("INSERT INTO t (k, name) VALUES (?, ?)", (1, "again"))
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2  # the whole transaction undone
    assert not conn.in_transaction


def test_the_audit_log_refuses_changes_on_both_engines(engine_location: Path | str) -> None:
    db = Database(engine_location)
    with db.write() as conn:
        conn.execute("INSERT INTO audit_log (at, actor, action, target) VALUES (?, ?, ?, ?)", (1.5, "a", "b", "c"))
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(IntegrityError, match="append-only"), db.write() as conn:
            conn.execute(statement)
    assert db.conn.execute("SELECT actor FROM audit_log").fetchone()[0] == "a"


def test_instances_starting_together_migrate_once(engine_location: Path | str) -> None:
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            connection = connect(engine_location)
            applied.append(migrate(connection))
            connection.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    if isinstance(engine_location, Path):
        pytest.skip("SQLite keeps one hub process (its writer lock); the race is PostgreSQL's")
    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    names = [name for run in applied for name in run]
    assert len(names) == len(set(names)) and "0158_flow_cell_rows.sql" in names  # every migration exactly once
