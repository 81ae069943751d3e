"""Crossings aggregated into clock-aligned windows, with a data-quality envelope per window.

Only counts are kept: a crossing's time is used once, to pick its window, and then forgotten. Windows live
in memory only, so a crash or restart loses the counts of the window in progress; the next process starts a
new window whose ``observed_fraction`` shows that it saw only part of it. (Persisting partial windows would
put crossing-level data on disk for little gain.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from edge_agent.privacy.quality import published_quality
from hub_protocol.flows import Direction, ObjectClass, WindowQuality

CellKey = tuple[str, Direction, ObjectClass]

MAX_CATCH_UP = timedelta(days=1)
"""A clock jump larger than this (a Pi without RTC setting its time from NTP) is skipped, not filled with
empty windows: those windows were never observed by this process anyway."""


def window_start(at: datetime, seconds: int) -> datetime:
    """Start of the clock-aligned window containing ``at`` (UTC; windows divide the day, so this is also
    aligned to midnight and to every hour)."""
    epoch = int(at.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


@dataclass
class _Accumulator:
    counts: dict[CellKey, int] = field(default_factory=dict)
    processed: int = 0
    dropped: int = 0
    observing_s: float = 0.0


@dataclass(frozen=True)
class ClosedWindow:
    start: datetime
    seconds: int
    counts: dict[CellKey, int]
    """Every line x direction x class of the configured lines, zeros included."""
    quality: WindowQuality


class WindowAggregator:
    """Feed it crossings and frame statistics as they happen; ``close_due`` returns finished windows in order."""

    def __init__(self, lines: Sequence[str], window_seconds: int = 900, now: datetime | None = None) -> None:
        if not lines:
            raise ValueError("at least one counting line is needed")
        if len(set(lines)) != len(lines):
            raise ValueError("line names must be unique")
        if not 60 <= window_seconds <= 86_400 or 86_400 % window_seconds:
            raise ValueError("window_seconds must be between 60 and 86400 and divide a day")
        self.lines = tuple(lines)
        self.seconds = window_seconds
        self._length = timedelta(seconds=window_seconds)
        self._open: dict[datetime, _Accumulator] = {}
        self._first_open = window_start(now or datetime.now(UTC), window_seconds)

    @property
    def current_start(self) -> datetime:
        """Start of the oldest window not yet closed."""
        return self._first_open

    def _acc(self, at: datetime) -> _Accumulator:
        # Late reports (clock stepped back, or after their window closed) go to the oldest open window.
        start = max(window_start(at, self.seconds), self._first_open)
        return self._open.setdefault(start, _Accumulator())

    def add_crossing(
        self, line: str, direction: Direction | str, object_class: ObjectClass | str, at: datetime
    ) -> None:
        if line not in self.lines:
            raise ValueError(f"unknown counting line {line!r}")
        key = (line, Direction(direction), ObjectClass(object_class))
        acc = self._acc(at)
        acc.counts[key] = acc.counts.get(key, 0) + 1

    def note_frames(self, processed: int, dropped: int, observing_seconds: float, at: datetime) -> None:
        """Frames processed and skipped, and seconds the camera delivered frames, since the previous call.
        Call it at least every few seconds so that the figures land in the right window."""
        if processed < 0 or dropped < 0 or observing_seconds < 0:
            raise ValueError("frame statistics cannot be negative")
        acc = self._acc(at)
        acc.processed += processed
        acc.dropped += dropped
        acc.observing_s += observing_seconds

    def close_due(self, now: datetime) -> list[ClosedWindow]:
        """Every window that ended at or before ``now``, including empty ones (camera off: observed 0)."""
        if now - self._first_open > MAX_CATCH_UP:
            self._open = {s: a for s, a in self._open.items() if s >= window_start(now, self.seconds)}
            self._first_open = window_start(now, self.seconds)
            return []
        closed = []
        while self._first_open + self._length <= now:
            acc = self._open.pop(self._first_open, _Accumulator())
            closed.append(self._close(self._first_open, acc))
            self._first_open += self._length
        return closed

    def _close(self, start: datetime, acc: _Accumulator) -> ClosedWindow:
        counts = {(line, d, c): 0 for line in self.lines for d in Direction for c in ObjectClass}
        counts.update(acc.counts)
        # Coarsened: the raw figures follow who was in view (see privacy/quality.py).
        quality = published_quality(acc.processed, acc.dropped, acc.observing_s, float(self.seconds))
        return ClosedWindow(start, self.seconds, counts, quality)
