"""The privacy domain's face to the agent: crossings in, protected flow windows out through the event sink."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.events import EventSink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger, CellKey, ProtectedWindow, Protector
from edge_agent.privacy.windows import ClosedWindow, WindowAggregator
from hub_protocol.flows import DP_KINDS, Direction, ObjectClass
from hub_protocol.topics import Channel

LEDGER_FILE = "privacy-budget.sqlite"
MAX_PENDING = 10_000
"""Protected windows kept in memory while the event store refuses them (about 100 days of 15-min windows)."""

log = logging.getLogger(__name__)


class FlowReporter:
    """Thread-safe: the counter calls ``add_crossing``/``note_frames``; a timer calls ``tick`` (every few
    seconds is plenty). After ``active_until`` crossings are ignored and no window is published."""

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
    ) -> None:
        self.sink = sink
        self.config = config
        self.active_until = active_until
        self._aggregator = WindowAggregator(lines, config.window_seconds, now)
        self._ledger = BudgetLedger(state_dir / LEDGER_FILE) if config.policy in DP_KINDS else None
        self._protector = Protector(config, self._ledger, rng)
        self._lock = threading.Lock()
        self._pruned_day: date | None = None
        self._pending: list[dict[str, Any]] = []

    def is_active(self, at: datetime) -> bool:
        return self.active_until is None or at.astimezone().date() <= self.active_until

    def add_crossing(
        self, line: str, direction: Direction | str, object_class: ObjectClass | str, at: datetime | None = None
    ) -> None:
        at = at or datetime.now(UTC)
        if not self.is_active(at):
            return
        with self._lock:
            self._aggregator.add_crossing(line, direction, object_class, at)

    def note_frames(self, processed: int, dropped: int, observing_seconds: float, at: datetime | None = None) -> None:
        at = at or datetime.now(UTC)
        if not self.is_active(at):
            return
        with self._lock:
            self._aggregator.note_frames(processed, dropped, observing_seconds, at)

    def tick(self, now: datetime | None = None) -> list[int]:
        """Close, protect and emit every window that has ended; returns the events' sequence numbers.

        A window the sink refuses (e.g. its store is unavailable) stays pending, already protected, and is
        offered again at the next tick: retrying with fresh noise would spend the budget twice."""
        now = now or datetime.now(UTC)
        with self._lock:
            for window in self._aggregator.close_due(now):
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

    def protect_counts(self, at: datetime, lines: Sequence[str], counts: Mapping[CellKey, int]) -> ProtectedWindow:
        """Protect counts that are not a window (a field validation's totals) exactly as a window would be;
        under dp this spends one window's epsilon of the day's budget."""
        with self._lock:
            return self._protector.protect(at, lines, counts)

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
        protected = self._protector.protect(window.start, self._aggregator.lines, window.counts)
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
