"""The learned background on generated scenes: people who linger for a while are not in the picture, and a
scene that does not settle before the frames run out gives no picture at all."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.counting.background import (
    BackgroundLearner,
    BackgroundNotClean,
    BackgroundSettings,
    difference_blobs,
    learn_background,
)
from edge_agent.counting.sources import SyntheticScene, SyntheticSource, Walker

W, H = 320, 240


def person_pixels(picture: np.ndarray, scene: SyntheticScene) -> int:
    """Pixels of ``picture`` that differ strongly from the scene's empty street (drawn without noise)."""
    empty = SyntheticScene(width=W, height=H, seed=scene.seed, noise=0).render(0)
    return int((np.abs(picture.astype(np.int16) - empty.astype(np.int16)).max(axis=2) > 40).sum())


def lingering_scene(stay: int, tail: int = 2000) -> SyntheticScene:
    """Two people walk in, each stands in one place for ``stay`` frames, then walks off; three passers-by;
    then ``tail`` frames of empty street."""
    walkers = [
        Walker(path=[(-30, 150), (60, 150), (60, 150), (-40, 150)], start=10, speed=3.0, height=70, pauses={1: stay}),
        Walker(path=[(380, 200), (220, 200), (220, 200), (380, 200)], start=40, speed=3.0, height=80, pauses={1: stay}),
    ]
    walkers += [
        Walker(path=[(-20, 120 + 30 * i), (W + 20, 120 + 30 * i)], start=15 * i, speed=3.0, height=60) for i in range(3)
    ]
    end = 40 + stay + 120 + tail
    walkers.append(Walker(path=[(-20, 230), (-20, 230)], start=end - 1, speed=1.0, height=1))  # sets the length
    return SyntheticScene(width=W, height=H, walkers=walkers, seed=5)


@pytest.mark.parametrize("stay", [100, 150, 200])
def test_people_who_linger_for_a_while_are_not_in_the_picture(stay: int) -> None:
    scene = lingering_scene(stay)
    # The fewest frames the command accepts: both are standing at frame 50 and 150 frames do not see them leave.
    assert person_pixels(scene.render(50), scene) > 2000
    learned = learn_background(SyntheticSource(scene), BackgroundSettings(min_frames=50, samples=24))
    assert learned.frames > 40 + stay  # it had to wait for them to leave
    assert learned.image.shape == (H, W, 3)
    assert person_pixels(learned.image, scene) < 30


def test_a_scene_that_does_not_settle_before_the_end_gives_no_picture() -> None:
    # Someone walks in after a while and is still standing when the video ends: the halves disagree.
    walkers = [Walker(path=[(-30, 160), (120, 160), (120, 160)], start=30, speed=5.0, height=80, pauses={1: 170})]
    scene = SyntheticScene(width=W, height=H, walkers=walkers, seed=2)
    assert scene.length < 260
    with pytest.raises(BackgroundNotClean, match="did not settle"):
        learn_background(SyntheticSource(scene), BackgroundSettings(min_frames=150))


def test_too_few_frames_give_no_picture() -> None:
    scene = SyntheticScene(width=W, height=H, walkers=[Walker(path=[(0, 100), (40, 100)], speed=1.0)])
    with pytest.raises(BackgroundNotClean, match="only 40 frames"):
        learn_background(SyntheticSource(scene), BackgroundSettings(min_frames=50))


def test_an_empty_street_is_learned_from_the_minimum() -> None:
    learner = BackgroundLearner(BackgroundSettings(min_frames=50, samples=8))
    scene = SyntheticScene(width=W, height=H, seed=9)
    for i in range(400):
        if learner.add(scene.render(i)):
            break
    picture = learner.picture()
    assert picture is not None and learner.frames <= 100
    assert person_pixels(picture, scene) == 0


def test_difference_blobs_finds_an_object_and_ignores_speckle() -> None:
    a = np.full((100, 100, 3), 120, np.uint8)
    b = a.copy()
    b[10:40, 10:22] = 20  # a small figure
    b[80, 80] = 255  # one hot pixel
    assert difference_blobs(a, b, 30, 100) == [(10, 10, 12, 30)]
    assert difference_blobs(a, b, 30, 400) == []
