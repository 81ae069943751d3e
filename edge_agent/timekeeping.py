"""The wall clock as the agent may trust it for flow windows: synchronised or not, and when it stepped.

A Raspberry Pi has no real-time clock: it boots in 1970 (or at the time fake-hwclock saved) and jumps when
NTP answers; an operator or a bad time server can step it either way later. Windows are labelled with wall
time, so they are opened only once the system reports its clock synchronised (``clock_sync = "required"``,
the default; ``"trust"`` accepts any clock past ``FLOOR`` for devices with a battery-backed clock, labs and
the demo). A step is seen by comparing wall time with the monotonic clock, which never jumps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

FLOOR = datetime(2026, 1, 1, tzinfo=UTC)
"""No correct clock reads earlier than this (before this version existed): 1970 after a boot without RTC."""

STEP_TOLERANCE_S = 2.0
"""Wall time that moved this much more or less than monotonic time between two readings has stepped (NTP
slews small errors at most 0.5 ms per second: never this much)."""

RECHECK_S = 10.0
"""How often the system is asked again whether the clock is synchronised, until it is."""


class ClockSync(StrEnum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    UNKNOWN = "unknown"


class TimeSource(Protocol):
    def now(self) -> datetime: ...
    def monotonic(self) -> float: ...
    def synchronized(self) -> bool | None:
        """True/False as the system reports it, None when it cannot tell."""
        ...


class SystemTime:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def synchronized(self) -> bool | None:
        from edge_agent.deploy.probes import SystemClock  # timedatectl, else the kernel's adjtimex

        return SystemClock().read().synchronized


class ClockWatch:
    """``read()`` gives the time and the step since the previous reading; ``windows_allowed()`` says whether
    flow windows may be opened (once allowed it stays so: a later loss of NTP leaves a good, slowly drifting
    clock, and steps are handled as they come)."""

    def __init__(
        self,
        source: TimeSource | None = None,
        *,
        require_sync: bool = True,
        floor: datetime = FLOOR,
        tolerance_s: float = STEP_TOLERANCE_S,
    ) -> None:
        self.source = source or SystemTime()
        self.require_sync = require_sync
        self.floor = floor
        self.tolerance = timedelta(seconds=tolerance_s)
        self._offset: timedelta | None = None
        self._state = ClockSync.UNKNOWN
        self._checked_at: float | None = None
        self._allowed = False

    def read(self) -> tuple[datetime, timedelta | None]:
        """The wall time now, and how far it stepped since the previous ``read`` (None: it did not)."""
        now = self.source.now()
        offset = now - datetime.fromtimestamp(0, UTC) - timedelta(seconds=self.source.monotonic())
        previous, self._offset = self._offset, offset
        if previous is None or abs(offset - previous) <= self.tolerance:
            return now, None
        return now, offset - previous

    def state(self) -> ClockSync:
        """Synchronised, not, or unknown; a clock before ``FLOOR`` is unsynchronised whatever the system says."""
        mono = self.source.monotonic()
        if self._checked_at is None or (self._state is not ClockSync.SYNCED and mono - self._checked_at >= RECHECK_S):
            reported = self.source.synchronized()
            self._state = {True: ClockSync.SYNCED, False: ClockSync.UNSYNCED, None: ClockSync.UNKNOWN}[reported]
            self._checked_at = mono
        if self.source.now() < self.floor:
            return ClockSync.UNSYNCED
        return self._state

    def recheck(self) -> None:
        """Ask the system again at the next ``state()`` (after a step: NTP has probably just answered)."""
        self._checked_at = None

    def windows_allowed(self) -> bool:
        if not self._allowed:
            trusted = not self.require_sync and self.source.now() >= self.floor
            self._allowed = trusted or self.state() is ClockSync.SYNCED
        return self._allowed


class Ticker:
    """Ticks on a fixed grid of ``period`` from its start, whatever each tick and each wake-up cost.

    Waiting a period after each tick's work lets every late wake-up and every slow tick push all later ticks
    back. Flow windows close, and leave for the hub, at the first tick after their end, so the send time of
    each window would drift by how late the ticks of the window before it were: later while the counter works
    on people in view (it competes for the CPU and the interpreter lock), which anyone who sees the encrypted
    traffic sees. On the grid, a window leaves at its end plus a fixed phase plus one tick's lateness
    (tests/privacy/test_tick_timing.py). A tick later than a whole period skips the ticks it missed rather
    than bursting them."""

    def __init__(self, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        if period <= 0:
            raise ValueError("period must be positive")
        self.period = period
        self._clock = clock
        self._next = clock() + period

    def delay(self) -> float:
        """Seconds to wait for the next tick on the grid (0 when it is due); call once per tick."""
        now = self._clock()
        if now >= self._next + self.period:
            self._next += math.floor((now - self._next) / self.period) * self.period
        due = self._next
        self._next += self.period
        return max(0.0, due - now)
