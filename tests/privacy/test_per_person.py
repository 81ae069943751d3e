"""What one person can lose, measured on what the device publishes, against what its ledger charges.

Two neighbouring inputs: a window with other passers-by, and the same window with one more tracked person
who crosses 1, 2 or 4 times (two lines, both directions). Each is run thousands of times through the
device's own window aggregator (the per-track cap) and Protector (noise, the day's correction), with a real
budget ledger. The privacy loss is estimated as the largest log-ratio of the probability of the same
published event under the two inputs, over orthant events on every published figure the person's crossings
could touch. It must stay within the ledger's charge for the window; a control without the cap shows that the
measurement does see a loss beyond it.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import CELL_ORDER, BudgetLedger, Protector, noise_variance
from edge_agent.privacy.windows import WindowAggregator
from hub_protocol.flows import PolicyKind

LINES = ["door", "gate"]
DAY0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
RUNS = 10_000
MIN_HITS = 200
TOLERANCE = 0.2  # about three standard errors of the log-ratio of events with at least MIN_HITS hits
OTHERS = [("door", "in", "pedestrian")] * 3 + [("gate", "out", "cyclist")] * 2  # untracked passers-by
PERSON = {
    1: [("door", "in", "pedestrian")],
    2: [("door", "in", "pedestrian"), ("door", "out", "pedestrian")],
    4: [
        ("door", "in", "pedestrian"),
        ("door", "out", "pedestrian"),
        ("gate", "in", "pedestrian"),
        ("gate", "out", "pedestrian"),
    ],
}
# Published figures a person crossing as above can touch: the four pedestrian cells, the capped-objects
# figure, and each line's day total as a reader reconstructs it from the correction window.
TOUCHED = [LINES.index(line) * 4 + CELL_ORDER.index((d, c)) for line, d, c in PERSON[4]]  # type: ignore[comparison-overlap]
CAPPED, DAY_DOOR, DAY_GATE = 8, 9, 10
COLUMNS = [*TOUCHED, CAPPED, DAY_DOOR, DAY_GATE]


def publish_many(config: PrivacyConfig, crossings: list[tuple[str, str, str]], seed: int) -> npt.NDArray[np.float64]:
    """One row per run: the eight published cells, the capped figure, and both lines' day totals as a reader
    computes them from what is published (the day's cells plus correction / weight)."""
    protector = Protector(config, BudgetLedger(Path(":memory:")), random.Random(seed))
    weight = 4 * noise_variance(config.cell_epsilon)
    weight /= weight + noise_variance(config.day_epsilon)
    rows = []
    for run in range(RUNS):
        start = DAY0 + timedelta(days=run)  # a day per run: one window, then the day's correction
        aggregator = WindowAggregator(LINES, 900, now=start, max_crossings=config.max_crossings)
        for line, d, c in OTHERS:
            aggregator.add_crossing(line, d, c, start)
        for line, d, c in crossings:
            aggregator.add_crossing(line, d, c, start + timedelta(minutes=3), track=(1, 7))
        (window,) = aggregator.close_due(start + timedelta(minutes=15))
        published = protector.protect(window.start, LINES, window.counts, window.capped_tracks)
        correction = protector.release_day(start.date() + timedelta(days=1))
        assert correction is not None
        cells = [c.count for c in published.cells]
        fixes = [sum(c.count or 0 for c in correction.cells if c.line == line) for line in LINES]
        day = [sum(cells[4 * i : 4 * i + 4]) + fixes[i] / weight for i in range(len(LINES))]  # type: ignore[misc]
        rows.append([*cells, published.capped_tracks, *day])
    return np.array(rows, dtype=np.float64)


def measured_loss(without: npt.NDArray[np.float64], with_: npt.NDArray[np.float64]) -> float:
    """Largest |log P(E | with) / P(E | without)| over upper and lower orthant events on every subset of the
    touched figures, thresholds around where the two inputs' medians lie; events seen fewer than MIN_HITS
    times under either input are skipped (their ratio is noise)."""
    worst = 0.0
    for size in range(1, len(COLUMNS) + 1):
        for subset in itertools.combinations(COLUMNS, size):
            cols = list(subset)
            for shift in (-1.0, 0.0, 1.0, 2.0):
                upper = np.maximum(np.median(without[:, cols], axis=0), np.median(with_[:, cols], axis=0)) + shift
                lower = np.minimum(np.median(without[:, cols], axis=0), np.median(with_[:, cols], axis=0)) - shift
                for hits_a, hits_b in (
                    ((without[:, cols] >= upper).all(axis=1).sum(), (with_[:, cols] >= upper).all(axis=1).sum()),
                    ((without[:, cols] <= lower).all(axis=1).sum(), (with_[:, cols] <= lower).all(axis=1).sum()),
                ):
                    if min(hits_a, hits_b) >= MIN_HITS:
                        worst = max(worst, abs(math.log(hits_b / hits_a)))
    return worst


@pytest.fixture(scope="module")
def baseline() -> npt.NDArray[np.float64]:
    return publish_many(PrivacyConfig(), [], seed=1)


@pytest.mark.parametrize("times", [1, 2, 4])
def test_one_person_loses_no_more_than_the_ledger_charges(baseline: npt.NDArray[np.float64], times: int) -> None:
    config = PrivacyConfig()
    assert config.policy is PolicyKind.DP and config.window_charge == 1.0
    loss = measured_loss(baseline, publish_many(config, PERSON[times], seed=100 + times))
    assert loss <= config.window_charge + TOLERANCE, f"{times} crossings: measured loss {loss:.2f}"
    assert loss > 0.25  # the measurement sees the person at all (theory: 0.5 for one crossing)


def test_control_without_the_cap_the_measured_loss_exceeds_the_charge(baseline: npt.NDArray[np.float64]) -> None:
    """Four crossings all counted (cap at 4, same epsilon per crossing): theory 4 x 0.35 in the window plus
    2 x 0.15 per line in the day totals, well above the default's charge of 1. The measurement must see it."""
    uncapped = PrivacyConfig(max_crossings=4, daily_budget=96)
    loss = measured_loss(baseline, publish_many(uncapped, PERSON[4], seed=7))
    assert loss > PrivacyConfig().window_charge + TOLERANCE, loss


def test_the_track_id_never_reaches_the_published_window() -> None:
    aggregator = WindowAggregator(LINES, 900, now=DAY0, max_crossings=2)
    for line, d, c in PERSON[4]:
        aggregator.add_crossing(line, d, c, DAY0, track=("secret-track", 424242))
    (window,) = aggregator.close_due(DAY0 + timedelta(minutes=15))
    assert window.capped_tracks == 1 and sum(window.counts.values()) == 1  # first max_crossings - 1, then capped
    published = Protector(PrivacyConfig(policy=PolicyKind.NONE)).protect(
        window.start, LINES, window.counts, window.capped_tracks
    )
    text = repr(published)
    assert "secret-track" not in text and "424242" not in text
