"""Published totals: consistent within a window, and unbiased over a day, on a quiet street where clipping at
zero used to add +32 a day (issue 13)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import CELL_ORDER, BudgetLedger, Protector
from edge_agent.privacy.reporter import FlowReporter
from hub_protocol.flows import FlowWindow
from hub_protocol.topics import Channel

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 200
WINDOWS = 96


def quiet_day(rng: np.random.Generator) -> np.ndarray:
    """(96, 4) true cells of a residential street: mostly zeros, about 60 people a day."""
    return rng.poisson([0.25, 0.05, 0.25, 0.05], size=(WINDOWS, 4))


def test_daily_sums_of_what_is_published_are_unbiased_and_accurate() -> None:
    truth_rng = np.random.default_rng(11)
    protector = Protector(PrivacyConfig(), BudgetLedger(Path(":memory:")), random.Random(12))
    errors, clipped_errors = [], []
    for day in range(DAYS):
        cells = quiet_day(truth_rng)
        published = 0
        clipped = 0
        for w in range(WINDOWS):
            start = DAY0 + timedelta(days=day, minutes=15 * w)
            counts = {("door", d, c): int(v) for (d, c), v in zip(CELL_ORDER, cells[w], strict=True)}
            window = protector.protect(start, ["door"], counts)
            values = [c.count for c in window.cells]
            assert None not in values
            published += sum(v for v in values if v is not None)
            clipped += sum(max(0, v) for v in values if v is not None)
        correction = protector.release_day((DAY0 + timedelta(days=day + 1)).date())
        assert correction is not None
        published += sum(c.count or 0 for c in correction.cells)
        errors.append(published - int(cells.sum()))
        clipped_errors.append(clipped - int(cells.sum()))
    bias, mae = float(np.mean(errors)), float(np.mean(np.abs(errors)))
    assert abs(bias) < 2.0, bias  # standard error of the mean is about 0.6
    assert mae <= 12, mae
    # Control: the same published windows clipped at zero (what the hub does for display only) are biased.
    assert np.mean(clipped_errors) > 20


def test_every_published_window_adds_up(tmp_path: Path) -> None:
    """Through the reporter: margins equal the sums of the published cells, in the windows and in the day's
    correction, and everything the device emits validates as the hub will validate it."""
    sink = MemorySink()
    start = DAY0 + timedelta(hours=22)
    reporter = FlowReporter(sink, PrivacyConfig(), ["door", "gate"], tmp_path, now=start, rng=random.Random(5))
    for i in range(30):
        at = start + timedelta(minutes=4 * i)
        reporter.add_crossing("door" if i % 3 else "gate", "in" if i % 2 else "out", "pedestrian", at)
    reporter.note_frames(3000, 0, 300.0, start + timedelta(minutes=5))
    reporter.tick(DAY0 + timedelta(days=1, minutes=20))
    windows = sink.of(Channel.FLOW)
    assert [w.window_seconds for w in windows] == [900] * 8 + [86_400] + [900]
    correction = windows[8]
    assert correction.window_start == DAY0 and correction.policy.spent_today == 8.0
    assert correction.quality.observed_fraction == round(300 / 86_400, 4)
    for window in windows:
        FlowWindow.model_validate(window.model_dump())
        for total in window.totals:
            parts = [
                c.count
                for c in window.cells
                if c.line == total.line
                and total.direction in (None, c.direction)
                and total.object_class in (None, c.object_class)
            ]
            assert total.count == sum(p for p in parts if p is not None)
