"""SQL for compartments, deliveries, their hashed codes, locker commands and queued notifications.

Functions take a connection so the domain layer (``hub_server.logistics.service``) composes them inside one
``Database.write()`` transaction. Times are stored as Unix seconds (``store.timestamps``) and taken and given as
aware ``datetime`` values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub_server.logistics.codes import StoredHash
from hub_server.store.engine import Connection, Row
from hub_server.store.timestamps import from_epoch, sql_value, to_epoch


@dataclass(frozen=True, slots=True)
class CompartmentRow:
    device: str
    number: int
    size: str | None
    accessible: bool
    state: str | None
    door_open: bool | None
    door_open_since: datetime | None
    reported_at: datetime | None
    delivery: str | None
    """The delivery or share holding it now, if any."""


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    kind: str
    device: str
    compartment: int
    size: str
    status: str
    created_at: datetime
    created_by: str | None
    dropoff_expires_at: datetime
    dropped_at: datetime | None
    pickup_expires_at: datetime | None
    extended: bool
    finished_at: datetime | None
    expired_at: datetime | None
    resident_name: str | None
    resident_contact: str | None
    personal_data_deleted_at: datetime | None
    pickup_sealed: str | None
    pickup_revealed_at: datetime | None
    device_problem: str | None
    extendable: bool


# A delivery holds its compartment while awaiting drop-off, ready for pickup or expired (not yet returned).
_COMPARTMENT_SELECT = """
    SELECT c.*, (SELECT d.id FROM deliveries d WHERE d.device = c.device AND d.compartment = c.number
                 AND d.status IN ('awaiting-dropoff', 'ready-for-pickup', 'expired') LIMIT 1) AS delivery
    FROM compartments c
"""


def _compartment(row: Row) -> CompartmentRow:
    return CompartmentRow(
        device=row["device"],
        number=row["number"],
        size=row["size"],
        accessible=bool(row["accessible"]),
        state=row["state"],
        door_open=None if row["door_open"] is None else bool(row["door_open"]),
        door_open_since=from_epoch(row["door_open_since"]),
        reported_at=from_epoch(row["reported_at"]),
        delivery=row["delivery"],
    )


def _delivery(row: Row) -> DeliveryRow:
    created = from_epoch(row["created_at"])
    dropoff_expires = from_epoch(row["dropoff_expires_at"])
    assert created is not None and dropoff_expires is not None  # NOT NULL columns
    return DeliveryRow(
        id=row["id"],
        kind=row["kind"],
        device=row["device"],
        compartment=row["compartment"],
        size=row["size"],
        status=row["status"],
        created_at=created,
        created_by=row["created_by"],
        dropoff_expires_at=dropoff_expires,
        dropped_at=from_epoch(row["dropped_at"]),
        pickup_expires_at=from_epoch(row["pickup_expires_at"]),
        extended=bool(row["extended"]),
        finished_at=from_epoch(row["finished_at"]),
        expired_at=from_epoch(row["expired_at"]),
        resident_name=row["resident_name"],
        resident_contact=row["resident_contact"],
        personal_data_deleted_at=from_epoch(row["personal_data_deleted_at"]),
        pickup_sealed=row["pickup_sealed"],
        pickup_revealed_at=from_epoch(row["pickup_revealed_at"]),
        device_problem=row["device_problem"],
        extendable=bool(row["extendable"]),
    )


# --- compartments -------------------------------------------------------------------------------------------


def upsert_compartment(conn: Connection, device: str, number: int, size: str, accessible: bool) -> None:
    conn.execute(
        """INSERT INTO compartments (device, number, size, accessible) VALUES (?, ?, ?, ?)
           ON CONFLICT (device, number) DO UPDATE SET size = excluded.size, accessible = excluded.accessible""",
        (device, number, size, int(accessible)),
    )


def compartments(conn: Connection, device: str | None = None) -> list[CompartmentRow]:
    if device is None:
        rows = conn.execute(_COMPARTMENT_SELECT + " ORDER BY c.device, c.number").fetchall()
    else:
        rows = conn.execute(_COMPARTMENT_SELECT + " WHERE c.device = ? ORDER BY c.number", (device,)).fetchall()
    return [_compartment(r) for r in rows]


def compartment(conn: Connection, device: str, number: int) -> CompartmentRow | None:
    row = conn.execute(_COMPARTMENT_SELECT + " WHERE c.device = ? AND c.number = ?", (device, number)).fetchone()
    return None if row is None else _compartment(row)


def record_compartment_state(
    conn: Connection,
    device: str,
    number: int,
    state: str,
    door_open: bool,
    at: datetime,
    boot: str,
    seq: int,
) -> bool:
    """Store the state a locker event reports, unless a later report is already stored; True if stored."""
    conn.execute("INSERT OR IGNORE INTO compartments (device, number) VALUES (?, ?)", (device, number))
    cursor = conn.execute(
        """UPDATE compartments SET state = ?, door_open = ?,
               door_open_since = CASE WHEN ? = 1 THEN COALESCE(CASE WHEN door_open = 1 THEN door_open_since END, ?) END,
               reported_at = ?, last_boot = ?, last_seq = ?
           WHERE device = ? AND number = ? AND (reported_at IS NULL OR reported_at <= ?)""",
        (state, int(door_open), int(door_open), to_epoch(at), to_epoch(at), boot, seq, device, number, to_epoch(at)),
    )
    return cursor.rowcount == 1


def mark_event_seen(conn: Connection, device: str, boot: str, seq: int, now: datetime) -> bool:
    """True the first time (device, boot, seq) is seen: the domain applies each locker event once."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO locker_events_seen (device, boot, seq, seen_at) VALUES (?, ?, ?, ?)",
        (device, boot, seq, to_epoch(now)),
    )
    return cursor.rowcount == 1


