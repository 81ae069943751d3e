"""The motion detector's learnt person shape: height by foot row (perspective) and width, from lone blobs."""

from __future__ import annotations

import random
import statistics
from collections import deque

import pytest

from edge_agent.counting.detectors.motion import PersonShape, RecentMedian


def test_learns_perspective_height_and_the_foot_row_of_a_head() -> None:
    shape = PersonShape(rows=200)
    assert shape.height_at(150) is None  # nothing learnt yet: no splitting on guesses
    for k in range(120):
        foot = 40 + (k * 7) % 160
        height = 10 + 0.3 * foot  # nearer the camera (lower in the image) is taller
        shape.learn(foot, height, 0.4 * height, 0.3 * height)
    # Two people's blobs and half-person fragments are outliers the per-band medians ignore.
    for foot in (60, 120, 180):
        shape.learn(foot, 1.3 * (10 + 0.3 * foot), 0.5 * (10 + 0.3 * foot))
    assert shape.height_at(100) == pytest.approx(40, abs=2)
    assert shape.height_at(180) == pytest.approx(64, abs=2)
    assert shape.aspect == pytest.approx(0.4, abs=0.02)
    assert shape.shoulders == pytest.approx(0.3, abs=0.02)
    foot = shape.top_to_foot(100.0)  # head on row 100: feet where foot - height(foot) = 100
    assert foot is not None and foot - (10 + 0.3 * foot) == pytest.approx(100, abs=3)


def test_blobs_not_shaped_like_one_upright_person_are_not_learnt() -> None:
    shape = PersonShape(rows=200, min_samples=5)
    for _ in range(20):
        shape.learn(150, 40, 40)  # square: a car, a cyclist side on, two people
        shape.learn(150, 40, 4)  # a pole
    assert shape.height_at(150) is None


def test_heights_that_seem_to_shrink_towards_the_camera_give_a_flat_fit_through_them() -> None:
    # A few smaller blobs low in the image (someone cut by the frame, a child) tilt the line the wrong way;
    # the flat line through the band medians must stay among the heights seen, or no one person's blob is
    # ever taken for one again.
    shape = PersonShape(rows=120, min_samples=30)
    for k in range(30):
        foot = 65 + k % 3 * 15
        shape.learn(foot, 46 if foot > 90 else 56, 20)
    expected = shape.height_at(80)
    assert expected is not None and 46 <= expected <= 56
    assert shape.height_at(110) == pytest.approx(expected)


@pytest.mark.parametrize("keep", [1, 2, 5, 160])
def test_the_recent_median_is_the_median_of_the_last_values_kept(keep: int) -> None:
    rng = random.Random(keep)
    recent = RecentMedian(keep)
    window: deque[float] = deque(maxlen=keep)
    for _ in range(2_000):
        # Repeated values too: one leaving must take out one copy, not all of them.
        value = rng.choice([rng.random(), round(rng.random(), 1)])
        recent.append(value)
        window.append(value)
        assert len(recent) == len(window)
        assert recent.median() == statistics.median(window)
