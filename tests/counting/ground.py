"""People walking on a ground plane, seen by a pinhole camera at any height: detector boxes with exact truth.

The tracker and the crossing rule see boxes, not pixels. This generator makes the boxes a detector would
return for a camera at eye level or on a lamp post, with what the field gives: perspective (people grow as
they approach), feet below the frame for people close to the camera, people hiding each other (a box mostly
hidden is missed, a partly hidden one gets a low score), localisation noise, missed and false detections.
Lines are drawn on the pavement (a segment on the ground, projected), as a technician draws them. The truth
is computed from the exact feet, so expected counts are exact.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from edge_agent.counting import evaluate as ev
from edge_agent.counting.detectors.onnx import OnnxDetector
from edge_agent.counting.factory import settings_for
from edge_agent.counting.lines import CountLine
from edge_agent.counting.pipeline import CountingPipeline, Crossing, PipelineSettings
from edge_agent.counting.tracking import Detection


@dataclass(frozen=True)
class Camera:
    height: float  # metres above the ground
    pitch: float  # degrees below the horizon
    focal: float  # pixels
    size: tuple[int, int] = (640, 480)

    def project(self, x: float, y: float, z: float) -> tuple[float, float, float] | None:
        """Pixel (u, v) and depth of a world point (x right, y forward, z up); None behind the camera."""
        t = math.radians(self.pitch)
        vy, vz = y, z - self.height
        depth = vy * math.cos(t) - vz * math.sin(t)
        if depth < 0.3:
            return None
        down = -vy * math.sin(t) - vz * math.cos(t)
        w, h = self.size
        return (w / 2 + self.focal * x / depth, h / 2 + self.focal * down / depth, depth)


@dataclass
class Walker:
    """A path of ground points (metres) walked at ``speed`` m/s from ``start`` (seconds); ``stature`` metres."""

    path: list[tuple[float, float]]
    start: float
    speed: float = 1.3
    stature: float = 1.7
    pause: tuple[int, float] | None = None  # (index of a path point, seconds standing there)
    seen: tuple[float, float] = (-math.inf, math.inf)  # when a detector can see them (a doorway, a van)
    cyclist: bool = False  # riding: ``stature`` is the rider's head above the ground, the bicycle ~1.75 m long

    def heading(self, t: float) -> tuple[float, float]:
        """Unit direction of travel at ``t`` (0, 0 while standing or out of the scene)."""
        a, b = self.position(t), self.position(t + 0.05)
        if a is None or b is None or a == b:
            return (0.0, 0.0)
        d = math.dist(a, b)
        return ((b[0] - a[0]) / d, (b[1] - a[1]) / d)

    def position(self, t: float) -> tuple[float, float] | None:
        t -= self.start
        if t < 0:
            return None
        for i, (a, b) in enumerate(zip(self.path, self.path[1:], strict=False)):
            if self.pause is not None and self.pause[0] == i:
                if t <= self.pause[1]:
                    return a
                t -= self.pause[1]
            leg = math.dist(a, b) / self.speed
            if t <= leg:
                k = t / leg if leg else 1.0
                return (a[0] + k * (b[0] - a[0]), a[1] + k * (b[1] - a[1]))
            t -= leg
        return None


@dataclass
class GroundScene:
    camera: Camera
    walkers: list[Walker]
    fps: float = 25.0
    frames: int = 250
    noise: float = 0.03  # sd of box edges, in box heights
    miss: float = 0.1  # chance that a visible person is not detected in a frame
    false_rate: float = 0.0  # false detections per frame
    occlusion: bool = True  # people hide each other (mostly hidden: missed; partly: a low score)
    seed: int = 0
    _boxes: dict[int, list[tuple[int, tuple[float, float, float, float], float]]] = field(default_factory=dict)

    def true_boxes(self, frame: int) -> list[tuple[int, tuple[float, float, float, float], float]]:
        """(walker, exact unclipped box, depth) of walkers in view at ``frame``."""
        if frame not in self._boxes:
            out = []
            w, h = self.camera.size
            for k, walker in enumerate(self.walkers):
                pos = walker.position(frame / self.fps)
                if pos is None:
                    continue
                foot = self.camera.project(pos[0], pos[1], 0.0)
                head = self.camera.project(pos[0], pos[1], walker.stature)
                if foot is None or head is None:
                    continue
                half = 0.2 * (foot[1] - head[1])  # a walking person's box is about 0.4 times as wide as tall
                if walker.cyclist:
                    # Seen side on, the bicycle's length sets the width; head on, the rider's shoulders.
                    across = abs(walker.heading(frame / self.fps)[0])
                    half = max(half, 0.5 * across * 1.75 / walker.stature * (foot[1] - head[1]))
                box = (foot[0] - half, head[1], foot[0] + half, foot[1])
                iw = min(box[2], w) - max(box[0], 0)
                ih = min(box[3], h) - max(box[1], 0)
                if iw > 0 and ih > 0 and iw * ih >= 0.25 * (box[2] - box[0]) * (box[3] - box[1]):
                    out.append((k, box, foot[2]))
            self._boxes[frame] = out
        return self._boxes[frame]

    def detections(self, frame: int) -> list[Detection]:
        """What a detector returns: clipped to the frame, noisy, some missed, hidden people weak or gone."""
        rng = random.Random(self.seed * 1_000_003 + frame)
        w, h = self.camera.size
        people = self.true_boxes(frame)
        out: list[Detection] = []
        for k, box, depth in people:
            area = (box[2] - box[0]) * (box[3] - box[1])
            hidden = 0.0
            for j, other, d in people if self.occlusion else ():
                if j != k and d < depth:
                    iw = min(box[2], other[2]) - max(box[0], other[0])
                    ih = min(box[3], other[3]) - max(box[1], other[1])
                    if iw > 0 and ih > 0:
                        hidden = max(hidden, iw * ih / area)
            t = frame / self.fps
            if hidden > 0.7 or rng.random() < self.miss or not self.walkers[k].seen[0] <= t < self.walkers[k].seen[1]:
                continue
            size = box[3] - box[1]
            jit = [rng.gauss(0.0, self.noise * size) for _ in range(4)]
            x1, y1, x2, y2 = (box[i] + jit[i] for i in range(4))
            x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, w - 1.0), min(y2, h - 1.0)
            if x2 - x1 < 4 or y2 - y1 < 8:
                continue
            score = rng.uniform(0.45, 0.9) if hidden < 0.3 else rng.uniform(0.18, 0.45)
            cyclist = self.walkers[k].cyclist
            if cyclist and rng.random() < 1 / 8:
                # The bicycle was missed: the rider alone, a pedestrian's box ending at the pedals.
                cx, rider = (x1 + x2) / 2, 0.2 * (box[3] - box[1])
                x1, x2, y2, cyclist = max(cx - rider, 0.0), min(cx + rider, w - 1.0), y1 + 0.8 * (y2 - y1), False
            out.append(Detection(x1, y1, x2, y2, score, cyclist))
        if self.false_rate and rng.random() < self.false_rate:
            fh = rng.uniform(40, 160)
            fx, fy = rng.uniform(0, w - fh / 2), rng.uniform(fh, h)
            out.append(Detection(fx, fy - fh, fx + fh / 2.5, fy, rng.uniform(0.2, 0.5), False))
        return out

    def ground_line(self, name: str, a: tuple[float, float], b: tuple[float, float]) -> CountLine | None:
        """A line drawn on the pavement from ground point ``a`` to ``b``, as the camera sees it."""
        pa, pb = self.camera.project(a[0], a[1], 0.0), self.camera.project(b[0], b[1], 0.0)
        if pa is None or pb is None:
            return None
        w, h = self.camera.size
        ends = [(min(max(p[0], 0.0), w - 1.0), min(max(p[1], 0.0), h - 1.0)) for p in (pa, pb)]
        if math.dist(ends[0], ends[1]) < 20:
            return None
        return CountLine(name, round(ends[0][0]), round(ends[0][1]), round(ends[1][0]), round(ends[1][1]))

    def truth(self, lines: list[CountLine], margin: float = 0.25) -> list[Crossing]:
        """The exact crossings, each with its walker's class."""
        tracks: dict[int, list[ev.GtBox]] = {}
        for frame in range(self.frames):
            for k, box, _ in self.true_boxes(frame):
                tracks.setdefault(k, []).append(ev.GtBox(frame, *box))
        riders = {k: boxes for k, boxes in tracks.items() if self.walkers[k].cyclist}
        walkers = {k: boxes for k, boxes in tracks.items() if not self.walkers[k].cyclist}
        crossings = ev.truth_crossings(walkers, lines, margin)
        crossings += [replace(c, object_class="cyclist") for c in ev.truth_crossings(riders, lines, margin)]
        return sorted(crossings, key=lambda c: (c.frame, c.line))

    def shown_crossings(self, lines: list[CountLine], window: int = 10, looks: int = 3) -> tuple[int, int]:
        """(true crossings whose walker a detected box shows, all true crossings): shown means a box overlapping
        the walker's visible box by half (IoU) in at least ``looks`` frames within ``window`` frames of the
        crossing. A crossing nobody's box shows cannot be counted by any tracker."""
        width, height = self.camera.size
        in_view: dict[int, dict[int, tuple[float, float, float, float]]] = {}
        exact: dict[int, list[ev.GtBox]] = {}  # unclipped: the truth's feet may be below the frame
        for frame in range(self.frames):
            for k, (x1, y1, x2, y2), _ in self.true_boxes(frame):
                in_view.setdefault(k, {})[frame] = (max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height))
                exact.setdefault(k, []).append(ev.GtBox(frame, x1, y1, x2, y2))
        detected: dict[int, list[Detection]] = {}  # generated once per frame: crossings' windows overlap
        shown = total = 0
        for k, boxes in in_view.items():
            for crossing in ev.truth_crossings({k: exact[k]}, lines):
                total += 1
                frames = [f for f in range(crossing.frame - window, crossing.frame + window + 1) if f in boxes]
                for f in frames:
                    if f not in detected:
                        detected[f] = self.detections(f)
                hits = sum(any(_iou(boxes[f], (d.x1, d.y1, d.x2, d.y2)) >= 0.5 for d in detected[f]) for f in frames)
                shown += hits >= looks
        return shown, total