def forget_seen_events(conn: Connection, before: datetime) -> int:
    return conn.execute("DELETE FROM locker_events_seen WHERE seen_at < ?", (to_epoch(before),)).rowcount


# --- deliveries ---------------------------------------------------------------------------------------------


def insert_delivery(conn: Connection, values: dict[str, Any]) -> None:
    """A new delivery from column values (times as ``datetime``)."""
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    conn.execute(
        f"INSERT INTO deliveries ({columns}) VALUES ({marks})",  # noqa: S608
        tuple(sql_value(v) for v in values.values()),
    )


def update_delivery(conn: Connection, delivery_id: str, **values: Any) -> None:
    """Set columns of a delivery (times as ``datetime``)."""
    # Column names come from the domain code, never from input.
    assignments = ", ".join(f"{name} = ?" for name in values)
    conn.execute(
        f"UPDATE deliveries SET {assignments} WHERE id = ?",  # noqa: S608
        (*(sql_value(v) for v in values.values()), delivery_id),
    )


def delivery(conn: Connection, delivery_id: str) -> DeliveryRow | None:
    row = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return None if row is None else _delivery(row)


def delivery_by_token(conn: Connection, token_hash: str) -> DeliveryRow | None:
    row = conn.execute("SELECT * FROM deliveries WHERE token_hash = ?", (token_hash,)).fetchone()
    return None if row is None else _delivery(row)


def delivery_on_device(conn: Connection, device: str, reservation: str) -> DeliveryRow | None:
    row = conn.execute("SELECT * FROM deliveries WHERE id = ? AND device = ?", (reservation, device)).fetchone()
    return None if row is None else _delivery(row)


def deliveries(
    conn: Connection, status: str | None = None, device: str | None = None, limit: int = 100, offset: int = 0
) -> list[DeliveryRow]:
    where, params = [], []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if device is not None:
        where.append("device = ?")
        params.append(device)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"SELECT * FROM deliveries {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",  # noqa: S608
        (*params, limit, offset),
    ).fetchall()
    return [_delivery(r) for r in rows]


def due(conn: Connection, status: str, column: str, now: datetime) -> list[DeliveryRow]:
    if column not in {"dropoff_expires_at", "pickup_expires_at"}:
        raise ValueError(column)
    rows = conn.execute(
        f"SELECT * FROM deliveries WHERE status = ? AND {column} <= ? ORDER BY {column}",  # noqa: S608
        (status, to_epoch(now)),
    ).fetchall()
    return [_delivery(r) for r in rows]


