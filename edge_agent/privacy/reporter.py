"""The privacy domain's face to the agent: crossings in, protected flow windows out through the event sink."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.events import EventSink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger, Protector
from edge_agent.privacy.windows import ClosedWindow, WindowAggregator
from edge_agent.timekeeping import ClockWatch
from hub_protocol.flows import DP_KINDS, Direction, ObjectClass
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
    ) -> None:
        self.sink = sink
        self.config = config
        self.active_until = active_until
        self._lines = list(lines)
        self._clock = clock
        self._aggregator: WindowAggregator | None = None
        self.uncounted_before_sync = 0
        if clock is None:
            self._aggregator = WindowAggregator(lines, config.window_seconds, now)
        else:
            WindowAggregator(lines, config.window_seconds)  # the same checks of lines and window now, not later
            self._open_when_trusted()
        self._ledger = BudgetLedger(state_dir / LEDGER_FILE) if config.policy in DP_KINDS else None
        self._protector = Protector(config, self._ledger, rng)
        self._lock = threading.Lock()
        self._pruned_day: date | None = None
        self._pending: list[dict[str, Any]] = []

    def _open_when_trusted(self) -> WindowAggregator | None:
        """The aggregator, opened at the first call where the clock may be trusted; None until then."""
        if self._aggregator is None and self._clock is not None and self._clock.windows_allowed():
            now, _ = self._clock.read()
            self._aggregator = WindowAggregator(self._lines, self.config.window_seconds, now)
            log.info("clock trusted (%s): flow windows open from %s", self._clock.state().value, now.isoformat())
        return self._aggregator

    def _now(self) -> datetime:
        return self._clock.source.now() if self._clock is not None else datetime.now(UTC)

    def is_active(self, at: datetime) -> bool:
        return self.active_until is None or at.astimezone().date() <= self.active_until

    def add_crossing(
        self, line: str, direction: Direction | str, object_class: ObjectClass | str, at: datetime | None = None
    ) -> None:
        at = at or self._now()
        if not self.is_active(at):
            return
        with self._lock:
            aggregator = self._aggregator
            if aggregator is None:
                self.uncounted_before_sync += 1
                return
            aggregator.add_crossing(line, direction, object_class, at)

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
            closing = self._aggregator.close_due(now) if self._aggregator is not None else []
            for window in closing:
                if self.is_active(window.start):
                    self._pending.append(self._protect(window))
            if len(self._pending) > MAX_PENDING:
                log.error("dropping %d flow windows the event store would not take", len(self._pending) - MAX_PENDING)
                del self._pending[: len(self._pending) - MAX_PENDING]
            seqs = []
            while self._pending:
                try:
                    seqs.append(self.sink.emit(Channel.FLOW, self._pending[0]))
                except Exception:
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

    @property
    def pending(self) -> int:
        """Windows closed and protected but not yet accepted by the sink."""
        return len(self._pending)

    def _prune(self, now: datetime) -> None:
        # Yesterday's account still matters for windows that close just after midnight; older ones never do.
        today = now.astimezone(UTC).date()
        if self._ledger is not None and self._pruned_day != today:
            self._ledger.forget_before((today - timedelta(days=1)).isoformat())
            self._pruned_day = today

    def _protect(self, window: ClosedWindow) -> dict[str, Any]:
        protected = self._protector.protect(window.start, tuple(self._lines), window.counts)
        if protected.policy.budget_exhausted:
            log.warning("privacy budget of the day spent: window %s published without counts", window.start)
        return {
            "window_start": window.start.isoformat(),
            "window_seconds": window.seconds,
            "cells": [c.model_dump(mode="json") for c in protected.cells],
            "totals": [t.model_dump(mode="json") for t in protected.totals],
            "quality": window.quality.model_dump(mode="json"),
            "policy": protected.policy.model_dump(mode="json"),
        }

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
