"""The motion detector after the light changes at once: the sun comes out, a street light or the camera's
exposure switches. Generated scenes with exact counts; every walker crosses after the change."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from edge_agent.counting.detectors import Image
from edge_agent.counting.detectors.motion import BackgroundModel
from edge_agent.counting.sources import SyntheticScene, Walker
from tests.counting.scenes import MID, run_motion, scene, tally

CHANGE = 200  # frame of the change: the model has long settled on the street by then


@dataclass
class _LightChange(SyntheticScene):
    """The street lit ``gain`` times as brightly from frame ``CHANGE`` on, in the rows from ``top`` down (a
    share of the frame: 0 is all of it, 0.4 the sunlit pavement below a shadowed facade)."""

    gain: float = 1.5
    top: float = 0.0

    def render(self, frame: int) -> Image:
        image = super().render(frame)
        if frame < CHANGE:
            return image
        lit = image.copy()
        row = round(self.top * self.height)
        lit[row:] = cv2.convertScaleAbs(image[row:], alpha=self.gain, beta=0)
        return lit


def _street(gain: float, top: float = 0.0) -> _LightChange:
    plain = scene(
        Walker([(100, 40), (100, 220)], speed=3, height=50, start=CHANGE + 5),
        Walker([(220, 220), (220, 40)], speed=3, height=50, start=CHANGE + 30, colour=(200, 60, 40)),
    )
    return _LightChange(plain.width, plain.height, plain.walkers, gain=gain, top=top)


@pytest.mark.parametrize(
    ("gain", "top"),
    [(1.5, 0.0), (1.6, 0.4), (0.7, 0.0)],
    ids=["sun-comes-out", "sunlit-pavement", "cloud"],
)
def test_people_crossing_after_the_light_changes_are_counted(gain: float, top: float) -> None:
    expected = Counter({("mid", "in", "pedestrian"): 1, ("mid", "out", "pedestrian"): 1})
    assert tally(run_motion(_street(gain, top), [MID])) == expected


def _settled(seed: int, low: int, high: int) -> tuple[BackgroundModel, Image]:
    """A background model that has watched an empty textured street (grey levels low-high) for 4 s."""
    model = BackgroundModel(work_width=160)
    street = np.random.default_rng(seed).integers(low, high, size=(240, 320, 3)).astype(np.uint8)
    for _ in range(40):
        model.foreground(street)
    return model, street


def test_people_walking_about_do_not_restart_the_background() -> None:
    """A restart forgets the street; people covering a good part of the view must not cause one."""
    model, street = _settled(3, 90, 170)
    learnt = model.background()
    crowd = street.copy()
    crowd[60:220, 20:150] = (30, 30, 60)  # close to the camera: 27% of the view
    for _ in range(5):
        moving = model.foreground(crowd)
    assert cv2.countNonZero(moving) > 0.2 * moving.size
    assert learnt is not None and np.array_equal(model.background(), learnt)


def test_a_brighter_view_is_a_new_background_at_once() -> None:
    model, street = _settled(4, 60, 120)
    brighter = cv2.convertScaleAbs(street, alpha=1.6, beta=0)
    after = [cv2.countNonZero(model.foreground(brighter)) for _ in range(3)]
    assert after == [0, 0, 0]


@dataclass
class _Night(SyntheticScene):
    """The street in grey: a camera at night on infrared, or a monochrome camera."""

    def render(self, frame: int) -> Image:
        grey = cv2.cvtColor(super().render(frame), cv2.COLOR_BGR2GRAY)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("clothes", [(70, 75, 80), (100, 100, 100)], ids=["dark", "mid-grey"])
def test_people_on_a_grey_camera_are_not_taken_for_shadows(clothes: tuple[int, int, int]) -> None:
    """In grey every darker pixel has the colour of a shadow; people a little darker than the street must
    still be seen (the street is 90-170 grey levels)."""
    plain = scene(
        Walker([(100, 40), (100, 220)], speed=3, height=50, colour=clothes),
        Walker([(220, 220), (220, 40)], speed=3, height=50, start=20, colour=clothes),
    )
    night = _Night(plain.width, plain.height, plain.walkers)
    expected = Counter({("mid", "in", "pedestrian"): 1, ("mid", "out", "pedestrian"): 1})
    assert tally(run_motion(night, [MID])) == expected
