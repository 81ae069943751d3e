"""Offline counting of a video file: every frame, as fast as possible (evaluation and benchmarks)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edge_agent.counting.lines import CountLine
from edge_agent.counting.pipeline import CountingPipeline, Crossing
from edge_agent.counting.sources import FrameSource


@dataclass
class CountResult:
    frames: int
    seconds: float
    lines: list[CountLine]
    events: list[Crossing]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``edge-agent count --json`` contract."""
        lines = []
        for line in self.lines:
            by_class = {c: {"in": 0, "out": 0} for c in ("pedestrian", "cyclist")}
            for e in self.events:
                if e.line == line.name:
                    by_class[e.object_class][e.direction] += 1
            lines.append(
                {
                    "name": line.name,
                    "points": [_number(v) for v in line.points],
                    "in": by_class["pedestrian"]["in"] + by_class["cyclist"]["in"],
                    "out": by_class["pedestrian"]["out"] + by_class["cyclist"]["out"],
                    "by_class": by_class,
                }
            )
        return {
            "frames": self.frames,
            "seconds": round(self.seconds, 4),
            "fps": round(self.fps, 2),
            "lines": lines,
            "events": [
                {"frame": e.frame, "line": e.line, "direction": e.direction, "class": e.object_class}
                for e in sorted(self.events, key=lambda e: e.frame)
            ],
        }


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def count_source(source: FrameSource, pipeline: CountingPipeline) -> CountResult:
    events: list[Crossing] = []
    frames = 0
    start = time.perf_counter()
    while True:
        frame = source.read()
        if frame is None:
            break
        frames += 1
        image = frame.image if pipeline.wants_image(frame.index) else None
        events.extend(pipeline.process(frame.index, image))
    events.extend(pipeline.flush())
    seconds = time.perf_counter() - start
    return CountResult(frames, seconds, pipeline.lines, events)
