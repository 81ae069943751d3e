"""Differential privacy: the noise has the documented distribution, and the daily budget holds."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import (
    BudgetLedger,
    Protector,
    geometric_noise,
    geometric_noise_array,
    geometric_pmf,
)
from hub_protocol.flows import Direction, FlowWindow, ObjectClass, PolicyKind

SPAN = 8
CHI2_CRITICAL_DF18_P001 = 42.31  # chi-square with 18 degrees of freedom, 0.1% upper tail
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def chi_square(draws: Sequence[int], epsilon: float) -> float:
    """Pearson statistic against the documented pmf: bins -8..8 and the two tails (19 bins, 18 df)."""
    n = len(draws)
    seen = Counter(max(-SPAN - 1, min(SPAN + 1, int(z))) for z in draws)
    a = math.exp(-epsilon)
    tail = a ** (SPAN + 1) / (1 + a)  # P(Z > 8) = P(Z < -8)
    expected = {z: geometric_pmf(z, epsilon) for z in range(-SPAN, SPAN + 1)}
    expected[SPAN + 1] = expected[-SPAN - 1] = tail
    assert math.isclose(sum(expected.values()), 1.0, rel_tol=1e-12)
    return sum((seen[z] - n * p) ** 2 / (n * p) for z, p in expected.items())


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0])
def test_device_sampler_matches_the_documented_pmf(epsilon: float) -> None:
    rng = random.Random(20260302)
    draws = [geometric_noise(epsilon, rng) for _ in range(200_000)]
    assert chi_square(draws, epsilon) < CHI2_CRITICAL_DF18_P001
    a = math.exp(-epsilon)
    assert abs(np.mean(draws)) < 0.02 * (1 + 1 / epsilon)
    assert np.var(draws) == pytest.approx(2 * a / (1 - a) ** 2, rel=0.03)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 2.0])
def test_vectorised_sampler_matches_the_documented_pmf(epsilon: float) -> None:
    draws = geometric_noise_array(epsilon, 200_000, np.random.default_rng(7)).tolist()
    assert chi_square(draws, epsilon) < CHI2_CRITICAL_DF18_P001


def test_the_statistical_test_detects_a_wrong_epsilon() -> None:
    rng = random.Random(20260302)
    draws = [geometric_noise(1.25, rng) for _ in range(200_000)]
    assert chi_square(draws, 1.0) > 10 * CHI2_CRITICAL_DF18_P001


def test_budget_refuses_to_go_over(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "budget.sqlite")
    granted = [ledger.spend(DAY + timedelta(minutes=15 * i), 1.0, 3.0) for i in range(5)]
    assert [s.granted for s in granted] == [True, True, True, False, False]
    assert granted[2].spent_today == pytest.approx(3.0)
    assert "exceeded" in granted[3].reason
    assert ledger.spent(DAY.date().isoformat()) == pytest.approx(3.0)
    # A new UTC day has a fresh budget.
    assert ledger.spend(DAY + timedelta(days=1), 1.0, 3.0).granted


def test_budget_survives_a_restart_and_pays_each_window_once(tmp_path: Path) -> None:
    path = tmp_path / "state" / "budget.sqlite"
    first = BudgetLedger(path)
    assert first.spend(DAY, 2.0, 3.0).granted
    first.close()
    second = BudgetLedger(path)
    again = second.spend(DAY, 2.0, 3.0)
    assert not again.granted and "already" in again.reason  # fresh noise on the same window would leak more
    over = second.spend(DAY + timedelta(minutes=15), 2.0, 3.0)
    assert not over.granted and over.spent_today == pytest.approx(2.0)
    assert second.spend(DAY + timedelta(minutes=15), 1.0, 3.0).granted


def test_exhausted_budget_withholds_every_count(tmp_path: Path) -> None:
    config = PrivacyConfig(policy=PolicyKind.DP, epsilon=1.0, max_crossings=1, daily_budget=2.0)
    protector = Protector(config, BudgetLedger(tmp_path / "b.sqlite"), random.Random(1))
    counts = {("door", d, c): 40 for d in Direction for c in ObjectClass}
    windows = [protector.protect(DAY + timedelta(minutes=15 * i), ["door"], counts) for i in range(3)]
    assert [w.policy.budget_exhausted for w in windows] == [False, False, True]
    assert [w.policy.spent_today for w in windows] == [1.0, 2.0, 2.0]
    assert all(c.count is not None for c in windows[1].cells)
    assert all(c.count is None for c in windows[2].cells) and all(t.count is None for t in windows[2].totals)
    for i, w in enumerate(windows):
        FlowWindow(
            device="dev-a",
            boot="b",
            seq=i + 1,
            window_start=DAY,
            window_seconds=900,
            cells=w.cells,
            totals=w.totals,
            quality={"observed_fraction": 1, "mean_fps": 10, "dropped_frames": 0},
            policy=w.policy,
        )


def test_dp_counts_are_noisy_but_unbiased_in_the_line_total(tmp_path: Path) -> None:
    config = PrivacyConfig(policy=PolicyKind.DP)
    assert config.effective_budget == 96.0 and config.window_charge == 1.0  # every 15-minute window of a day
    protector = Protector(config, BudgetLedger(tmp_path / "b.sqlite"), random.Random(3))
    counts = {("door", d, c): 50 for d in Direction for c in ObjectClass}
    totals, exact = [], 0
    for i in range(96):
        w = protector.protect(DAY + timedelta(minutes=15 * i), ["door"], counts)
        line_total = next(t.count for t in w.totals if t.direction is None and t.object_class is None)
        assert line_total is not None
        totals.append(line_total)
        exact += all(c.count == 50 for c in w.cells)
    assert exact < 10  # noise is really added
    assert np.mean(totals) == pytest.approx(200, abs=3)  # 3.6 standard errors of the mean


def test_dp_threshold_shows_no_small_noisy_count(tmp_path: Path) -> None:
    config = PrivacyConfig(policy=PolicyKind.DP_THRESHOLD, epsilon=1.0, k=5)
    protector = Protector(config, BudgetLedger(tmp_path / "b.sqlite"), random.Random(5))
    counts = {("door", Direction.IN, ObjectClass.PEDESTRIAN): 3}
    for i in range(50):
        w = protector.protect(DAY + timedelta(minutes=15 * i), ["door"], counts)
        assert all(x.count is None or x.count == 0 or x.count >= 5 for x in [*w.cells, *w.totals])


def test_dp_policy_needs_a_ledger() -> None:
    with pytest.raises(ValueError, match="ledger"):
        Protector(PrivacyConfig(policy=PolicyKind.DP))
