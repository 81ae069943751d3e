"""A picture of the scene with nobody in it, for calibration and the technician's setup view.

Learned, never snapshotted: the learner keeps a small, bounded set of frames spread evenly over the time it
has watched, masks out of each what a motion model sees moving, and takes the per-pixel median of what is
left. Someone walking by is in a minority of the samples at any pixel and disappears.

Someone who lingers does not, so the learner answers only once the picture is **stable**: the median of all
samples must not differ by an object-sized blob from the median of the older half, nor from that of the
newer half, and this must hold at two checks in a row, half a span apart (the samples slide on by half). A
person who stood somewhere for part of the time is in one half and not the other, so learning goes on until
they have left; when a check fails twice, every other sample is dropped and the spacing doubles, so the
samples cover twice the time in the same memory. What it cannot see is someone who stood still in one place
for the whole time learned; the calibration command says so.

Pure image code: frames in, one picture out. It keeps at most ``samples`` frames in memory (at most
``max_width`` pixels wide) and writes nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.counting.detectors import Image
from edge_agent.counting.detectors.motion import BackgroundModel
from edge_agent.counting.sources import CameraState, FrameSource

CONFIRMATIONS = 2
"""Checks in a row that must find the picture stable, each half a span after the previous one."""


@dataclass(frozen=True)
class BackgroundSettings:
    min_frames: int = 300  # never answer from fewer frames than this
    max_frames: int = 20_000  # give up after this many (a street that never settles)
    samples: int = 24  # frames kept in memory at once; even, so that it splits into two halves
    difference: int = 30  # grey levels, in any colour channel, that make a pixel "changed"
    min_blob: float = 0.0005  # smallest changed area taken for an object, as a share of the frame
    max_width: int = 800  # samples are kept at most this wide (memory on a Pi); the picture is scaled back

    def __post_init__(self) -> None:
        if self.samples < 8 or self.samples % 4:
            raise ValueError("samples must be a multiple of 4, at least 8")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError("min_frames must be between 1 and max_frames")


class BackgroundNotClean(RuntimeError):
    """No stable, person-free picture could be learned from the frames given (nothing should be written)."""


def difference_blobs(a: Image, b: Image, difference: int, min_area: float) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of connected regions where ``a`` and ``b`` differ strongly, of at least ``min_area``."""
    changed = cv2.absdiff(a, b)
    if changed.ndim == 3:
        changed = changed.max(axis=2)
    mask: Image = (changed > difference).astype(np.uint8)
    # Opening removes single-pixel noise and compression speckle; closing joins the parts of one body.
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [
        (int(stats[i, 0]), int(stats[i, 1]), int(stats[i, 2]), int(stats[i, 3]))
        for i in range(1, count)
        if stats[i, cv2.CC_STAT_AREA] >= min_area
    ]


