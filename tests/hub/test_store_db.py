"""The store's database: migrations in one global order, one connection per thread, reads off the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from hub_server.store import db as store_db
from hub_server.store.db import Database, StoreError, connect, migrate, serving_request
from hub_server.store.engine import ProgrammingError


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'schema_migrations'")
    return sorted((r[0], " ".join(r[1].split())) for r in rows)


def _applied(conn: sqlite3.Connection) -> dict[int, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT number, name FROM schema_migrations")}


def test_a_migration_numbered_below_an_applied_one_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    conn = connect(tmp_path / "old.db")
    first = (1, "0001_a.sql", "CREATE TABLE a (x INTEGER);")
    last = (100, "0100_c.sql", "CREATE TABLE c (x INTEGER);")
    migrate(conn, [first, last])
    late = (50, "0050_b.sql", "CREATE TABLE b (x INTEGER);")
    newer = (101, "0101_d.sql", "CREATE TABLE d (x INTEGER);")
    with pytest.raises(StoreError, match=r"0050_b\.sql is numbered below 0100_c\.sql.*renumber it above 0100"):
        migrate(conn, [first, late, last, newer])
    # Here it would have run after 0100, on a new database before it: refused, nothing applied.
    assert _applied(conn) == {1: "0001_a.sql", 100: "0100_c.sql"}
    assert [name for name, _ in _schema(conn)] == ["a", "c"]


def test_databases_of_every_age_end_with_the_same_schema_and_migrations(tmp_path: Path) -> None:
    shipped = store_db._migrations()
    numbers = [n for n, _, _ in shipped]
    assert numbers == sorted(numbers)
    fresh = connect(tmp_path / "fresh.db")
    migrate(fresh)
    # Made before validations existed (0001-0155), and made after it arrived as 0040 (run second there).
    before = connect(tmp_path / "before.db")
    migrate(before, [m for m in shipped if m[0] < 156])
    as_0040 = connect(tmp_path / "as-0040.db")
    validations = next(m for m in shipped if m[1] == "0156_validations.sql")
    migrate(as_0040, sorted([m for m in shipped if m != validations] + [(40, "0040_validations.sql", validations[2])]))
    for old in (before, as_0040):
        migrate(old)
        assert _schema(old) == _schema(fresh)
        assert {n: name for n, name in _applied(old).items() if n != 40} == _applied(fresh)
        assert migrate(old) == []  # and nothing more on the next start


def test_a_connection_stays_in_the_thread_that_made_it(tmp_path: Path) -> None:
    db = Database(tmp_path / "hub.db")
    here = db.conn
    errors: list[BaseException] = []
    theirs: list[sqlite3.Connection] = []

    def other_thread() -> None:
        theirs.append(db.conn)
        try:
            here.execute("SELECT 1")
        except ProgrammingError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert theirs[0] is not here  # each thread its own connection
    assert errors, "a connection made in one thread was used in another"


async def test_reads_run_on_a_worker_thread_with_its_own_connection(tmp_path: Path) -> None:
    db = Database(tmp_path / "hub.db", refuse_on_loop=True)
    loop_thread = threading.get_ident()

    def where(conn: sqlite3.Connection, value: int) -> tuple[int, int]:
        assert conn is db.conn
        return threading.get_ident(), int(conn.execute("SELECT ?", (value,)).fetchone()[0])

    thread, value = await db.read(where, 7)
    assert (thread != loop_thread, value) == (True, 7)
    with serving_request():  # as a request handler
        with pytest.raises(StoreError, match="on the event loop"):
            db.conn.execute("SELECT 1")
        assert (await db.read(where, 8))[1] == 8
        assert await asyncio.to_thread(lambda: db.conn.execute("SELECT 9").fetchone()[0]) == 9


def test_the_quality_roll_up_of_windows_rolled_before_it_existed_is_what_rolling_up_gives(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from hub_protocol.codec import encode
    from hub_protocol.flows import FlowCell, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
    from hub_protocol.topics import Channel, device_topic
    from hub_server.config import IngestConfig
    from hub_server.ingest.writer import IngestCore
    from hub_server.store.retention import roll_up_batch

    db = Database(tmp_path / "hub.db")
    start = datetime(2026, 5, 4, tzinfo=UTC)
    windows = [
        FlowWindow(
            device=f"dev-{i % 2}",
            boot="b1",
            seq=i + 1,
            window_start=start + timedelta(minutes=15 * i),
            window_seconds=900,
            cells=[FlowCell(line="door", direction="in", object_class="pedestrian", count=10 + i % 3)],  # type: ignore[arg-type]
            quality=WindowQuality(observed_fraction=0.25 * (1 + i % 4), mean_fps=8.0 + i % 3, dropped_frames=i % 5),
            policy=PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=5 if i % 7 else 10),
        )
        for i in range(30)
    ]
    core = IngestCore(db.location, "cot", IngestConfig())
    core.process([(device_topic("cot", "s", w.device, Channel.FLOW), encode(w), start.timestamp()) for w in windows])
    core.close()
    query = "SELECT * FROM flow_quality_rollups ORDER BY bucket_start, device, policy"
    with db.write() as conn:
        while roll_up_batch(conn):
            pass
        rolled = [tuple(r) for r in conn.execute(query)]
        assert sum(r[3] for r in rolled) == 30
        conn.execute("DELETE FROM flow_quality_rollups")  # as a database rolled up before migration 0157
        sql = (Path(store_db.__file__).parent / "migrations" / "sqlite" / "0157_flow_chart_rollups.sql").read_text()
        backfill = next(s for s in store_db._statements(sql) if "INSERT INTO" in s)
        conn.execute(backfill)
        assert [tuple(r) for r in conn.execute(query)] == rolled  # sums of quarters: exact in any order
