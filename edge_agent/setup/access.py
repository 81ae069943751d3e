"""Who may use the setup page, and until when: a grant file written by ``edge-agent setup`` or a hub command.

The page is off unless ``<state_dir>/setup/access.json`` holds a grant that has not expired. A grant carries
the SHA-256 of a one-time code (the code itself is printed once, by the command, or shown once on the hub's
device page) and the hashes of the sessions the code was exchanged for. A code works once; five wrong codes
close the page. The running agent reads the file every second, so opening and closing need no restart, and a
session survives the restart that applies saved lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hub_protocol.atomic import write_atomic
from hub_protocol.commands import MAX_SETUP_MINUTES, new_setup_code, setup_code_hash

MAX_FAILURES = 5
MIN_SECONDS = 60
MAX_SECONDS = MAX_SETUP_MINUTES * 60
_DURATION = re.compile(r"^(\d{1,4})([smh]?)$")


def parse_duration(text: str) -> int:
    """``30m``, ``2h``, ``90s`` or plain minutes -> seconds, within 1 minute .. 4 hours."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r}: give a duration like 30m, 2h or 90s")
    number, unit = int(match.group(1)), match.group(2) or "m"
    seconds = number * {"s": 1, "m": 60, "h": 3600}[unit]
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"{text!r}: the setup page opens for 1 minute to 4 hours")
    return seconds


@dataclass
class Grant:
    until: float
    code_hash: str | None
    sessions: list[str] = field(default_factory=list)
    failures: int = 0
    origin: str = "command"

    def open(self, now: float) -> bool:
        return now < self.until and self.failures < MAX_FAILURES


def grant_path(state_dir: Path) -> Path:
    return state_dir / "setup" / "access.json"


def write_grant(state_dir: Path, grant: Grant) -> None:
    path = grant_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(grant)).encode("utf-8"), mode=0o600)


def open_setup(state_dir: Path, seconds: int, hashed_code: str | None = None, origin: str = "command") -> str | None:
    """Open the page for ``seconds``; returns the new one-time code (None when the caller gave its hash)."""
    code = None if hashed_code is not None else new_setup_code()
    digest = hashed_code if hashed_code is not None else setup_code_hash(code or "")
    write_grant(state_dir, Grant(until=time.time() + seconds, code_hash=digest, origin=origin))
    return code


def add_session(state_dir: Path, seconds: int) -> str:
    """A session for a program on this machine (``edge-agent validate``): kept open grants stay as they are,
    otherwise the page opens for ``seconds`` without any code. Returns the session token."""
    token = secrets.token_urlsafe(32)
    grant = read_grant(state_dir)
    if grant is None or not grant.open(time.time()):
        grant = Grant(until=time.time() + seconds, code_hash=None)
    grant.until = max(grant.until, time.time() + seconds)
    grant.sessions.append(_token_hash(token))
    write_grant(state_dir, grant)
    return token


def close_setup(state_dir: Path) -> None:
    grant_path(state_dir).unlink(missing_ok=True)


def read_grant(state_dir: Path) -> Grant | None:
    """The grant on disk, or None when there is none or it is unreadable (a broken file opens nothing)."""
    try:
        data = json.loads(grant_path(state_dir).read_text(encoding="utf-8"))
        return Grant(
            until=float(data["until"]),
            code_hash=data.get("code_hash"),
            sessions=[str(s) for s in data.get("sessions", [])],
            failures=int(data.get("failures", 0)),
            origin=str(data.get("origin", "command")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Access:
    """Code and session checks against the grant file; thread-safe within the agent."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        grant = read_grant(self.state_dir)
        return grant is not None and grant.open(time.time())

    def login(self, code: str) -> str | None:
        """Exchange the one-time code for a session token; None when wrong, used or closed."""
        with self._lock:
            grant = read_grant(self.state_dir)
            if grant is None or not grant.open(time.time()):
                return None
            if grant.code_hash is None or not hmac.compare_digest(grant.code_hash, setup_code_hash(code)):
                grant.failures += 1
                write_grant(self.state_dir, grant)
                return None
            token = secrets.token_urlsafe(32)
            grant.code_hash = None  # one time only
            grant.sessions.append(_token_hash(token))
            write_grant(self.state_dir, grant)
            return token

    def admission(self, token: str | None) -> tuple[float | None, bool]:
        """One read of the grant for a request: until when the page is open (None: closed), and whether
        ``token`` is one of its sessions."""
        grant = read_grant(self.state_dir)
        if grant is None or not grant.open(time.time()):
            return None, False
        if not token or len(token) > 128:
            return grant.until, False
        digest = _token_hash(token)
        return grant.until, any(hmac.compare_digest(digest, s) for s in grant.sessions)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