def masked_median(samples: np.ndarray, moving: np.ndarray) -> Image:
    """Per pixel and channel, the median of the samples where that pixel was not moving.

    Where too few samples were still (under a quarter), the plain median of all of them is used.
    """
    n = samples.shape[0]
    values = samples.astype(np.int16)
    values[moving] = 512  # sorts after every real value
    values.sort(axis=0)
    still = n - moving.sum(axis=0)
    index = np.maximum(still - 1, 0) // 2
    picked = np.take_along_axis(values, index[None], axis=0)[0]
    plain = np.median(samples, axis=0)
    out = np.where(still >= max(3, n // 4), picked, plain)
    result: Image = np.clip(out, 0, 255).astype(np.uint8)
    return result


class BackgroundLearner:
    """Feed it every frame with ``add``; ``picture()`` is the clean background once it is stable, else None."""

    def __init__(self, settings: BackgroundSettings | None = None) -> None:
        self.settings = settings or BackgroundSettings()
        self._motion = BackgroundModel(work_width=192, history=200)
        self._step = max(1, math.ceil(self.settings.min_frames / self.settings.samples))
        self._samples: list[Image] = []
        self._moving: list[np.ndarray] = []
        self._frame_size: tuple[int, int] | None = None
        self._picture: Image | None = None
        self._candidate: Image | None = None
        self.frames = 0
        self._span = 0
        self._passes = 0
        self._slid = False
        self.unstable_regions: list[tuple[int, int, int, int]] = []  # from the last check, in sample pixels

    @property
    def span_frames(self) -> int:
        """How many frames the samples are spread over (those of the picture, once there is one)."""
        return self._span if self._picture is not None else len(self._samples) * self._step

    def add(self, image: Image) -> bool:
        """One frame (BGR); returns True once the picture is stable (later frames are then ignored)."""
        if self._picture is not None:
            return True
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        h, w = image.shape[:2]
        if self._frame_size not in (None, (w, h)):
            raise ValueError("the frame size changed while learning the background")
        self._frame_size = (w, h)
        moving = self._motion.foreground(image)
        if self.frames % self._step == 0:
            self._keep(image, moving)
        self.frames += 1
        if len(self._samples) == self.settings.samples:
            stable = self.frames >= self.settings.min_frames and self._check()
            self._passes = self._passes + 1 if stable else 0
            if self._passes >= CONFIRMATIONS:
                self._finish()
                return True
            half = len(self._samples) // 2
            if stable or not self._slid:
                # Slide by half a span: a stay that covered the middle of this span covers the edge of the
                # next one, where the halves disagree. Two checks in a row must pass.
                self._samples, self._moving = self._samples[half:], self._moving[half:]
                self._slid = True
            else:
                # Failed twice at this spacing: keep every other sample and space new ones twice as far, so
                # the samples cover twice the time in the same memory (someone lingering must leave within it).
                self._samples, self._moving = self._samples[1::2], self._moving[1::2]
                self._step *= 2
                self._slid = False
        return False

    def _keep(self, image: Image, moving: Image) -> None:
        h, w = image.shape[:2]
        scale = min(1.0, self.settings.max_width / w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small: Image = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image.copy()
        # A margin around what moves: the motion model works on a small copy and misses the edges of bodies.
        grown = cv2.dilate((moving > 0).astype(np.uint8), np.ones((5, 5), np.uint8))
        mask = cv2.resize(grown, size, interpolation=cv2.INTER_NEAREST) > 0
        self._samples.append(small)
        self._moving.append(np.repeat(mask[:, :, None], 3, axis=2))

    def _check(self) -> bool:
        """The median of all samples must agree with the median of the older and of the newer half."""
        samples, moving = np.stack(self._samples), np.stack(self._moving)
        picture = masked_median(samples, moving)
        h, w = picture.shape[:2]
        half = len(self._samples) // 2
        self.unstable_regions = []
        for part in (slice(0, half), slice(half, None)):
            piece = masked_median(samples[part], moving[part])
            self.unstable_regions += difference_blobs(
                picture, piece, self.settings.difference, self.settings.min_blob * h * w
            )
        if self.unstable_regions:
            return False
        self._candidate = picture
        return True

    def _finish(self) -> None:
        picture = self._candidate
        assert picture is not None
        h, w = picture.shape[:2]
        if self._frame_size is not None and (w, h) != self._frame_size:
            picture = cv2.resize(picture, self._frame_size, interpolation=cv2.INTER_LINEAR)
        self._picture = picture
        self._span = len(self._samples) * self._step
        self._samples, self._moving = [], []  # the frames are not needed any more

    def picture(self) -> Image | None:
        """The stable background at the frames' size, or None while it is not (yet) stable."""
        return self._picture

    def why_not(self) -> str:
        """Why there is no picture yet, in words for the technician."""
        if self.frames < self.settings.min_frames:
            return f"only {self.frames} frames could be read; at least {self.settings.min_frames} are needed"
        if self.unstable_regions:
            return (
                f"the background did not settle in {self.frames} frames: {len(self.unstable_regions)} object-sized "
                "area(s) changed between the older and the newer half of what was learned (someone lingering, "
                "or a parked vehicle that moved)"
            )
        return (
            f"the background did not settle in {self.frames} frames (the source ended or time ran out before it "
            "was confirmed stable)"
        )


@dataclass(frozen=True)
class LearnedBackground:
    image: Image
    frames: int  # frames read and learned from
    span_frames: int  # frames that the samples of the final picture were spread over


def learn_background(
    source: FrameSource,
    settings: BackgroundSettings | None = None,
    timeout: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> LearnedBackground:
    """Read ``source`` until the background is stable; raises ``BackgroundNotClean`` if it does not get there
    before the source ends, ``settings.max_frames`` or ``timeout`` seconds. The caller closes the source."""
    learner = BackgroundLearner(settings)
    deadline = clock() + timeout
    while learner.frames < learner.settings.max_frames and clock() < deadline:
        frame = source.read()
        if frame is None:
            if source.state is CameraState.ABSENT:
                break  # end of a video file (live sources reopen instead)
            continue
        image = frame.image
        if image is None:
            continue
        try:
            stable = learner.add(image)
        except ValueError as exc:  # a camera reopened at another size
            raise BackgroundNotClean(str(exc)) from None
        picture = learner.picture()
        if stable and picture is not None:
            return LearnedBackground(picture, learner.frames, learner.span_frames)
    raise BackgroundNotClean(learner.why_not())
