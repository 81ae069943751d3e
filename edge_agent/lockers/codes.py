"""Offline code checks against the salted hashes the hub sent, and the brute-force lockout.

The device never sees code digits in advance. A typed code is hashed with every stored salt and compared
with ``hmac.compare_digest``; all stored codes are checked every time, so the time taken does not depend on
which code (if any) matched.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from edge_agent.lockers.config import LockoutPolicy
from edge_agent.lockers.store import CodeRow, LockerStore, LockoutRow
from hub_protocol.lockers import hash_code, is_code_format


def find_code(store: LockerStore, code: str) -> CodeRow | None:
    """The stored code whose hash ``code`` matches (used or expired ones included), or None."""
    if not is_code_format(code):
        return None
    found: CodeRow | None = None
    for row in store.codes():
        candidate = hash_code(bytes.fromhex(row.salt), code)
        if hmac.compare_digest(candidate, row.sha256) and found is None:
            found = row
    return found


@dataclass(frozen=True, slots=True)
class LockoutChange:
    """What a wrong code did: how many tries remain, or that a lockout of ``seconds`` began."""

    attempts_left: int
    started_s: float | None
    recent: int
    """Wrong codes within the guessing window, this one included."""


class Lockout:
    """Counts wrong codes in a row (persisted, so a restart does not reset it) and locks the keypad."""

    def __init__(self, store: LockerStore, policy: LockoutPolicy) -> None:
        self.store = store
        self.policy = policy

    def _current(self, now: datetime) -> LockoutRow:
        row = self.store.lockout()
        quiet = timedelta(seconds=self.policy.reset_after_s)
        locked = row.until is not None and now < row.until
        if not locked and row.last_failure_at is not None and now - row.last_failure_at >= quiet:
            return LockoutRow(0, 0, None, None)
        return row

    def retry_after(self, now: datetime) -> float | None:
        """Seconds until codes are accepted again, or None when the keypad is open."""
        row = self.store.lockout()
        if row.until is None or now >= row.until:
            return None
        remaining = (row.until - now).total_seconds()
        if remaining > self.policy.max_delay_s:
            # The clock was set back after the lockout began: never lock longer than the policy allows.
            self.store.put_lockout(replace(row, until=now + timedelta(seconds=self.policy.max_delay_s)))
            return self.policy.max_delay_s
        return remaining

    def ended(self, now: datetime) -> bool:
        """True once a recorded lockout has run out (the caller clears the alarm)."""
        row = self.store.lockout()
        return row.until is not None and now >= row.until

    def failed(self, now: datetime) -> LockoutChange:
        row = self._current(now)
        failures = row.failures + 1
        lockouts = row.lockouts
        until = row.until
        started: float | None = None
        # After the first lockout every further wrong code locks again, each time longer.
        if failures >= self.policy.max_attempts:
            delay = min(self.policy.base_delay_s * self.policy.factor**lockouts, self.policy.max_delay_s)
            lockouts += 1
            until = now + timedelta(seconds=delay)
            started = delay
        self.store.put_lockout(LockoutRow(failures, lockouts, until, now))
        recent = self.store.add_wrong_code(now, self._guessing_since(now))
        return LockoutChange(max(self.policy.max_attempts - failures, 0), started, recent)

    def _guessing_since(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.policy.guessing_window_s)

    def guessing(self, now: datetime) -> bool:
        """Wrong codes over the last hours reach the alarm level, however slowly they came."""
        return self.store.wrong_codes_since(self._guessing_since(now)) >= self.policy.guessing_alarm_codes

    def succeeded(self) -> None:
        self.store.put_lockout(LockoutRow(0, 0, None, None))
