"""Frames in, crossings out: detector (where and when it pays), tracker, crossing rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_agent.counting.appearance import with_appearance
from edge_agent.counting.detectors import Detector, Image
from edge_agent.counting.detectors.motion import BackgroundModel, MotionDetector
from edge_agent.counting.lines import CountLine, CrossingCounter, Direction
from edge_agent.counting.tracking import Detection, Track, Tracker, TrackerSettings

ObjectClass = Literal["pedestrian", "cyclist"]


@dataclass(frozen=True)
class Crossing:
    frame: int
    line: str
    direction: Direction
    object_class: ObjectClass
    track: int = -1  # the tracker's id: lets the privacy layer cap one object's crossings; never published


@dataclass(frozen=True)
class PipelineSettings:
    detect_every: int = 1  # run the detector on every k-th frame; the tracker predicts in between
    margin: float = 0.25  # hysteresis half-width, in box heights
    persist_seconds: float = 0.3  # how long the new side must last (or the point get twice past the band)
    # Detections before a track may count: a third keeps one-off false boxes and short second tracks on one
    # person from counting (chosen on the selection sets with the detector's cadence drawn four ways).
    min_hits: int = 3
    # ... and at least as many as the detector's cadence gives in this time (0: off). With the detector on every
    # 4th frame at 10 frames/s that is ``min_hits`` itself; a 25-30 frames/s camera gives the same cadence 2.5-3
    # times as many looks a second, and a real detector repeats its errors from look to look (a box spanning two
    # people in a group, a far walker seen on and off), so three looks are less evidence there. Counted in
    # looks, not track age: a box that keeps reappearing between people lives long but is rarely matched.
    # A crossing made after ``min_hits`` waits for the rest (someone stepping out of a doorway just before a
    # line); it goes with a track that ends before. Not for a track the detector calls a cyclist: a rider
    # crosses a view in a second or two, and no merged box of a group is called one.
    confirm_seconds: float = 0.0
    side_after: int = 1  # detections of a track before its position counts for the crossing rule
    max_coast_seconds: float = 1.5  # how long a track survives unseen (occlusion)
    cyclist_speed: float = 2.0  # box heights per second above which an unclassified object is a cyclist
    classify_after: int = 6  # observations of an object before its class is decided
    roi: bool = True  # let the detector look only around the lines
    motion_gate: bool = True  # skip the detector when nothing moves and nothing is tracked
    acceleration: float = 1.0  # how fast people change speed, box heights per second squared (filter noise)
    speed_spread: float = 1.0  # how fast a newly seen person may be moving, box heights per second
    cyclist_speed_spread: float = 3.0  # ... a newly seen cyclist (riders the detector calls cyclists)
    near_side: float | None = 0.5  # see CrossingCounter.near_side
    # Close to the camera a step is a good part of a person's height: while a confirmed track is taller than
    # ``close_share`` of the frame (or a cyclist is in view), the detector runs at least ``close_rate`` times
    # a second (every 2nd frame at 10 frames/s instead of every 4th; at 25 frames/s and more the cadence
    # already gives that). 0: off.
    close_rate: float = 5.0
    close_share: float = 0.35
    warmup_seconds: float = 1.0  # tracks born this soon after counting starts were not seen arriving
    high_score: float = 0.4  # detections at least this sure start tracks; weaker ones only continue them
    # Boxes of a model (whole people, steady) or of blobs (merging, splitting, fading): a model's boxes are
    # gated by each track's own uncertainty, a box cut by the frame's edge or by someone in front is
    # completed from the person's height, and the line sees the filter's smoothed feet; blobs jump, so they
    # are gated by distance and the line sees each blob's own feet.
    model_boxes: bool = True
    # Tell overlapping people apart by the colour of their clothes (appearance.py; in memory only). Used
    # with a model's boxes only: a blob's box holds whoever merged into it, and that was never measured.
    appearance: bool = True


class CountingPipeline:
    def __init__(self, lines: Sequence[CountLine], detector: Detector, fps: float, settings: PipelineSettings) -> None:
        if not lines:
            raise ValueError("at least one counting line is needed")
        self.lines = list(lines)
        self.detector = detector
        self.fps = fps if fps > 0 else 10.0
        self.settings = settings
        self.counter = CrossingCounter(
            self.lines,
            margin=settings.margin + detector.noise_allowance,
            persist=round(settings.persist_seconds * self.fps),
            near_side=settings.near_side,
        )
        coast = max(2, round(settings.max_coast_seconds * self.fps))
        # The motion model in box heights per second, turned into frames: the same walker at any frame rate.
        self.tracker = Tracker(
            TrackerSettings(
                min_hits=settings.min_hits,
                max_coast_frames=coast,
                process_noise=settings.acceleration / self.fps**2,
                speed_sd=settings.speed_spread / self.fps,
                cyclist_speed_sd=settings.cyclist_speed_spread / self.fps,
                high_score=settings.high_score,
                mahalanobis=settings.model_boxes,
                hidden_feet=settings.model_boxes,
                frame_edges=settings.model_boxes,
                appearance=settings.appearance and settings.model_boxes,
                spanning_boxes=settings.model_boxes,
            )
        )
        if isinstance(detector, MotionDetector):
            # Its background model remembers in frames; the detector runs on every ``detect_every``-th one.
            detector.pace(self.fps / max(settings.detect_every, 1))
        # The motion detector is its own gate; a model detector gets a cheap background model as gate.
        self._gate = BackgroundModel(work_width=96) if settings.motion_gate and detector.classifies else None
        self._roi: tuple[int, int, int, int] | None = None
        self._frame_size: tuple[int, int] | None = None
        self._last_detect: int | None = None
        self._every = settings.detect_every  # frames between detector runs now (see _next_interval)
        rate = settings.close_rate
        self._close_every = (
            max(1, min(settings.detect_every, int(self.fps / rate))) if rate > 0 else settings.detect_every
        )
        self._first_detect: int | None = None
        self._last_index: int | None = None
        self.detector_runs = 0
        self._pending: list[tuple[Track, int, str, Direction]] = []
        looks_per_second = self.fps / max(settings.detect_every, 1)
        self._count_hits = max(settings.min_hits, math.ceil(settings.confirm_seconds * looks_per_second - 1e-9))
        self._unconfirmed: list[tuple[Track, int, str, Direction]] = []  # crossings waiting for their track

    def _region(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        if self._frame_size != (width, height):
            self._frame_size = (width, height)
            self._roi = None
            if self.settings.roi:
                xs = [v for line in self.lines for v in (line.x1, line.x2)]
                ys = [v for line in self.lines for v in (line.y1, line.y2)]
                # Feet are on the line; the rest of the body is above it: leave room for a tall person.
                pad = 0.15 * height
                x1, x2 = max(0, int(min(xs) - pad)), min(width, int(max(xs) + pad))
                y1, y2 = max(0, int(min(ys) - 2.5 * pad)), min(height, int(max(ys) + pad))
                if x2 > x1 and y2 > y1 and (x2 - x1) * (y2 - y1) < 0.8 * width * height:
                    self._roi = (x1, y1, x2, y2)
        return self._roi

    def wants_image(self, index: int) -> bool:
        """Whether frame ``index`` will be looked at (frames in between need not even be decoded)."""
        return self._last_detect is None or index - self._last_detect >= self._every

    def _next_interval(self, frame_height: int) -> int:
        """Frames to the next detector run: ``detect_every``, shorter while someone close or a cyclist is in
        view (the tracks change only in a detection round, so this is decided once per round, not per frame).

        A cyclist crosses a view in a second or two: at the usual cadence they are seen two or three times,
        too few for a track, so the first box the detector calls a cyclist already asks for the quicker one."""
        if self._close_every < self.settings.detect_every:
            limit = self.settings.close_share * frame_height
            if any(
                t.called_cyclist or (t.hits >= self.settings.min_hits and t.height > limit) for t in self.tracker.tracks
            ):
                return self._close_every
        return self.settings.detect_every

    def process(self, index: int, image: Image | None) -> list[Crossing]:
        """Feed frame ``index`` (frames may be skipped); ``image`` may be None for frames not wanted."""
        # Frames a live source dropped still passed in the world: the tracker predicts over them too.
        steps = 1 if self._last_index is None else min(max(index - self._last_index, 1), 30)
        self._last_index = index
        for _ in range(steps):
            self.tracker.predict()
        if image is None or not self.wants_image(index):
            return []
        self._last_detect = index
        if self._first_detect is None:
            self._first_detect = index
        height, width = image.shape[:2]
        roi = self._region(width, height)
        detections: list[Detection]
        if self._gate is not None and not self.tracker.tracks and not self._moving(image, roi):
            detections = []
        else:
            detections = self.detector.detect(image, roi)
            self.detector_runs += 1
            if self.tracker.settings.appearance and detections:
                # From the frame the detector just looked at; the signatures live and die with the tracks.
                detections = with_appearance(image, detections)
        updated, removed = self.tracker.update(detections, (width, height))
        self._every = self._next_interval(height)
        for track in updated:
            if track.hits < self.settings.side_after:
                continue  # a single detection may be a false one: it must not establish a side
            # A model's boxes are noisy but whole: the filter's feet date a slow crossing (someone walking
            # towards the camera) far better than any one box. A blob's feet jump when blobs merge and
            # split; there the filter would overshoot where people turn, so each blob's own feet are used.
            x, y = track.foot if self.settings.model_boxes else track.measured
            height = track.measured_height  # the band follows this detection's height, not a lagging average
            # Whoever is in view when counting starts was not seen arriving: no side until clearly on one.
            arrived = (
                self._first_detect is not None and index - self._first_detect >= self.fps * self.settings.warmup_seconds
            )
            for line, direction, frame in self.counter.observe(track.id, x, y, height, index, arrived):
                if self._counts(track):
                    self._pending.append((track, frame, line, direction))
                elif track.hits >= self.settings.min_hits:
                    self._unconfirmed.append((track, frame, line, direction))
        if self._unconfirmed:
            self._confirm(removed)
        for track in removed:
            for line, direction, frame in self.counter.forget(track.id):
                if self._counts(track):
                    self._pending.append((track, frame, line, direction))
        return self._release(final=False)

    def _counts(self, track: Track) -> bool:
        """Whether the track has been seen enough to count (see ``PipelineSettings.confirm_seconds``)."""
        return track.hits >= (self.settings.min_hits if track.called_cyclist else self._count_hits)

    def _confirm(self, removed: list[Track]) -> None:
        """Crossings of tracks that now have their looks go on; those of tracks that ended without go."""
        waiting: list[tuple[Track, int, str, Direction]] = []
        for item in self._unconfirmed:
            (self._pending if self._counts(item[0]) else waiting).append(item)
        gone = {id(t) for t in removed}
        self._unconfirmed = [item for item in waiting if id(item[0]) not in gone]

    def flush(self) -> list[Crossing]:
        """Crossings still waiting for their class or for their new side to last (end of a video)."""
        # Tracks still in view were not seen leaving; lost ones were.
        ends = [(t, False) for t in self.tracker.tracks] + [(t, True) for t in self.tracker.lost]
        for track, left in ends:
            for line, direction, frame in self.counter.forget(track.id, left):
                if self._counts(track):
                    self._pending.append((track, frame, line, direction))
        return self._release(final=True)

    def _release(self, final: bool) -> list[Crossing]:
        """Crossings whose object has been seen long enough to tell a cyclist from a pedestrian.

        A track that has just appeared has too few observations for a speed (motion) or a class vote
        (onnx); its crossings wait a few frames, keeping the frame at which they happened.
        """
        if not self._pending:
            return []
        live = {id(t) for t in self.tracker.tracks}
        out: list[Crossing] = []
        waiting = []
        for item in self._pending:
            track, index, line, direction = item
            if final or track.hits >= self.settings.classify_after or id(track) not in live:
                out.append(Crossing(index, line, direction, self._classify(track), track.id))
            else:
                waiting.append(item)
        self._pending = waiting
        return out

    def _moving(self, image: Image, roi: tuple[int, int, int, int] | None) -> bool:
        assert self._gate is not None
        mask = self._gate.foreground(image)
        if roi is not None:
            s = self._gate.scale
            mask = mask[int(roi[1] / s) : int(roi[3] / s) + 1, int(roi[0] / s) : int(roi[2] / s) + 1]
        # A few pixels are sensor noise; a person at the far end of the scene is still dozens.
        return int(np.count_nonzero(mask)) >= max(4, mask.size // 2000)

    def _classify(self, track: Track) -> ObjectClass:
        if self.detector.classifies:
            return "cyclist" if track.called_cyclist else "pedestrian"
        heights_per_second = track.mean_speed() * self.fps / max(track.height, 1.0)
        return "cyclist" if heights_per_second > self.settings.cyclist_speed else "pedestrian"
