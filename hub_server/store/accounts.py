"""Operator accounts, sessions and API tokens. Passwords are argon2id hashes; tokens are stored as SHA-256."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hub_server.store.engine import Connection, IntegrityError, Row
from hub_server.store.timestamps import from_epoch, to_epoch

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)
MIN_PASSWORD_LENGTH = 12

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile: affordable on a Raspberry Pi.
_HASHER = PasswordHasher()
# Verifying against this when the user does not exist keeps the time of a refusal the same either way.
_DUMMY_HASH = _HASHER.hash("not a password of anyone")


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class AccountError(ValueError):
    """An account request that cannot be carried out (name taken, weak password, unknown user)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    role: Role
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def utc_now() -> datetime:
    return datetime.now(UTC)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):
        raise AccountError(f"user name {username!r} must be 1-64 of a-z 0-9 . _ - and start with a letter or digit")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise AccountError("password must have at most 1024 characters")
    return password


def _user(row: Row) -> User:
    return User(row["id"], row["username"], Role(row["role"]), bool(row["disabled"]), from_epoch(row["created_at"]))


def add_user(conn: Connection, username: str, role: Role, password: str) -> User:
    check_username(username)
    check_password(password)
    try:
        with conn.savepoint():
            conn.execute(
                "INSERT INTO users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (username, role.value, _HASHER.hash(password), to_epoch(utc_now())),
            )
    except IntegrityError:
        raise AccountError(f"user {username!r} exists already") from None
    user = get_user(conn, username)
    assert user is not None
    return user


def get_user(conn: Connection, username: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    return _user(row) if row else None


def get_user_by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute("SELECT * FROM users ORDER BY username")]


def count_admins(conn: Connection) -> int:
    row = conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0").fetchone()
    return int(row[0])


def update_user(conn: Connection, username: str, *, role: Role | None = None, disabled: bool | None = None) -> User:
    """Change role and/or disabled flag; refuses to leave the hub without an active admin."""
    user = get_user(conn, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    new_role = role or user.role
    new_disabled = user.disabled if disabled is None else disabled
    losing_admin = user.role is Role.ADMIN and not user.disabled and (new_role is not Role.ADMIN or new_disabled)
    if losing_admin and count_admins(conn) <= 1:
        raise AccountError(f"{username!r} is the last active admin: add another admin first")
    conn.execute("UPDATE users SET role = ?, disabled = ? WHERE id = ?", (new_role.value, int(new_disabled), user.id))
    if new_disabled or new_role is not user.role:
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))
    updated = get_user_by_id(conn, user.id)
    assert updated is not None
    return updated


def set_password(conn: Connection, username: str, password: str) -> None:
    check_password(password)
    user = get_user(conn, username)
    if user is None:
        raise AccountError(f"no user {username!r}")
    conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_HASHER.hash(password), user.id))
    conn.execute("DELETE FROM sessions WHERE user_id = ?", (user.id,))


def verify_login(conn: Connection, username: str, password: str) -> User | None:
    """The user when name and password match and the account is active; None otherwise (same cost either way)."""
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    stored = row["password_hash"] if row else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    if _HASHER.check_needs_rehash(stored):
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (_HASHER.hash(password), row["id"]))
    return _user(row)


# --- sessions ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRow:
    user: User
    csrf_token: str
    expires_at: datetime
    last_seen_at: datetime


def create_session(conn: Connection, token: str, user: User, csrf_token: str, lifetime: timedelta) -> None:
    now = utc_now()
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (sha256_hex(token), user.id, csrf_token, to_epoch(now), to_epoch(now + lifetime), to_epoch(now)),
    )


def load_session(conn: Connection, token: str, idle: timedelta) -> SessionRow | None:
    """The live session of ``token``; expired or idle ones are deleted and give None."""
    row = conn.execute(
        "SELECT s.csrf_token, s.expires_at, s.last_seen_at, u.* FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = ?",
        (sha256_hex(token),),
    ).fetchone()
    if row is None:
        return None
    now = utc_now()
    if row["expires_at"] <= to_epoch(now) or row["last_seen_at"] <= to_epoch(now - idle) or row["disabled"]:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (sha256_hex(token),))
        return None
    return SessionRow(_user(row), row["csrf_token"], from_epoch(row["expires_at"]), from_epoch(row["last_seen_at"]))


def touch_session(conn: Connection, token: str) -> None:
    conn.execute("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (to_epoch(utc_now()), sha256_hex(token)))


def delete_session(conn: Connection, token: str) -> None:
    conn.execute("DELETE FROM sessions WHERE token_hash = ?", (sha256_hex(token),))


def purge_sessions(conn: Connection) -> int:
    return conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (to_epoch(utc_now()),)).rowcount


# --- API tokens -------------------------------------------------------------------------------------------


def _token(row: Row) -> ApiToken:
    return ApiToken(
        row["id"],
        row["name"],
        Role(row["role"]),
        row["created_by"],
        from_epoch(row["created_at"]),
        from_epoch(row["last_used_at"]),
        from_epoch(row["revoked_at"]),
    )


def add_token(conn: Connection, name: str, role: Role, token: str, created_by: str) -> ApiToken:
    if not 1 <= len(name) <= 100:
        raise AccountError("token name must have 1 to 100 characters")
    row = conn.execute(
        "INSERT INTO api_tokens (name, role, token_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
        (name, role.value, sha256_hex(token), created_by, to_epoch(utc_now())),
    ).fetchone()
    return _token(row)


def find_token(conn: Connection, token: str) -> ApiToken | None:
    """The active token with this value (``mark_token_used`` records its use)."""
    row = conn.execute(
        "SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL", (sha256_hex(token),)
    ).fetchone()
    return _token(row) if row else None


def mark_token_used(conn: Connection, token_id: int) -> None:
    conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (to_epoch(utc_now()), token_id))


def list_tokens(conn: Connection) -> list[ApiToken]:
    return [_token(r) for r in conn.execute("SELECT * FROM api_tokens ORDER BY id")]


def revoke_token(conn: Connection, token_id: int) -> ApiToken:
    row = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    if row is None:
        raise AccountError(f"no token {token_id}")
    if row["revoked_at"] is None:
        conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (to_epoch(utc_now()), token_id))
    row = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    return _token(row)
