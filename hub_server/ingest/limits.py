"""Per-device budgets of the ingest writer, so that one device's bad traffic costs the hub little.

A device (faulty or in an attacker's hands) can send thousands of malformed messages, gap declarations or
sequence numbers that open holes. Each such message spends a token of the device's budget; with the budget
spent, the writer skips that device's messages before decoding them (they are not acknowledged, so a healthy
device sends them again later) and its log lines are held back and counted instead of written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

BAD_PER_S = 20.0
"""Bad messages (invalid, gap declarations, hole openers) a device may send per second, on average..."""

BAD_BURST = 200.0
"""...and at once: a device catching up after an outage declares a few gaps, never hundreds."""

LOG_PER_MINUTE = 6.0
"""Warning lines per device per minute, after a first burst of ``LOG_BURST``."""

LOG_BURST = 10.0

MAX_KEYS = 10_000
"""Budgets kept at once; beyond it they all start afresh (device names come from topics the ACL allowed)."""


@dataclass(slots=True)
class TokenBuckets:
    """One token bucket per key: ``rate`` tokens per second, at most ``burst`` saved."""

    rate: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.rate)

    def spent(self, key: str, now: float) -> bool:
        """True while ``key`` has less than one token left (nothing is taken)."""
        return key in self._buckets and self._level(key, now) < 1.0

    def take(self, key: str, now: float) -> bool:
        """Take one token; False (and nothing taken) when there is none."""
        if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
            self._buckets.clear()
        level = self._level(key, now)
        if level < 1.0:
            self._buckets[key] = (level, now)
            return False
        self._buckets[key] = (level - 1.0, now)
        return True


@dataclass(slots=True)
class DeviceLog:
    """Warnings about one device's traffic, at most ``LOG_PER_MINUTE`` lines; the rest counted and summed up."""

    log: logging.Logger
    budget: TokenBuckets = field(default_factory=lambda: TokenBuckets(LOG_PER_MINUTE / 60.0, LOG_BURST))
    held_back: dict[str, int] = field(default_factory=dict)

    def warning(self, device: str, now: float, message: str, *args: object) -> None:
        self._emit(logging.WARNING, device, now, message, args)

    def info(self, device: str, now: float, message: str, *args: object) -> None:
        self._emit(logging.INFO, device, now, message, args)

    def _emit(self, level: int, device: str, now: float, message: str, args: tuple[object, ...]) -> None:
        if not self.budget.take(device or "?", now):
            self.held_back[device] = self.held_back.get(device, 0) + 1
            return
        held = self.held_back.pop(device, 0)
        if held:
            message += " (%d earlier lines about this device held back)"
            args = (*args, held)
        self.log.log(level, message, *args)
