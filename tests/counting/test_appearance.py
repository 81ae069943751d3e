"""The colour signature tells overlapping people apart where their boxes cannot."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edge_agent.counting.appearance import describe, distance
from edge_agent.counting.detectors import Image
from edge_agent.counting.factory import settings_for
from edge_agent.counting.pipeline import CountingPipeline
from edge_agent.counting.sources import SyntheticScene, Walker
from edge_agent.counting.tracking import Detection
from tests.counting.scenes import HEIGHT, MID, WIDTH

RED, BLUE = (30, 30, 200), (200, 60, 20)  # BGR


class SceneBoxes:
    """A model-like detector on a generated scene: each person's box, but two people who overlap much are one
    box (as a detector's non-maximum suppression makes of them), so boxes alone cannot follow them through."""

    name = "onnx"
    classifies = True
    noise_allowance = 0.025

    def __init__(self, scene: SyntheticScene) -> None:
        self.scene = scene
        self.frame = 0

    def detect(self, image: Image, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        boxes = [box for _, box in self.scene.boxes(self.frame)]
        if len(boxes) == 2:
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = boxes
            iw, ih = min(ax2, bx2) - max(ax1, bx1), min(ay2, by2) - max(ay1, by1)
            if iw > 0 and ih > 0 and iw * ih > 0.3 * min((ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1)):
                return [Detection(min(ax1, bx1), min(ay1, by1), max(ax2, bx2), max(ay2, by2), 0.9, False)]
        return [Detection(*box, 0.9, False) for box in boxes]


def crossings(appearance: bool, every: int) -> list[str]:
    # Red walks down across the line, blue up; they meet on it and stand together for a second, in one box.
    red = Walker(path=[(40, 70), (160, 122), (280, 175)], start=5, speed=4.0, colour=RED, pauses={1: 10})
    blue = Walker(path=[(40, 175), (160, 124), (280, 70)], start=5, speed=4.0, colour=BLUE, pauses={1: 10})
    empty = Walker(path=[(-100, -100), (-100, -60)], start=red.duration + 10, speed=1.0)  # a few empty frames
    scene = SyntheticScene(WIDTH, HEIGHT, [red, blue, empty])
    detector = SceneBoxes(scene)
    settings = replace(settings_for("onnx", every), roi=False, motion_gate=False, appearance=appearance)
    pipeline = CountingPipeline([MID], detector, 10.0, settings)
    events = []
    for frame in range(scene.length):
        detector.frame = frame
        events += pipeline.process(frame, scene.render(frame) if pipeline.wants_image(frame) else None)
    events += pipeline.flush()
    return sorted(e.direction for e in events)


@pytest.mark.parametrize("every", [1, 4])
def test_two_people_crossing_paths_in_one_box_are_both_counted_the_right_way(every: int) -> None:
    assert crossings(appearance=True, every=every) == ["in", "out"]
    # The scene is one that motion alone gets wrong (the tracks bounce off each other): otherwise this test
    # would not show what the colours add.
    assert crossings(appearance=False, every=every) != ["in", "out"]


def test_signature_tells_colours_apart_and_ignores_the_background() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(200, 200, 3), dtype=np.uint8)
    image[20:180, 20:60] = RED
    image[20:180, 120:160] = BLUE
    image[20:180, 70:110] = RED
    # Boxes a little wider than the people: the busy background at their sides must not matter.
    red_a, red_b = describe(image, Detection(10, 20, 70, 180)), describe(image, Detection(60, 20, 120, 180))
    blue = describe(image, Detection(110, 20, 170, 180))
    assert red_a is not None and red_b is not None and blue is not None
    assert distance(red_a, red_b) < 0.1
    assert distance(red_a, blue) > 0.6  # the same brightness, no colour in common


def test_no_signature_without_colour_or_pixels() -> None:
    grey = np.zeros((100, 100), dtype=np.uint8)
    assert describe(grey, Detection(10, 10, 50, 90)) is None
    colour = np.zeros((100, 100, 3), dtype=np.uint8)
    assert describe(colour, Detection(10, 10, 14, 20)) is None  # a few pixels say nothing
    assert describe(colour, Detection(200, 200, 260, 300)) is None  # outside the frame
