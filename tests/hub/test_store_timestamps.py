"""One format for stored times: Unix seconds in every table, on both engines, and the migration (0162) that
converted the ISO-8601 text of accounts, audit, provisioning, logistics and alarms exactly."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub_server.accounts import audit
from hub_server.logistics.codes import StoredHash
from hub_server.store import accounts, alarms, login_failures, logistics, provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database, StoreError, _migrations, migrate
from hub_server.store.engine import Connection, IntegrityError, connect
from hub_server.store.timestamps import from_epoch, to_epoch
from tests.hub.conftest import add_token, add_user

CONVERSION = 162


@pytest.fixture
def old(engine_location: Path | str) -> Iterator[Connection]:
    """A store as it was before the conversion (every migration below it)."""
    conn = connect(engine_location)
    migrate(conn, [m for m in _migrations(conn.dialect) if m[0] < CONVERSION])
    yield conn
    conn.close()


def test_a_time_comes_back_exactly_as_it_was_stored() -> None:
    rng = random.Random(7)
    start = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(20_000):  # any microsecond up to 2150
        value = start + timedelta(microseconds=rng.randrange(180 * 365 * 86_400 * 10**6))
        assert from_epoch(to_epoch(value)) == value
    assert from_epoch(None) is None
    assert from_epoch(0.0) == start and from_epoch(0.0).tzinfo is UTC
    with pytest.raises(ValueError, match="time zone"):
        to_epoch(datetime(2026, 5, 4, 8, 0))  # naive: which zone?


# The two text forms the store wrote before 0162.
def _z(value: datetime) -> str:  # accounts, audit, provisioning
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _offset(value: datetime) -> str:  # logistics, alarms
    return value.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Table:
    name: str
    key: str
    other: dict[str, Any]  # per row: {column: value} for the columns that are not times (rows differ in `key`)
    times: tuple[str, ...]
    nullable: tuple[str, ...]


TABLES = [
    Table("users", "id", {"username": "u", "role": "admin", "password_hash": "h"}, ("created_at",), ()),
    Table(
        "sessions",
        "token_hash",
        {"user_id": 1, "csrf_token": "c"},
        ("created_at", "expires_at", "last_seen_at"),
        (),
    ),
    Table(
        "api_tokens",
        "id",
        {"name": "n", "role": "viewer", "token_hash": "t", "created_by": "cli:root"},
        ("created_at", "last_used_at", "revoked_at"),
        ("last_used_at", "revoked_at"),
    ),
    Table("audit_log", "id", {"actor": "a", "action": "b", "target": "c"}, ("at",), ()),
    Table(
        "provisioned_devices",
        "device",
        {"site": "s", "username": "d", "created_by": "cli:root"},
        ("created_at", "revoked_at"),
        ("revoked_at",),
    ),
    Table(
        "compartments",
        "number",
        {"device": "dev-a"},
        ("door_open_since", "reported_at"),
        ("door_open_since", "reported_at"),
    ),
    Table(
        "deliveries",
        "id",
        {"kind": "delivery", "device": "dev-a", "compartment": 1, "size": "S", "status": "collected"},
        (
            "created_at",
            "dropoff_expires_at",
            "dropped_at",
            "pickup_expires_at",
            "finished_at",
            "expired_at",
            "personal_data_deleted_at",
            "pickup_revealed_at",
        ),
        (
            "dropped_at",
            "pickup_expires_at",
            "finished_at",
            "expired_at",
            "personal_data_deleted_at",
            "pickup_revealed_at",
        ),
    ),
    Table(
        "delivery_codes",
        "purpose",
        {"delivery_id": "1", "salt": "s", "sha256": "h"},
        ("created_at", "expires_at"),
        ("expires_at",),
    ),
    Table(
        "locker_commands",
        "id",
        {"delivery_id": "1", "purpose": "pickup", "device": "dev-a", "payload": "{}"},
        ("created_at", "expires_at", "sent_at", "result_at"),
        ("sent_at", "result_at"),
    ),
    Table(
        "notifications",
        "id",
        {"delivery_id": "1", "event": "ready"},
        ("created_at", "next_attempt_at", "sent_at", "failed_at"),
        ("sent_at", "failed_at"),
    ),
    Table("locker_events_seen", "seq", {"device": "dev-a", "boot": "b"}, ("seen_at",), ()),
    Table(
        "alarms",
        "id",
        {"device": "dev-a", "kind": "door-left-open", "source": "device"},
        ("started_at", "last_seen_at", "ended_at", "acknowledged_at"),
        ("ended_at", "acknowledged_at"),
    ),
]
KEYS = {"id": ("1", "2"), "token_hash": ("t1", "t2"), "device": ("dev-a", "dev-b"), "purpose": ("dropoff", "pickup")}


def _key(table: Table, row: int) -> Any:
    return KEYS[table.key][row] if table.key in KEYS else row + 1


def _unique(table: Table, row: int) -> dict[str, Any]:
    # Columns that must differ between the two rows of a table.
    unique = {"users": "username", "api_tokens": "token_hash", "provisioned_devices": "username"}
    if table.name in unique:
        column = unique[table.name]
        return {column: f"{table.other[column]}{row}"}
    if table.name == "alarms":
        return {"compartment": row}  # one open alarm per device, kind and compartment
    return {}


def test_the_conversion_keeps_every_time_to_the_microsecond_on_both_engines(old: Connection) -> None:
    rng = random.Random(162)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    edges = [timedelta(microseconds=999_999), timedelta(0), timedelta(days=700, microseconds=1)]
    expected: dict[tuple[str, Any, str], datetime | None] = {}
    with_nulls = 0
    for table in TABLES:
        for row in (0, 1):
            # Row 0 as the accounts code wrote it (...Z), row 1 as the logistics code did (+00:00) and with its
            # nullable times NULL.
            values: dict[str, Any] = {table.key: _key(table, row), **table.other, **_unique(table, row)}
            for column in table.times:
                if row == 1 and column in table.nullable:
                    values[column] = None
                    expected[(table.name, values[table.key], column)] = None
                    with_nulls += 1
                    continue
                at = start + (edges.pop() if edges else timedelta(microseconds=rng.randrange(10**15)))
                values[column] = (_z if row == 0 else _offset)(at)
                expected[(table.name, values[table.key], column)] = at
            columns = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            old.execute(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", tuple(values.values()))
    if old.dialect == "sqlite":  # AUTOINCREMENT: an id once used (here by a deleted alarm) never comes back
        old.execute(
            "INSERT INTO alarms (id, device, kind, source, started_at, last_seen_at) VALUES (9, 'x', 'y', 'hub', ?, ?)",
            ("2024-01-01T00:00:00.000000+00:00",) * 2,
        )
        old.execute("DELETE FROM alarms WHERE id = 9")
    assert with_nulls > 10

    assert migrate(old) == ["0162_unix_seconds.sql"]

    for (name, key, column), at in expected.items():
        table = next(t for t in TABLES if t.name == name)
        stored = old.execute(f"SELECT {column} FROM {name} WHERE {table.key} = ?", (key,)).fetchone()[0]
        if at is None:
            assert stored is None, (name, column)
        else:
            assert isinstance(stored, float) and stored == to_epoch(at), (name, column, stored, at)
            assert from_epoch(stored) == at
    # What the tables enforced before, they enforce after: keys, the audit log's triggers, cascades, one open alarm.
    with pytest.raises(IntegrityError, match="append-only"):
        old.execute("UPDATE audit_log SET actor = 'x'")
    with pytest.raises(IntegrityError, match="append-only"):
        old.execute("DELETE FROM audit_log")
    with pytest.raises(IntegrityError):
        old.execute(
            "INSERT INTO alarms (device, kind, compartment, source, started_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
            ("dev-a", "door-left-open", 1, "device", 1.0, 1.0),
        )
    if old.dialect == "sqlite":
        (new_id,) = old.execute(
            "INSERT INTO alarms (device, kind, source, started_at, last_seen_at) VALUES ('z', 'k', 'hub', 1, 1)"
            " RETURNING id"
        ).fetchone()
        assert new_id == 10
    with pytest.raises(IntegrityError):
        old.execute(
            "INSERT INTO delivery_codes (delivery_id, purpose, salt, sha256, created_at)"
            " VALUES ('nope', 'return', 's', 'h', 1)"
        )
    assert old.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2
    old.execute("DELETE FROM users WHERE id = 1")
    assert old.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0  # ON DELETE CASCADE kept
    if old.dialect == "sqlite":
        assert old.execute("PRAGMA foreign_keys").fetchone()[0] == 1  # back on after the migration
        assert old.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_time_in_neither_form_stops_the_conversion(old: Connection) -> None:
    old.execute("INSERT INTO audit_log (at, actor, action, target) VALUES (?, 'a', 'b', 'c')", ("yesterday-ish",))
    with pytest.raises(StoreError, match="0162_unix_seconds"):
        migrate(old)
    # Nothing of it stays: the text and its table are as they were.
    assert old.execute("SELECT at FROM audit_log").fetchone()[0] == "yesterday-ish"


# --- one format after use ---------------------------------------------------------------------------------------

_TIME_NAMES = ("at", "status_changed")
_TIME_ENDINGS = ("_at", "_since", "_seen", "_start")


def _is_time(column: str) -> bool:
    return column in _TIME_NAMES or column.endswith(_TIME_ENDINGS)


def _columns(conn: Connection) -> list[tuple[str, str, str]]:
    """(table, column, declared type) of every base table, from the catalogue."""
    if conn.dialect == "sqlite":
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return [
            (table, r["name"], r["type"].upper())
            for table in tables
            for r in conn.execute(f"SELECT name, type FROM pragma_table_info('{table}')")
        ]
    rows = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' ORDER BY 1, 2"
    )
    return [(r[0], r[1], r[2].upper()) for r in rows]


def test_after_a_day_of_use_every_stored_time_is_unix_seconds(engine_location: Path | str) -> None:
    db = Database(engine_location)
    now = datetime.now(UTC)
    with db.write() as conn:
        user = accounts.add_user(conn, "alice", Role.ADMIN, "correct horse battery")
        accounts.create_session(conn, "session-token", user, "csrf", timedelta(hours=1))
        accounts.touch_session(conn, "session-token")
        token = accounts.add_token(conn, "integration", Role.VIEWER, "hubt_secret", "user:alice")
        accounts.mark_token_used(conn, token.id)
        accounts.revoke_token(conn, token.id)
        audit.record(conn, "user:alice", "token.revoke", f"token:{token.id}")
        provisioning.add(conn, "dev-a", "street", "dev-a", "user:alice")
        provisioning.revoke(conn, "dev-a")
        logistics.upsert_compartment(conn, "dev-a", 1, "S", False)
        logistics.record_compartment_state(conn, "dev-a", 1, "occupied", True, now, "b1", 1)
        logistics.mark_event_seen(conn, "dev-a", "b1", 1, now)
        logistics.insert_delivery(
            conn,
            {
                "id": "d-1",
                "kind": "delivery",
                "device": "dev-a",
                "compartment": 1,
                "size": "S",
                "status": "awaiting-dropoff",
                "created_at": now,
                "dropoff_expires_at": now + timedelta(days=1),
                "token_hash": "a" * 64,
            },
        )
        logistics.update_delivery(conn, "d-1", dropped_at=now, pickup_expires_at=now + timedelta(days=7))
        logistics.update_delivery(conn, "d-1", finished_at=now, expired_at=now, pickup_revealed_at=now)
        logistics.put_code(conn, "d-1", "pickup", StoredHash("salt", "sha"), now)
        logistics.set_code_expiry(conn, "d-1", "pickup", now + timedelta(days=7))
        logistics.insert_command(conn, "c-1", "d-1", "pickup", "dev-a", "{}", now, now + timedelta(hours=1))
        logistics.mark_command_sent(conn, "c-1", now)
        logistics.record_command_result(conn, "c-1", "dev-a", "done", "", now)
        logistics.queue_notification(conn, "d-1", "ready", {"to": "x"}, now)
        logistics.queue_notification(conn, "d-1", "reminder", {"to": "x"}, now)
        sent, failed = logistics.notifications_due(conn, now)
        logistics.notification_sent(conn, sent.id, now)
        logistics.notification_failed(conn, failed.id, "refused", None, now)
        logistics.erase_personal_data(conn, now + timedelta(days=1), now)
        alarm, _ = alarms.raise_alarm(conn, "dev-a", "door-left-open", 1, "device", "", now)
        alarms.end_alarm(conn, "dev-a", "door-left-open", 1, now)
        alarms.acknowledge(conn, alarm.id, "user:alice", now)
        login_failures.record(conn, ["key"], to_epoch(now), to_epoch(now - timedelta(minutes=15)))

    conn = db.conn
    times = [(t, c, kind) for t, c, kind in _columns(conn) if _is_time(c)]
    assert {t for t, _, _ in times} >= {
        "users", "sessions", "api_tokens", "audit_log", "provisioned_devices", "compartments", "deliveries",
        "delivery_codes", "locker_commands", "notifications", "locker_events_seen", "alarms", "events",
    }  # fmt: skip
    numeric = {"REAL", "DOUBLE PRECISION"}
    assert [(t, c, kind) for t, c, kind in times if kind not in numeric] == []
    empty = []
    for table, column, _ in times:
        values = [r[0] for r in conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")]
        assert all(type(v) is float for v in values), (table, column, values)
        if conn.dialect == "sqlite":  # what SQLite keeps, whatever it hands back
            stored = f"SELECT DISTINCT typeof({column}) FROM {table} WHERE {column} IS NOT NULL"
            assert {r[0] for r in conn.execute(stored)} <= {"real"}, (table, column)
        if table in {t.name for t in TABLES} and not values:
            empty.append((table, column))
    assert empty == []  # the flow gave every converted column a value to check
    # And they read back as the times they were.
    assert logistics.delivery(conn, "d-1").created_at == now  # type: ignore[union-attr]
    assert audit.query(conn)[0].at.tzinfo is UTC
    assert accounts.list_tokens(conn)[0].revoked_at is not None


# --- the API's times read as before -----------------------------------------------------------------------------

_ACCOUNT_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")  # what accounts.to_text wrote
_API_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")  # pydantic's form of a UTC datetime


async def test_the_api_gives_stored_times_in_the_form_it_always_had(client: TestClient[Any, Any], db: Database) -> None:
    headers = {"Authorization": f"Bearer {add_token(db, Role.ADMIN)}"}
    made = await (await client.post("/api/v1/tokens", json={"name": "n", "role": "viewer"}, headers=headers)).json()
    await client.get("/api/v1/users", headers={"Authorization": f"Bearer {made['token']}"})  # refused, but used
    revoked = await (await client.delete(f"/api/v1/tokens/{made['id']}", headers=headers)).json()
    tokens = await (await client.get("/api/v1/tokens", headers=headers)).json()
    for token in [made, revoked, *tokens]:
        for field in ("created_at", "last_used_at", "revoked_at"):
            assert token[field] is None or _ACCOUNT_TEXT.fullmatch(token[field]), (field, token[field])
    assert revoked["revoked_at"] is not None and revoked["last_used_at"] is not None
    stored = db.conn.execute("SELECT revoked_at FROM api_tokens WHERE id = ?", (made["id"],)).fetchone()[0]
    assert datetime.strptime(revoked["revoked_at"], "%Y-%m-%dT%H:%M:%S.%f%z") == from_epoch(stored)

    add_user(db, "olga", Role.VIEWER)
    (user,) = [u for u in await (await client.get("/api/v1/users", headers=headers)).json() if u["username"] == "olga"]
    assert _ACCOUNT_TEXT.fullmatch(user["created_at"])

    entries = await (await client.get("/api/v1/audit", headers=headers)).json()
    assert [e["action"] for e in entries] == ["token.revoke", "token.add"]
    for entry in entries:
        assert _API_DATETIME.fullmatch(entry["at"]), entry["at"]
    (since,) = [e["at"] for e in entries if e["action"] == "token.revoke"]
    later = await (await client.get("/api/v1/audit", params={"since": since}, headers=headers)).json()
    assert [e["action"] for e in later] == ["token.revoke"]  # a time filter compares seconds with seconds
