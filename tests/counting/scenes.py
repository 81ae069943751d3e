"""Helpers for counting tests: run the motion pipeline over a synthetic scene and tally crossings."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2

from edge_agent.counting.detectors.motion import MotionDetector
from edge_agent.counting.factory import settings_for
from edge_agent.counting.lines import CountLine
from edge_agent.counting.pipeline import CountingPipeline, Crossing
from edge_agent.counting.sources import SyntheticScene, SyntheticSource, Walker

WIDTH, HEIGHT = 320, 240
# A horizontal line across the middle, A on the left: walking down the image is `in`.
MID = CountLine("mid", 10, 120, 310, 120)


def still(frames: int) -> Walker:
    """Nobody: a fixed-length empty lead-in so the background model settles before people appear."""
    return Walker(path=[(-100, -100), (-100, -100 + frames)], speed=1.0, height=1.0)


def scene(*walkers: Walker, lead_in: int = 20) -> SyntheticScene:
    shifted = [replace(w, start=w.start + lead_in) for w in walkers]
    tail = Walker(path=[(-100, -100), (-100, -60)], start=max(w.start + w.duration for w in shifted) + 1, speed=1.0)
    return SyntheticScene(WIDTH, HEIGHT, [*shifted, tail])


def run_motion(
    scene: SyntheticScene, lines: list[CountLine], fps: float = 10.0, detector: MotionDetector | None = None
) -> list[Crossing]:
    detector = detector or MotionDetector(work_width=160)
    pipeline = CountingPipeline(lines, detector, fps, settings_for("motion"))
    source = SyntheticSource(scene, fps=fps)
    events: list[Crossing] = []
    while (frame := source.read()) is not None:
        events.extend(pipeline.process(frame.index, frame.image))
    return events + pipeline.flush()


def tally(events: list[Crossing]) -> Counter[tuple[str, str, str]]:
    return Counter((e.line, e.direction, e.object_class) for e in events)


def write_video(path: Path, synthetic: SyntheticScene, fps: float = 10.0) -> Path:
    """An MJPG AVI of a synthetic scene (test data only; the product never writes frames)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (synthetic.width, synthetic.height))
    assert writer.isOpened()
    for frame in range(synthetic.length):
        writer.write(synthetic.render(frame))
    writer.release()
    return path
