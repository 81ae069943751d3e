"""The ingest writer's SQL (``hub_server.ingest.writer``): its connection settings, the state it reloads at start,
and the rows of one batch, stored in one transaction.

Row tuples follow the column order of each statement below; ``ROW_STATEMENTS`` names them in the order a batch
stores them (``rows[name]`` of ``insert_rows``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub_server.store.engine import PG_ARRAY_TYPES, Connection, Cursor, PostgresConnection

_INSERT_EVENT = "INSERT OR IGNORE INTO events (device, boot, seq, channel, received_at, payload) VALUES (?,?,?,?,?,?)"
_INSERT_FLOW = (
    "INSERT OR IGNORE INTO flow_windows (device, boot, seq, site, window_start, window_seconds, observed_fraction,"
    " mean_fps, dropped_frames, policy_kind, policy, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_CELL = (
    "INSERT OR IGNORE INTO flow_cell_rows (device, boot, seq, line, direction, object_class, count)"
    " VALUES (?,?,?,?,?,?,?)"
)
_INSERT_TOTAL = (
    "INSERT OR IGNORE INTO flow_total_rows (device, boot, seq, line, direction, object_class, count)"
    " VALUES (?,?,?,?,?,?,?)"
)
_INSERT_LOCKER = (
    "INSERT OR IGNORE INTO locker_events (device, boot, seq, site, at, compartment, state, previous, cause,"
    " reservation, operator, door_open, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_ALARM = (
    "INSERT OR IGNORE INTO device_alarms (device, boot, seq, site, at, alarm, active, compartment, detail,"
    " received_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_RESULT = (
    "INSERT OR IGNORE INTO command_results (device, boot, seq, command_id, status, detail, at, received_at)"
    " VALUES (?,?,?,?,?,?,?,?)"
)
_INSERT_VALIDATION = (
    "INSERT OR IGNORE INTO validations (device, boot, seq, site, started_at, minutes, error, policy, payload,"
    " received_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_RANGE = (
    "INSERT INTO dropped_ranges (device, boot, first_seq, last_seq, declared_at, dropped_total) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (device, boot, first_seq) DO UPDATE SET last_seq = max(dropped_ranges.last_seq, excluded.last_seq),"
    " declared_at = excluded.declared_at, dropped_total = max(dropped_ranges.dropped_total, excluded.dropped_total)"
)
_UPSERT_WATERMARK = (
    "INSERT INTO boot_watermarks (device, boot, upto, max_seq, first_seen, updated_at) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (device, boot) DO UPDATE SET upto = excluded.upto, max_seq = excluded.max_seq,"
    " updated_at = excluded.updated_at"
)
_UPSERT_DEVICE = (
    "INSERT INTO devices (device, site, first_seen, last_seen, online, offline_reason, status_changed, boot,"
    " dropped_total) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (device) DO UPDATE SET site = excluded.site,"
    " last_seen = excluded.last_seen, online = excluded.online, offline_reason = excluded.offline_reason,"
    " status_changed = excluded.status_changed, boot = excluded.boot, dropped_total = excluded.dropped_total"
)
_UPSERT_HEALTH = (
    "INSERT INTO health_latest (device, at, received_at, payload) VALUES (?,?,?,?) ON CONFLICT (device) DO UPDATE"
    " SET at = excluded.at, received_at = excluded.received_at, payload = excluded.payload WHERE excluded.at >= health_latest.at"
)
_INSERT_SAMPLE = (
    "INSERT OR IGNORE INTO health_samples (device, at, boot, uptime_s, cpu_temp_c, load1, mem_used_fraction,"
    " disk_free_bytes, outbox_depth, outbox_oldest_age_s, dropped_total, camera_state, fps)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_REGISTER = (
    "INSERT INTO register_latest (device, site, received_at, payload) VALUES (?,?,?,?) ON CONFLICT (device)"
    " DO UPDATE SET site = excluded.site, received_at = excluded.received_at, payload = excluded.payload"
)
_UPSERT_INVALID = (
    "INSERT INTO invalid_messages (device, kind, count, first_at, last_at, last_topic, last_reason)"
    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (device, kind) DO UPDATE SET count = invalid_messages.count + excluded.count,"
    " last_at = excluded.last_at, last_topic = excluded.last_topic, last_reason = excluded.last_reason"
)

_INSERT_GAP = "INSERT OR IGNORE INTO sequence_gaps (device, boot, first_seq, last_seq, detected_at) VALUES (?,?,?,?,?)"

ROW_STATEMENTS = (
    ("events", _INSERT_EVENT),
    ("flows", _INSERT_FLOW),
    ("cells", _INSERT_CELL),  # after their window: a cell row refers to it
    ("totals", _INSERT_TOTAL),
    ("lockers", _INSERT_LOCKER),
    ("alarms", _INSERT_ALARM),
    ("results", _INSERT_RESULT),
    ("validations", _INSERT_VALIDATION),
    ("ranges", _UPSERT_RANGE),
    ("health", _UPSERT_HEALTH),
    ("samples", _INSERT_SAMPLE),
    ("register", _UPSERT_REGISTER),
)

Rows = Iterable[tuple[Any, ...]]

_VALUES = re.compile(r"VALUES \((?:\?,)*\?\)")


def _unnest(sql: str, types: str) -> tuple[str, str]:
    """``sql``'s ``VALUES (?,...)`` as ``SELECT * FROM unnest(...)`` with one array per column (``types``: a
    letter per column, ``engine.pg_columns``): a batch's rows in one statement, which PostgreSQL executes once
    instead of once per row. Only where a batch never holds two rows of one key (``ON CONFLICT DO UPDATE``
    refuses to change a row twice in one statement)."""
    values = _VALUES.findall(sql)
    assert len(values) == 1 and values[0].count("?") == len(types), sql
    arrays = ", ".join(f"CAST(? AS {PG_ARRAY_TYPES[kind]}[])" for kind in types)
    return _VALUES.sub(f"SELECT * FROM unnest({arrays})", sql), types  # noqa: S608 - fixed fragments


# The bulk of a batch, for PostgreSQL: (statement, column types). A batch's events, windows and their rows are
# unique by key (the writer skips a seq it stored or saw in the batch), its watermarks and devices by dict key.
_PG_BULK: dict[str, tuple[str, str]] = {
    "events": _unnest(_INSERT_EVENT, "ttitft"),
    "flows": _unnest(_INSERT_FLOW, "ttitfiffittf"),
    "cells": _unnest(_INSERT_CELL, "ttittti"),
    "totals": _unnest(_INSERT_TOTAL, "ttittti"),
    "watermarks": _unnest(_UPSERT_WATERMARK, "ttiiff"),
    "devices": _unnest(_UPSERT_DEVICE, "ttffitfti"),
}


def _many(conn: Connection, name: str, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    bulk = _PG_BULK.get(name)
    if bulk is not None and len(rows) > 1 and isinstance(conn, PostgresConnection):
        conn.execute_columns(bulk[0], rows, bulk[1])
    else:
        conn.executemany(sql, rows)


def tune_for_writer(conn: Connection) -> None:
    if conn.dialect != "sqlite":
        return  # PostgreSQL: a COMMIT is durable (synchronous_commit on) before it returns
    conn.execute("PRAGMA synchronous=FULL")  # we acknowledge after commit: it must survive power loss
    conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: index pages of the busy tables stay in memory
    # Checkpoint every 32 MiB of WAL instead of 4: index pages changed by many commits are copied back once.
    conn.execute("PRAGMA wal_autocheckpoint=8192")


# -- the state the writer reloads --------------------------------------------------------------------------
# ``only``: the listed devices' rows (PostgreSQL; instances sharing the ingest reload what they are about to
# change); None: every device's.

Only = list[str] | None


def _only(only: Only, column: str, glue: str) -> tuple[str, tuple[Any, ...]]:
    if only is None:
        return "", ()
    return f" {glue} {column} = ANY(CAST(? AS TEXT[]))", (only,)


def boot_watermarks(conn: Connection, only: Only = None) -> Cursor:
    """(device, boot, upto, max_seq) of every boot."""
    where, params = _only(only, "device", "WHERE")
    return conn.execute("SELECT device, boot, upto, max_seq FROM boot_watermarks" + where, params)  # noqa: S608 - fixed fragments


def events_above_watermarks(conn: Connection, only: Only = None) -> Cursor:
    """(device, boot, seq) of every stored event above its boot's watermark."""
    if conn.dialect == "sqlite":
        return conn.execute(
            "SELECT e.device, e.boot, e.seq FROM events e JOIN boot_watermarks w"
            " ON e.device = w.device AND e.boot = w.boot WHERE e.seq > w.upto"
        )
    # PostgreSQL reloads often: a batch's devices each batch, every device at the shared ingest's checks (every
    # SHARED_CHECK_S). Planned as a join it read the whole events table each time (without fresh statistics
    # for a batch's devices, with them for all), so its cost grew with the table. Per watermark from the
    # primary key instead: few events sit above a watermark (OFFSET 0 keeps the planner from folding the
    # subquery back into a join).
    where, params = _only(only, "w.device", "WHERE")
    return conn.execute(
        "SELECT w.device, w.boot, e.seq FROM boot_watermarks w CROSS JOIN LATERAL (SELECT e.seq FROM events e"  # noqa: S608 - fixed fragments
        " WHERE e.device = w.device AND e.boot = w.boot AND e.seq > w.upto OFFSET 0) e" + where,
        params,
    )


