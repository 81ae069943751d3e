"""The privacy domain's face to the agent: crossings in, protected flow windows out through the event sink."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Hashable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from edge_agent.events import EventSink
from edge_agent.privacy.config import SECONDS_PER_DAY, PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger, CellKey, DayCorrection, ProtectedWindow, Protector
from edge_agent.privacy.windows import ClosedWindow, WindowAggregator
from edge_agent.storage import StorageWatch
from edge_agent.timekeeping import ClockWatch
from hub_protocol.flows import DP_KINDS, Direction, ObjectClass, WindowQuality
from hub_protocol.topics import Channel

LEDGER_FILE = "privacy-budget.sqlite"
MAX_PENDING = 10_000
"""Protected windows kept in memory while the event store refuses them (about 100 days of 15-min windows)."""

log = logging.getLogger(__name__)


class FlowReporter:
    """Thread-safe: the counter calls ``add_crossing``/``note_frames``; a timer calls ``tick`` (every few
    seconds is plenty). After ``active_until`` crossings are ignored and no window is published.

    With a ``clock`` (the agent passes one) the time comes from it: no window is opened before the clock
    may be trusted (crossings until then are not counted), and a step of the clock is handed to the
    windows as it is seen."""

    def __init__(
        self,
        sink: EventSink,
        config: PrivacyConfig,
        lines: Sequence[str],
        state_dir: Path,
        *,
        active_until: date | None = None,
        now: datetime | None = None,
        rng: random.Random | None = None,
        clock: ClockWatch | None = None,
        watch: StorageWatch | None = None,
    ) -> None:
        self.sink = sink
        self.config = config
        self.active_until = active_until
        self._lines = tuple(lines)
        self._clock = clock
        self._aggregator: WindowAggregator | None = None
        self.uncounted_before_sync = 0
        if clock is None:
            self._aggregator = self._new_aggregator(now)
        else:
            self._new_aggregator(None)  # the same checks of lines and window now, not later
            self._open_when_trusted()
        self._watch = watch or StorageWatch()
        self._ledger = BudgetLedger(state_dir / LEDGER_FILE, self._watch) if config.policy in DP_KINDS else None
        self._protector = Protector(config, self._ledger, rng)
        self._lock = threading.Lock()
        self._pruned_day: date | None = None
        self._pending: list[dict[str, Any]] = []
        self._day_quality: dict[date, tuple[float, float]] = {}  # day -> (observed s, fps x observed s)
        self._day_stepped: set[date] = set()  # days with a window that spans a clock step
        self._closed: list[ClosedWindow] = []
        """Closed but not yet protected: the budget ledger could not be written (counts in memory only)."""

    def _open_when_trusted(self) -> WindowAggregator | None:
        """The aggregator, opened at the first call where the clock may be trusted; None until then."""
        if self._aggregator is None and self._clock is not None and self._clock.windows_allowed():
            now, _ = self._clock.read()
            self._aggregator = self._new_aggregator(now)
            log.info("clock trusted (%s): flow windows open from %s", self._clock.state().value, now.isoformat())
        return self._aggregator

    def _new_aggregator(self, now: datetime | None) -> WindowAggregator:
        return WindowAggregator(self._lines, self.config.window_seconds, now, self.config.max_crossings)

    def _now(self) -> datetime:
        return self._clock.source.now() if self._clock is not None else datetime.now(UTC)

    def is_active(self, at: datetime) -> bool:
        return self.active_until is None or at.astimezone().date() <= self.active_until

    def add_crossing(
        self, line: str, direction: Direction | str, object_class: ObjectClass | str, at: datetime | None = None
    ) -> None:
        self._add(line, direction, object_class, at or self._now(), None)

    def on_crossing(
        self, line: str, direction: Direction | str, object_class: ObjectClass | str, track: Hashable
    ) -> None:
        """The counter's callback: ``track`` only lets the window cap what one object adds; it is never stored
        beyond the open window nor published."""
        self._add(line, direction, object_class, self._now(), track)

    def _add(
        self, line: str, direction: Direction | str, object_class: ObjectClass | str, at: datetime, track: Hashable
    ) -> None:
        if not self.is_active(at):
            return
        with self._lock:
            aggregator = self._aggregator
            if aggregator is None:
                self.uncounted_before_sync += 1
                return
            aggregator.add_crossing(line, direction, object_class, at, track)

    def note_frames(self, processed: int, dropped: int, observing_seconds: float, at: datetime | None = None) -> None:
        at = at or self._now()
        if not self.is_active(at):
            return
        with self._lock:
            if self._aggregator is not None:
                self._aggregator.note_frames(processed, dropped, observing_seconds, at)

    def tick(self, now: datetime | None = None) -> list[int]:
        """Close, protect and emit every window that has ended; returns the events' sequence numbers.

        A window the sink refuses (e.g. its store is unavailable) stays pending, already protected, and is
        offered again at the next tick: retrying with fresh noise would spend the budget twice."""
        with self._lock:
            now = self._clock_tick() if self._clock is not None else now or datetime.now(UTC)
            if self._aggregator is not None:
                self._closed += [w for w in self._aggregator.close_due(now) if self.is_active(w.start)]
            while self._closed:
                try:
                    self._release_day(self._closed[0].start.date())
                    protected = self._protect(self._closed[0])
                except Exception as exc:
                    # Nothing was published or paid for: protect it at the next tick, still only once.
                    if not self._watch.failed("privacy-budget", exc):
                        log.exception("flow window %s not protected; retrying at the next tick", self._closed[0].start)
                    break
                self._pending.append(protected)
                self._closed.pop(0)
            if not self._closed and self._aggregator is not None:
                # Windows close in order: once the oldest open one is on a later day, the day is complete.
                try:
                    self._release_day(self._aggregator.current_start.date())
                except Exception as exc:
                    if not self._watch.failed("privacy-budget", exc):
                        log.exception("day correction not released; retrying at the next tick")
            if len(self._pending) > MAX_PENDING:
                log.error("dropping %d flow windows the event store would not take", len(self._pending) - MAX_PENDING)
                del self._pending[: len(self._pending) - MAX_PENDING]
            seqs = []
            while self._pending:
                try:
                    seqs.append(self.sink.emit(Channel.FLOW, self._pending[0]))
                except Exception as exc:
                    if not self._watch.failed("counting", exc):
                        log.exception(
                            "flow window of %s not stored; retrying at the next tick", self._pending[0]["window_start"]
                        )
                    break
                self._pending.pop(0)
            self._prune(now)
            return seqs

    def _clock_tick(self) -> datetime:
        """The clock's time; opens the windows once it is trusted, hands them a step as soon as it is seen."""
        assert self._clock is not None
        now, step = self._clock.read()
        if step is not None:
            self._clock.recheck()
            if self._aggregator is not None:
                log.warning("the clock stepped by %s: the window in progress is marked", step)
                self._aggregator.clock_stepped(now)
        self._open_when_trusted()
        return now

    @property
    def windows_open(self) -> bool:
        """False while the windows wait for the clock to be trusted."""
        return self._aggregator is not None

    def protect_counts(
        self, at: datetime, lines: Sequence[str], counts: Mapping[CellKey, int], *, period: timedelta | None = None
    ) -> ProtectedWindow:
        """Protect counts that are not a window (a field validation's totals of ``period`` from ``at``) by
        the windows' policy; under dp this spends the epsilon of every window the period touches (see
        ``Protector.protect``)."""
        with self._lock:
            return self._protector.protect(at, lines, counts, period=period)

    @property
    def pending(self) -> int:
        """Windows closed and protected but not yet accepted by the sink."""
        return len(self._pending)

    def _prune(self, now: datetime) -> None:
        # Yesterday's account still matters for windows that close just after midnight; older ones never do.
        today = now.astimezone(UTC).date()
        if self._ledger is not None and self._pruned_day != today:
            try:
                self._ledger.forget_before((today - timedelta(days=1)).isoformat())
            except Exception as exc:
                if not self._watch.failed("privacy-budget", exc):
                    log.exception("old budget accounts not pruned; retrying at the next tick")
                return
            self._pruned_day = today

    def _protect(self, window: ClosedWindow) -> dict[str, Any]:
        protected = self._protector.protect(window.start, self._lines, window.counts, window.capped_tracks)
        quality = window.quality.model_copy(update={"capped_tracks": protected.capped_tracks})
        day = window.start.date()
        observed = quality.observed_fraction * window.seconds
        seen, weighted = self._day_quality.get(day, (0.0, 0.0))
        self._day_quality[day] = (seen + observed, weighted + quality.mean_fps * observed)
        if quality.clock_stepped:
            self._day_stepped.add(day)
        if protected.policy.budget_exhausted:
            log.warning("privacy budget of the day spent: window %s published without counts", window.start)
        return {
            "window_start": window.start.isoformat(),
            "window_seconds": window.seconds,
            "cells": [c.model_dump(mode="json") for c in protected.cells],
            "totals": [t.model_dump(mode="json") for t in protected.totals],
            "quality": quality.model_dump(mode="json", exclude_none=True),
            "policy": protected.policy.model_dump(mode="json"),
        }

    def _release_day(self, before: date) -> None:
        correction = self._protector.release_day(before)
        keep = correction.day if correction is not None else None
        for day in [d for d in self._day_quality if d < before and d != keep]:
            del self._day_quality[day]
        self._day_stepped = {d for d in self._day_stepped if d >= before or d == keep}
        if correction is not None and self.is_active(datetime.combine(correction.day, time(), UTC)):
            self._pending.append(self._correction(correction))

    def _correction(self, correction: DayCorrection) -> dict[str, Any]:
        """The day's correction as a window of the whole day; its quality describes the day it covers, so that
        the hub's coverage and frame-rate figures over a day are unchanged by it."""
        seen, weighted = self._day_quality.pop(correction.day, (0.0, 0.0))
        quality = WindowQuality(
            observed_fraction=round(min(seen / SECONDS_PER_DAY, 1.0), 4),
            mean_fps=round(weighted / seen, 2) if seen else 0.0,
            dropped_frames=0,
            clock_stepped=correction.day in self._day_stepped,
        )
        self._day_stepped.discard(correction.day)
        return {
            "window_start": datetime.combine(correction.day, time(), UTC).isoformat(),
            "window_seconds": SECONDS_PER_DAY,
            "cells": [c.model_dump(mode="json") for c in correction.cells],
            "totals": [t.model_dump(mode="json") for t in correction.totals],
            "quality": quality.model_dump(mode="json", exclude_none=True),
            "policy": correction.policy.model_dump(mode="json"),
        }

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
