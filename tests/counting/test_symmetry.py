"""The tracker and the crossing rule have no preferred direction: a street seen in a mirror counts the same.

In the material the rules were chosen on, most people walk along a few paths in a few directions. A rule
fitted to those directions (or to left and right) would count a mirrored street differently. Flipping a
generated scene's boxes and lines left to right turns every ``in`` into an ``out`` and must change nothing
else: the same crossings, of the same lines, at the same frames. (The mirrored and time-reversed real clip
are measured by ``bench/invariance.py``; a real detector is not exactly symmetric, so there it is a figure,
not an identity.)
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from edge_agent.counting.lines import CountLine
from edge_agent.counting.pipeline import Crossing
from edge_agent.counting.tracking import Detection
from tests.counting.ground import CAMERAS, GroundScene, random_ground_lines, random_scene, run


def _quarter(value: float) -> float:
    # Quarter pixels: exact in binary, so the mirror image of a box edge is exact too.
    return round(value * 4) / 4


class QuarterPixelScene(GroundScene):
    """The generated scene with box edges on quarter pixels (``mirror``: flipped left to right)."""

    mirror = False

    def detections(self, frame: int) -> list[Detection]:
        width = self.camera.size[0]
        out = []
        for det in super().detections(frame):
            x1, x2 = _quarter(det.x1), _quarter(det.x2)
            if self.mirror:
                x1, x2 = width - x2, width - x1
            out.append(replace(det, x1=x1, y1=_quarter(det.y1), x2=x2, y2=_quarter(det.y2)))
        return out


class MirroredScene(QuarterPixelScene):
    mirror = True


def _as(cls: type[GroundScene], scene: GroundScene) -> GroundScene:
    return cls(**{f.name: getattr(scene, f.name) for f in fields(scene) if f.name != "_boxes"})


def _flipped(line: CountLine, width: int) -> CountLine:
    return CountLine(line.name, width - line.x1, line.y1, width - line.x2, line.y2)


def _key(event: Crossing, mirrored: bool = False) -> tuple[int, str, str, str]:
    direction = {"in": "out", "out": "in"}[event.direction] if mirrored else event.direction
    return (event.frame, event.line, direction, event.object_class)


@pytest.mark.parametrize("camera", ["eye-level", "lamp-post"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mirrored_street_counts_the_same_with_in_and_out_swapped(camera: str, seed: int) -> None:
    scene = random_scene(CAMERAS[camera], seed)
    lines = random_ground_lines(scene, seed, 8)
    width = scene.camera.size[0]
    events = run(_as(QuarterPixelScene, scene), lines)
    mirrored = run(_as(MirroredScene, scene), [_flipped(line, width) for line in lines])
    assert len(events) >= 10, "too few crossings in the scene to say anything"
    assert sorted(_key(e) for e in events) == sorted(_key(e, mirrored=True) for e in mirrored)