@dataclass
class ReplayDetector:
    """A ``Detector`` that returns the boxes ``boxes(frame)`` for the frame it is told (``frame``)."""

    boxes: Callable[[int], list[Detection]]
    frame: int = 0
    name: str = "onnx"
    classifies: bool = True
    noise_allowance: float = OnnxDetector.noise_allowance

    def detect(self, image: object, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        return self.boxes(self.frame)


CAMERAS = {
    "eye-level": Camera(1.6, 4.0, 520.0),
    "first-floor": Camera(4.0, 18.0, 560.0),
    "lamp-post": Camera(6.5, 32.0, 700.0),
    "high": Camera(10.0, 45.0, 900.0),
}


def random_scene(
    camera: Camera, seed: int, seconds: float = 20.0, fps: float = 25.0, density: float = 0.8, cyclists: float = 0.0
) -> GroundScene:
    """People crossing the view in all directions, in groups, turning back, pausing; ``density`` per second.

    ``cyclists``: the share of them riding (3.5-7 m/s, straight through, never pausing). At 0 the scene is
    the same as before cyclists existed (no extra random draws)."""
    rng = random.Random(seed)
    near, far = _ground_depths(camera)
    walkers: list[Walker] = []
    t = -3.0
    while t < seconds:
        t += rng.expovariate(density)
        y0, y1 = rng.uniform(near, far), rng.uniform(near, far)
        span = 0.6 * _half_width(camera, (y0 + y1) / 2)
        if rng.random() < 0.6:  # across the view
            a, b = (-span * 1.6, y0), (span * 1.6, y1)
        else:  # towards or away from the camera
            x0 = rng.uniform(-span, span)
            a, b = (x0, near - 1.0), (x0 + rng.uniform(-1.5, 1.5), far + 2.0)
        if rng.random() < 0.5:
            a, b = b, a
        path = [a, b]
        if rng.random() < 0.15:  # turns back halfway
            mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            path = [a, mid, a]
        speed = rng.uniform(0.9, 1.7)
        pause = (0, rng.uniform(1.0, 3.0)) if rng.random() < 0.1 and len(path) == 2 else None
        stature = rng.uniform(1.55, 1.95)
        riding = cyclists > 0 and rng.random() < cyclists
        if riding:
            path, speed, pause = [a, b], rng.uniform(3.5, 7.0), None
        walkers.append(Walker(path, t, speed, stature, pause, cyclist=riding))
        if rng.random() < 0.3:  # a companion beside them
            off = rng.choice((-0.6, 0.6))
            walkers.append(
                Walker([(x + off, y + 0.2) for x, y in path], t, speed, rng.uniform(1.5, 1.9), pause, cyclist=riding)
            )
    return GroundScene(camera, walkers, fps=fps, frames=round(seconds * fps), seed=seed, false_rate=0.05)


def random_ground_lines(scene: GroundScene, seed: int, n: int) -> list[CountLine]:
    rng = random.Random(seed)
    near, far = _ground_depths(scene.camera)
    lines: list[CountLine] = []
    for _ in range(n * 5):
        if len(lines) >= n:
            break
        cy = rng.uniform(near, far)
        cx = rng.uniform(-0.5, 0.5) * _half_width(scene.camera, cy)
        angle = rng.uniform(0, math.pi)
        half = rng.uniform(1.0, 4.0)
        a = (cx - half * math.cos(angle), cy - half * math.sin(angle))
        b = (cx + half * math.cos(angle), cy + half * math.sin(angle))
        line = scene.ground_line(f"g{seed}-{len(lines)}", a, b)
        if line is not None:
            lines.append(line)
    return lines


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def _ground_depths(camera: Camera) -> tuple[float, float]:
    """Ground distances (metres ahead) from where feet enter the bottom of the frame to a far limit."""
    t = math.radians(camera.pitch)
    below = math.atan((camera.size[1] / 2) / camera.focal)
    near = camera.height / math.tan(t + below) if t + below < math.pi / 2 else 0.5
    return max(near, 1.0), near + 12.0 + 2 * camera.height


def _half_width(camera: Camera, y: float) -> float:
    return (camera.size[0] / 2) * y / camera.focal


def run(
    scene: GroundScene, lines: list[CountLine], settings: PipelineSettings | None = None, phase: int = 0
) -> list[Crossing]:
    """The counting pipeline (tracker and crossing rule as the ``onnx`` detector gets them) over the scene's boxes.

    ``phase``: frames before it are not looked at, so the detector's every-k-th frames are another draw."""
    return replay(scene.detections, scene.frames, scene.camera.size, scene.fps, lines, settings, phase)


def replay(
    boxes: Callable[[int], list[Detection]],
    frames: int,
    size: tuple[int, int],
    fps: float,
    lines: list[CountLine],
    settings: PipelineSettings | None = None,
    phase: int = 0,
) -> list[Crossing]:
    """The counting pipeline over ``boxes(frame)`` for frames 0..``frames``-1 of a blank ``size`` view."""
    detector = ReplayDetector(boxes)
    # Generated people carry no pixels: on the blank frames every box would get the same (black) colour
    # signature, which reads as "everyone dressed alike". The colour cue is measured on video only.
    default = replace(settings_for("onnx"), roi=False, motion_gate=False, appearance=False)
    pipeline = CountingPipeline(lines, detector, fps, settings or default)
    blank = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    events: list[Crossing] = []
    for index in range(frames):
        detector.frame = index
        wanted = index >= phase and pipeline.wants_image(index)
        events += pipeline.process(index, blank if wanted else None)
    return events + pipeline.flush()
