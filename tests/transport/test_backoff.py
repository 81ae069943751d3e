"""Reconnect delays: the ceiling doubles from min to max, and each delay is uniform below it (full jitter)."""

from __future__ import annotations

import random
import statistics

import pytest

from hub_protocol.backoff import Backoff


def test_ceiling_doubles_from_1_s_to_120_s_and_resets() -> None:
    backoff = Backoff(1.0, 120.0, random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(backoff.ceiling())
        backoff.next_delay()
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]
    backoff.reset()
    assert backoff.ceiling() == 1.0
    for _ in range(5000):  # an outage of any length never overflows
        backoff.next_delay()
    assert backoff.ceiling() == 120.0


@pytest.mark.parametrize("attempt", [0, 3, 9])
def test_delays_are_uniform_between_zero_and_the_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    samples = []
    for _ in range(20_000):
        backoff = Backoff(1.0, 120.0, rng)
        backoff.attempt = attempt
        samples.append(backoff.next_delay())
    ceiling = min(120.0, 2.0**attempt)
    assert min(samples) >= 0 and max(samples) <= ceiling
    # Uniform on [0, c]: mean c/2, deciles evenly spaced (a fixed or lockstep delay fails all of these).
    assert statistics.fmean(samples) == pytest.approx(ceiling / 2, rel=0.03)
    deciles = statistics.quantiles(samples, n=10)
    for k, value in enumerate(deciles, start=1):
        assert value == pytest.approx(ceiling * k / 10, abs=ceiling * 0.02)
    assert min(samples) < ceiling * 0.01 and max(samples) > ceiling * 0.99


def test_a_fleet_does_not_reconnect_in_lockstep() -> None:
    fleet = [Backoff(1.0, 120.0, random.Random(seed)) for seed in range(200)]
    for backoff in fleet:
        for _ in range(5):
            backoff.next_delay()
    next_delays = [round(b.next_delay(), 1) for b in fleet]
    # 200 devices over a 32 s window: no tenth of a second is shared by more than a handful.
    assert max(next_delays.count(d) for d in set(next_delays)) <= 5


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="min_s"):
        Backoff(5.0, 1.0)


def test_without_jitter_the_delay_is_the_ceiling_as_the_camera_reopen_uses_it() -> None:
    backoff = Backoff(0.5, 30.0, jitter=False)
    assert [backoff.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    backoff.reset()
    assert backoff.next_delay() == 0.5