def erase_personal_data(
    conn: Connection, finished_before: datetime, now: datetime, expired_before: datetime | None = None
) -> list[str]:
    """Clear name, contact and page token of every delivery finished before ``finished_before`` (and of expired
    items, never returned, that expired before ``expired_before``); returns their ids."""
    ids = [
        r[0]
        for r in conn.execute(
            """SELECT id FROM deliveries WHERE personal_data_deleted_at IS NULL AND (
                   (finished_at IS NOT NULL AND finished_at <= ?)
                   OR (status = 'expired' AND expired_at IS NOT NULL AND expired_at <= ?))""",
            (to_epoch(finished_before), None if expired_before is None else to_epoch(expired_before)),
        )
    ]
    for delivery_id in ids:
        conn.execute(
            """UPDATE deliveries SET resident_name = NULL, resident_contact = NULL, token_hash = NULL,
                   pickup_sealed = NULL, personal_data_deleted_at = ? WHERE id = ?""",
            (to_epoch(now), delivery_id),
        )
        conn.execute("UPDATE notifications SET payload = NULL WHERE delivery_id = ?", (delivery_id,))
    return ids


# --- codes --------------------------------------------------------------------------------------------------


def put_code(conn: Connection, delivery_id: str, purpose: str, code: StoredHash, now: datetime) -> None:
    conn.execute(
        """INSERT INTO delivery_codes (delivery_id, purpose, salt, sha256, created_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (delivery_id, purpose) DO UPDATE SET salt = excluded.salt, sha256 = excluded.sha256,
               created_at = excluded.created_at, expires_at = NULL""",
        (delivery_id, purpose, code.salt, code.sha256, to_epoch(now)),
    )


def get_code(conn: Connection, delivery_id: str, purpose: str) -> StoredHash | None:
    row = conn.execute(
        "SELECT salt, sha256 FROM delivery_codes WHERE delivery_id = ? AND purpose = ?", (delivery_id, purpose)
    ).fetchone()
    return None if row is None else StoredHash(row["salt"], row["sha256"])


def set_code_expiry(conn: Connection, delivery_id: str, purpose: str, expires_at: datetime) -> None:
    conn.execute(
        "UPDATE delivery_codes SET expires_at = ? WHERE delivery_id = ? AND purpose = ?",
        (to_epoch(expires_at), delivery_id, purpose),
    )


def live_codes(conn: Connection, device: str) -> list[StoredHash]:
    """Codes of the device's deliveries that still hold a compartment: a new code must differ from each."""
    rows = conn.execute(
        """SELECT c.salt, c.sha256 FROM delivery_codes c JOIN deliveries d ON d.id = c.delivery_id
           WHERE d.device = ? AND d.status IN ('awaiting-dropoff', 'ready-for-pickup', 'expired')""",
        (device,),
    ).fetchall()
    return [StoredHash(r["salt"], r["sha256"]) for r in rows]


# --- commands -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: str
    delivery_id: str | None
    purpose: str
    device: str
    payload: str
    sent_at: datetime | None
    attempts: int
    result: str | None