def dropped_ranges(conn: Connection, only: Only = None) -> Cursor:
    """(device, boot, first_seq, last_seq) of every range a device declared dropped."""
    where, params = _only(only, "device", "WHERE")
    return conn.execute("SELECT device, boot, first_seq, last_seq FROM dropped_ranges" + where, params)  # noqa: S608 - fixed fragments


def open_gaps(conn: Connection, only: Only = None) -> Cursor:
    """(device, boot, first_seq, last_seq) of every sequence gap not resolved yet."""
    where, params = _only(only, "device", "AND")
    return conn.execute(
        "SELECT device, boot, first_seq, last_seq FROM sequence_gaps WHERE resolved_at IS NULL" + where,  # noqa: S608
        params,
    )


def devices(conn: Connection, only: Only = None) -> Cursor:
    """Every device's row in the column order of ``upsert_devices``."""
    where, params = _only(only, "device", "WHERE")
    return conn.execute(
        "SELECT device, site, first_seen, last_seen, online, offline_reason, status_changed, boot,"  # noqa: S608
        " dropped_total FROM devices" + where,
        params,
    )


# -- instances sharing the ingest (PostgreSQL) ---------------------------------------------------------------


def lock_devices(conn: Connection, devices: Iterable[str]) -> None:
    """Transaction locks, one per device, taken in one order by every instance (so never a deadlock): two
    instances that receive messages of one device take turns, each reading what the other stored."""
    names = sorted(set(devices))
    if names:
        # unnest keeps the (sorted) array's order, and the locks are taken row by row in that order.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(d, 7)) FROM unnest(CAST(? AS TEXT[])) AS d", (names,)
        )


