"""Crossings aggregated into clock-aligned windows, with a data-quality envelope per window.

Only counts are kept: a crossing's time is used once, to pick its window, and then forgotten. To bound what one
person can add to a window, the crossings of each tracked object are held per window (in memory, keyed by an
opaque track key that never leaves this module) and counted at close: at most ``max_crossings`` per object
over all lines. An object that crosses more often counts for its first ``max_crossings - 1`` crossings and
adds one to ``capped_tracks``, so that it changes the window's figures by at most ``max_crossings`` in all
(the sensitivity that the privacy budget pays for). Windows live
in memory only, so a crash or restart loses the counts of the window in progress; the next process starts a
new window whose ``observed_fraction`` shows that it saw only part of it. (Persisting partial windows would
put crossing-level data on disk for little gain.)

The clock: the agent opens windows only once its clock is synchronised, and tells the aggregator when the
clock steps (``clock_stepped``, see ``edge_agent.timekeeping``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
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
    tracks: dict[Hashable, list[CellKey]] = field(default_factory=dict)
    processed: int = 0
    dropped: int = 0
    observing_s: float = 0.0
    clock_stepped: bool = False

    def absorb(self, other: _Accumulator) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        for track, held in other.tracks.items():
            self.tracks.setdefault(track, []).extend(held)  # one object's crossings stay one object's
        self.processed += other.processed
        self.dropped += other.dropped
        self.observing_s += other.observing_s


@dataclass(frozen=True)
class ClosedWindow:
    start: datetime
    seconds: int
    counts: dict[CellKey, int]
    """Every line x direction x class of the configured lines, zeros included."""
    capped_tracks: int
    """Objects that crossed more than ``max_crossings`` times (true figure, for the protection to publish)."""
    quality: WindowQuality


class WindowAggregator:
    """Feed it crossings and frame statistics as they happen; ``close_due`` returns finished windows in order."""

    def __init__(
        self, lines: Sequence[str], window_seconds: int = 900, now: datetime | None = None, max_crossings: int = 2
    ) -> None:
        if not lines:
            raise ValueError("at least one counting line is needed")
        if len(set(lines)) != len(lines):
            raise ValueError("line names must be unique")
        if not 60 <= window_seconds <= 86_400 or 86_400 % window_seconds:
            raise ValueError("window_seconds must be between 60 and 86400 and divide a day")
        if max_crossings < 1:
            raise ValueError("max_crossings must be at least 1")
        self.lines = tuple(lines)
        self.max_crossings = max_crossings
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
        self,
        line: str,
        direction: Direction | str,
        object_class: ObjectClass | str,
        at: datetime,
        track: Hashable | None = None,
    ) -> None:
        """``track`` identifies the tracked object within this process (None: a crossing of its own)."""
        if line not in self.lines:
            raise ValueError(f"unknown counting line {line!r}")
        key = (line, Direction(direction), ObjectClass(object_class))
        acc = self._acc(at)
        if track is None:
            acc.counts[key] = acc.counts.get(key, 0) + 1
            return
        held = acc.tracks.setdefault(track, [])
        if len(held) <= self.max_crossings:  # one beyond the cap is enough to know the object was capped
            held.append(key)

    def note_frames(self, processed: int, dropped: int, observing_seconds: float, at: datetime) -> None:
        """Frames processed and skipped, and seconds the camera delivered frames, since the previous call.
        Call it at least every few seconds so that the figures land in the right window."""
        if processed < 0 or dropped < 0 or observing_seconds < 0:
            raise ValueError("frame statistics cannot be negative")
        acc = self._acc(at)
        acc.processed += processed
        acc.dropped += dropped
        acc.observing_s += observing_seconds

    def clock_stepped(self, now: datetime) -> None:
        """The wall clock just stepped (either way); ``now`` is on the corrected clock.

        What the windows in progress counted happened just before ``now`` on the corrected clock, so it moves
        to the window of ``now``, which is marked as spanning a step. Windows between the old and the new
        time are neither closed nor invented (a step forward by hours closes nothing at once), and a step
        back does not pour the next hour into the window that was open (late reports would)."""
        merged = _Accumulator(clock_stepped=True)
        for acc in self._open.values():
            merged.absorb(acc)
        self._first_open = window_start(now, self.seconds)
        self._open = {self._first_open: merged}

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
        capped = 0
        for held in acc.tracks.values():
            if len(held) > self.max_crossings:
                held = held[: self.max_crossings - 1]
                capped += 1
            for key in held:
                counts[key] += 1
        acc.tracks.clear()
        # Coarsened: the raw figures follow who was in view (see privacy/quality.py).
        quality = published_quality(
            acc.processed, acc.dropped, acc.observing_s, float(self.seconds), clock_stepped=acc.clock_stepped
        )
        return ClosedWindow(start, self.seconds, counts, capped, quality)