def insert_command(
    conn: Connection,
    command_id: str,
    delivery_id: str | None,
    purpose: str,
    device: str,
    payload: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    # A newer command for the same delivery and purpose replaces any older one not yet answered.
    conn.execute(
        """UPDATE locker_commands SET result = 'superseded', result_at = ?
           WHERE delivery_id = ? AND purpose = ? AND result IS NULL""",
        (to_epoch(now), delivery_id, purpose),
    )
    conn.execute(
        """INSERT INTO locker_commands (id, delivery_id, purpose, device, payload, created_at, expires_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (command_id, delivery_id, purpose, device, payload, to_epoch(now), to_epoch(expires_at)),
    )


def _command(row: Row) -> CommandRow:
    return CommandRow(
        id=row["id"],
        delivery_id=row["delivery_id"],
        purpose=row["purpose"],
        device=row["device"],
        payload=row["payload"],
        sent_at=from_epoch(row["sent_at"]),
        attempts=row["attempts"],
        result=row["result"],
    )


def command(conn: Connection, command_id: str) -> CommandRow | None:
    row = conn.execute("SELECT * FROM locker_commands WHERE id = ?", (command_id,)).fetchone()
    return None if row is None else _command(row)


def commands_for(conn: Connection, delivery_id: str) -> list[CommandRow]:
    rows = conn.execute(
        "SELECT * FROM locker_commands WHERE delivery_id = ? ORDER BY created_at", (delivery_id,)
    ).fetchall()
    return [_command(r) for r in rows]


def commands_to_send(conn: Connection, now: datetime, resend_before: datetime) -> list[CommandRow]:
    """Unanswered, unexpired commands never sent, or sent before ``resend_before``."""
    rows = conn.execute(
        """SELECT * FROM locker_commands WHERE result IS NULL AND expires_at > ?
           AND (sent_at IS NULL OR sent_at <= ?) ORDER BY created_at""",
        (to_epoch(now), to_epoch(resend_before)),
    ).fetchall()
    return [_command(r) for r in rows]


def mark_command_sent(conn: Connection, command_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE locker_commands SET sent_at = ?, attempts = attempts + 1 WHERE id = ?", (to_epoch(now), command_id)
    )


def record_command_result(
    conn: Connection, command_id: str, device: str, result: str, detail: str, at: datetime
) -> CommandRow | None:
    """Store the device's answer; returns the command when it was ours and not answered before."""
    cursor = conn.execute(
        """UPDATE locker_commands SET result = ?, result_detail = ?, result_at = ?
           WHERE id = ? AND device = ? AND (result IS NULL OR result = 'superseded')""",
        (result, detail, to_epoch(at), command_id, device),
    )
    return command(conn, command_id) if cursor.rowcount == 1 else None


def expire_commands(conn: Connection, now: datetime) -> int:
    return conn.execute(
        "UPDATE locker_commands SET result = 'expired', result_at = ? WHERE result IS NULL AND expires_at <= ?",
        (to_epoch(now), to_epoch(now)),
    ).rowcount


# --- notifications ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    delivery_id: str | None
    event: str
    payload: dict[str, Any] | None
    attempts: int


def queue_notification(conn: Connection, delivery_id: str, event: str, payload: dict[str, Any], now: datetime) -> None:
    conn.execute(
        """INSERT INTO notifications (delivery_id, event, payload, created_at, next_attempt_at)
           VALUES (?, ?, ?, ?, ?)""",
        (delivery_id, event, json.dumps(payload), to_epoch(now), to_epoch(now)),
    )


def notifications_due(conn: Connection, now: datetime, limit: int = 50) -> list[NotificationRow]:
    rows = conn.execute(
        """SELECT * FROM notifications WHERE sent_at IS NULL AND failed_at IS NULL AND payload IS NOT NULL
           AND next_attempt_at <= ? ORDER BY id LIMIT ?""",
        (to_epoch(now), limit),
    ).fetchall()
    return [
        NotificationRow(r["id"], r["delivery_id"], r["event"], json.loads(r["payload"]), r["attempts"]) for r in rows
    ]


def notification_sent(conn: Connection, notification_id: int, now: datetime) -> None:
    conn.execute(
        "UPDATE notifications SET sent_at = ?, payload = NULL, attempts = attempts + 1 WHERE id = ?",
        (to_epoch(now), notification_id),
    )


def notification_failed(
    conn: Connection, notification_id: int, error: str, retry_at: datetime | None, now: datetime
) -> None:
    if retry_at is None:  # given up: drop the contact with the message
        conn.execute(
            """UPDATE notifications SET failed_at = ?, payload = NULL, attempts = attempts + 1, last_error = ?
               WHERE id = ?""",
            (to_epoch(now), error[:500], notification_id),
        )
    else:
        conn.execute(
            """UPDATE notifications SET next_attempt_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?""",
            (to_epoch(retry_at), error[:500], notification_id),
        )


def notifications_for(conn: Connection, delivery_id: str) -> list[Row]:
    return conn.execute("SELECT * FROM notifications WHERE delivery_id = ? ORDER BY id", (delivery_id,)).fetchall()