def event_stored(conn: Connection, device: str, boot: str, seq: int) -> bool:
    row = conn.execute("SELECT 1 FROM events WHERE device = ? AND boot = ? AND seq = ?", (device, boot, seq))
    return row.fetchone() is not None


# -- one batch (inside ``transaction``) --------------------------------------------------------------------


def insert_rows(conn: Connection, rows: Mapping[str, list[tuple[Any, ...]]]) -> None:
    for name, sql in ROW_STATEMENTS:
        if rows.get(name):
            _many(conn, name, sql, rows[name])


def upsert_watermarks(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """At most one row per (device, boot)."""
    _many(conn, "watermarks", _UPSERT_WATERMARK, rows)


def upsert_devices(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """At most one row per device."""
    _many(conn, "devices", _UPSERT_DEVICE, rows)


def upsert_invalid(conn: Connection, rows: Rows) -> None:
    conn.executemany(_UPSERT_INVALID, rows)


def insert_gaps(conn: Connection, rows: Rows) -> None:
    conn.executemany(_INSERT_GAP, rows)


def resolve_gaps(conn: Connection, device: str, boot: str, upto: int, now: float) -> int:
    """Mark the boot's gaps up to ``upto`` resolved; returns how many stay open."""
    conn.execute(
        "UPDATE sequence_gaps SET resolved_at = ? WHERE device = ? AND boot = ? AND resolved_at IS NULL"
        " AND last_seq <= ?",
        (now, device, boot, upto),
    )
    remaining: int = conn.execute(
        "SELECT COUNT(*) FROM sequence_gaps WHERE device = ? AND boot = ? AND resolved_at IS NULL", (device, boot)
    ).fetchone()[0]
    return remaining
