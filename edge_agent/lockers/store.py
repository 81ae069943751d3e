"""SQLite state of the locker bank: compartments, code hashes, opens in progress, alarms, lockout, history.

Events are written to ``pending_events`` in the same transaction as the state change they describe and
deleted only after the sink has stored them; the outbox keeps a hand-over mark (``handoff_source``, event
id) with each, so a crash between the two neither loses nor doubles them.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent.storage import StorageWatch, copy_readable, open_database, rollback
from hub_protocol.lockers import CodePurpose, CompartmentState
from hub_protocol.topics import Channel

SCHEMA = """
CREATE TABLE IF NOT EXISTS compartments (
    number INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    reservation TEXT,
    before_service TEXT,
    door_open INTEGER NOT NULL DEFAULT 0,
    door_changed_at TEXT NOT NULL,
    opens_without_change INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS codes (
    id INTEGER PRIMARY KEY,
    reservation TEXT NOT NULL,
    compartment INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    salt TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS pending_opens (
    compartment INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    code_id INTEGER,
    operator TEXT,
    started_at TEXT NOT NULL,
    door_opened INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alarms_active (
    kind TEXT NOT NULL,
    compartment INTEGER NOT NULL,
    raised_at TEXT NOT NULL,
    PRIMARY KEY (kind, compartment)
);
CREATE TABLE IF NOT EXISTS lockout (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    failures INTEGER NOT NULL,
    lockouts INTEGER NOT NULL,
    until TEXT,
    last_failure_at TEXT
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    compartment INTEGER NOT NULL,
    state TEXT NOT NULL,
    previous TEXT,
    cause TEXT NOT NULL,
    reservation TEXT,
    operator TEXT,
    door_open INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_compartment ON transitions (compartment, id);
CREATE TABLE IF NOT EXISTS pending_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wrong_codes (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    token TEXT NOT NULL
);
"""
TABLES = [
    "compartments",
    "codes",
    "pending_opens",
    "alarms_active",
    "lockout",
    "transitions",
    "pending_events",
    "wrong_codes",
]
"""Copied from a damaged file into the fresh one, as far as they can be read."""
COMPONENT = "lockers"


@dataclass(frozen=True, slots=True)
class CompartmentRow:
    number: int
    state: CompartmentState
    reservation: str | None
    before_service: CompartmentState | None
    door_open: bool
    door_changed_at: datetime
    opens_without_change: int


@dataclass(frozen=True, slots=True)
class CodeRow:
    id: int
    reservation: str
    compartment: int
    purpose: CodePurpose
    salt: str
    sha256: str
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingOpen:
    compartment: int
    kind: str  # "code" or "maintenance"
    code_id: int | None
    operator: str | None
    started_at: datetime
    door_opened: bool


@dataclass(frozen=True, slots=True)
class LockoutRow:
    failures: int
    lockouts: int
    until: datetime | None
    last_failure_at: datetime | None


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


_SELECT_CODES = "SELECT id, reservation, compartment, purpose, salt, sha256, expires_at, used_at FROM codes"


def _code_row(r: Any) -> CodeRow:
    return CodeRow(r[0], r[1], r[2], CodePurpose(r[3]), r[4], r[5], datetime.fromisoformat(r[6]), _dt(r[7]))


def _prepare(db: sqlite3.Connection) -> None:
    _upgrade_pending_events(db)
    db.executescript(SCHEMA)


def _upgrade_pending_events(db: sqlite3.Connection) -> None:
    # Event ids are the keys of the hand-over to the outbox: they must never be used twice, which plain
    # INTEGER PRIMARY KEY allows once the table is empty. Stores from before get AUTOINCREMENT here.
    row = db.execute("SELECT sql FROM sqlite_master WHERE name = 'pending_events'").fetchone()
    if row is None or "AUTOINCREMENT" in str(row[0]).upper():
        return
    db.executescript(
        """BEGIN IMMEDIATE;
        ALTER TABLE pending_events RENAME TO pending_events_old;
        CREATE TABLE pending_events (id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, fields TEXT NOT NULL);
        INSERT INTO pending_events (id, channel, fields) SELECT id, channel, fields FROM pending_events_old;
        DROP TABLE pending_events_old;
        COMMIT;"""
    )


class LockerStore:
    """One SQLite file; every method runs under the caller's lock (the state machine serialises access)."""

    def __init__(self, path: Path, watch: StorageWatch | None = None) -> None:
        self.path = path
        self.watch = watch or StorageWatch()
        # synchronous=FULL: a power cut must not lose a code's use or a state change.
        self._db, self.damage = open_database(path, _prepare)
        self.recovered: dict[str, int] = {}
        if self.damage is not None:
            # store_identity is not copied: the fresh file names a new hand-over source, so event ids that
            # restart in it cannot be mistaken for ones the outbox already took from the damaged file.
            self.recovered = copy_readable(self._db, self.damage.moved_to, TABLES)
        self._db.execute("INSERT OR IGNORE INTO store_identity (id, token) VALUES (1, ?)", (secrets.token_hex(8),))
        token = self._db.execute("SELECT token FROM store_identity").fetchone()[0]
        self.handoff_source = f"lockers-{token}"
        """Names this store's events to the outbox; a new store (file deleted or damaged) starts a new count."""
        self._guard = threading.RLock()
        self._depth = 0

    def damage_report(self) -> str | None:
        """What the operator must know when the file was found damaged at start, else None."""
        if self.damage is None:
            return None
        kept = ", ".join(f"{n} {t}" for t, n in self.recovered.items() if n) or "nothing"
        return (
            f"{self.path.name} was damaged ({self.damage.reason[:100]}); moved to {self.damage.moved_to.name}; "
            f"recovered {kept}; re-send the reservations of this bank"
        )[:500]

    def close(self) -> None:
        with self._guard:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._guard:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
                if outer:
                    self._db.execute("COMMIT")
            except BaseException as exc:
                if outer:
                    rollback(self._db)  # on a full disk SQLite has rolled back already
                    self.watch.failed(COMPONENT, exc)
                raise
            finally:
                self._depth -= 1
            if outer:
                self.watch.succeeded(COMPONENT)

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._guard:
            return self._db.execute(sql, params)

    # Compartments
    def compartment(self, number: int) -> CompartmentRow | None:
        row = self._exec(
            "SELECT number, state, reservation, before_service, door_open, door_changed_at, opens_without_change"
            " FROM compartments WHERE number = ?",
            (number,),
        ).fetchone()
        if row is None:
            return None
        return CompartmentRow(
            number=row[0],
            state=CompartmentState(row[1]),
            reservation=row[2],
            before_service=None if row[3] is None else CompartmentState(row[3]),
            door_open=bool(row[4]),
            door_changed_at=datetime.fromisoformat(row[5]),
            opens_without_change=row[6],
        )

    def put_compartment(self, row: CompartmentRow) -> None:
        self._exec(
            "INSERT OR REPLACE INTO compartments VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.number,
                row.state.value,
                row.reservation,
                None if row.before_service is None else row.before_service.value,
                int(row.door_open),
                row.door_changed_at.isoformat(),
                row.opens_without_change,
            ),
        )

    def holding(self, reservation: str) -> list[int]:
        rows = self._exec("SELECT number FROM compartments WHERE reservation = ?", (reservation,)).fetchall()
        return [r[0] for r in rows]

    # Codes
    def codes(self) -> list[CodeRow]:
        return [_code_row(r) for r in self._exec(_SELECT_CODES).fetchall()]

    def code(self, code_id: int) -> CodeRow | None:
        row = self._exec(_SELECT_CODES + " WHERE id = ?", (code_id,)).fetchone()
        return None if row is None else _code_row(row)

    def add_code(
        self, reservation: str, compartment: int, purpose: CodePurpose, salt: str, sha256: str, expires_at: datetime
    ) -> None:
        # A new code for the same reservation and purpose supersedes the old one (the hub re-issued it).
        self.delete_code(reservation, purpose)
        self._exec(
            "INSERT INTO codes (reservation, compartment, purpose, salt, sha256, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (reservation, compartment, purpose.value, salt, sha256, expires_at.isoformat()),
        )

    def set_code_used(self, code_id: int, at: datetime | None) -> None:
        self._exec("UPDATE codes SET used_at = ? WHERE id = ?", (_ts(at), code_id))

    def delete_code(self, reservation: str, purpose: CodePurpose) -> None:
        self._exec("DELETE FROM codes WHERE reservation = ? AND purpose = ?", (reservation, purpose.value))

    def delete_codes(self, reservation: str) -> None:
        self._exec("DELETE FROM codes WHERE reservation = ?", (reservation,))

    def purge_codes(self, expired_before: datetime) -> None:
        self._exec("DELETE FROM codes WHERE expires_at < ?", (expired_before.isoformat(),))

    # Opens in progress
    def pending(self, number: int) -> PendingOpen | None:
        row = self._exec(
            "SELECT compartment, kind, code_id, operator, started_at, door_opened FROM pending_opens"
            " WHERE compartment = ?",
            (number,),
        ).fetchone()
        if row is None:
            return None
        return PendingOpen(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]), bool(row[5]))

    def put_pending(self, p: PendingOpen) -> None:
        self._exec(
            "INSERT OR REPLACE INTO pending_opens VALUES (?, ?, ?, ?, ?, ?)",
            (p.compartment, p.kind, p.code_id, p.operator, p.started_at.isoformat(), int(p.door_opened)),
        )

    def delete_pending(self, number: int) -> None:
        self._exec("DELETE FROM pending_opens WHERE compartment = ?", (number,))

    # Alarms
    def alarm_active(self, kind: str, compartment: int | None) -> bool:
        row = self._exec(
            "SELECT 1 FROM alarms_active WHERE kind = ? AND compartment = ?", (kind, compartment or 0)
        ).fetchone()
        return row is not None

    def set_alarm(self, kind: str, compartment: int | None, active: bool, at: datetime) -> None:
        if active:
            self._exec(
                "INSERT OR REPLACE INTO alarms_active VALUES (?, ?, ?)", (kind, compartment or 0, at.isoformat())
            )
        else:
            self._exec("DELETE FROM alarms_active WHERE kind = ? AND compartment = ?", (kind, compartment or 0))

    # Lockout
    def lockout(self) -> LockoutRow:
        row = self._exec("SELECT failures, lockouts, until, last_failure_at FROM lockout WHERE id = 1").fetchone()
        if row is None:
            return LockoutRow(0, 0, None, None)
        return LockoutRow(row[0], row[1], _dt(row[2]), _dt(row[3]))

    def put_lockout(self, row: LockoutRow) -> None:
        self._exec(
            "INSERT OR REPLACE INTO lockout VALUES (1, ?, ?, ?, ?)",
            (row.failures, row.lockouts, _ts(row.until), _ts(row.last_failure_at)),
        )

    # History and events
    def record(self, channel: Channel, fields: dict[str, Any]) -> None:
        if channel is Channel.LOCKER:
            self._exec(
                "INSERT INTO transitions (at, compartment, state, previous, cause, reservation, operator, door_open)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    fields["at"],
                    fields["compartment"],
                    fields["state"],
                    fields["previous"],
                    fields["cause"],
                    fields.get("reservation"),
                    fields.get("operator"),
                    int(fields["door_open"]),
                ),
            )
        self._exec("INSERT INTO pending_events (channel, fields) VALUES (?, ?)", (channel.value, json.dumps(fields)))

    def pending_events(self) -> list[tuple[int, Channel, dict[str, Any]]]:
        rows = self._exec("SELECT id, channel, fields FROM pending_events ORDER BY id").fetchall()
        return [(r[0], Channel(r[1]), json.loads(r[2])) for r in rows]

    def delete_event(self, event_id: int) -> None:
        self._exec("DELETE FROM pending_events WHERE id = ?", (event_id,))

    def prune_transitions(self, before: datetime) -> int:
        """Forget door and state history older than ``before`` (the hub has it: every transition is an event)."""
        cursor = self._exec("DELETE FROM transitions WHERE julianday(at) < julianday(?)", (before.isoformat(),))
        return cursor.rowcount

    # Wrong codes over hours (the slow-guessing alarm); only their times are kept
    def add_wrong_code(self, at: datetime, keep_after: datetime) -> int:
        """Record one wrong code, forget those before ``keep_after``; returns how many remain."""
        self._exec("DELETE FROM wrong_codes WHERE at < ?", (keep_after.isoformat(),))
        self._exec("INSERT INTO wrong_codes (at) VALUES (?)", (at.isoformat(),))
        return self.wrong_codes_since(keep_after)

    def wrong_codes_since(self, since: datetime) -> int:
        row = self._exec("SELECT COUNT(*) FROM wrong_codes WHERE at >= ?", (since.isoformat(),)).fetchone()
        return int(row[0])

    def history(self, compartment: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT at, compartment, state, previous, cause, reservation, operator, door_open FROM transitions"
        params: tuple[Any, ...] = ()
        if compartment is not None:
            sql += " WHERE compartment = ?"
            params = (compartment,)
        keys = ("at", "compartment", "state", "previous", "cause", "reservation", "operator", "door_open")
        return [dict(zip(keys, r, strict=True)) for r in self._exec(sql + " ORDER BY id", params).fetchall()]


_HISTORY_KEYS = ("at", "compartment", "state", "previous", "cause", "reservation", "operator", "door_open")


def read_history_since(path: Path, compartment: int, since: datetime) -> list[dict[str, Any]]:
    """One compartment's transitions from ``since`` on (oldest first), read on a connection of its own.

    For the kiosk's once-a-second polling: a read-only connection in the caller's thread neither waits for
    nor holds the state machine's lock, and WAL lets it read while the machine writes.
    """
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute(
            "SELECT at, compartment, state, previous, cause, reservation, operator, door_open FROM transitions"
            " WHERE compartment = ? AND julianday(at) >= julianday(?) ORDER BY id",
            (compartment, since.isoformat()),
        ).fetchall()
    return [dict(zip(_HISTORY_KEYS, r, strict=True)) for r in rows]
