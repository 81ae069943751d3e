"""Motion detector: background subtraction on a small copy of the frame, then blob analysis.

Needs no model file and costs about a millisecond per frame, so it is the low-power default. It also keeps
the learned background, which calibration shows instead of a live frame (people fade out of it).
"""

from __future__ import annotations

import bisect
from collections import deque
from itertools import combinations

import cv2
import numpy as np

from edge_agent.counting.detectors import Image
from edge_agent.counting.tracking import Detection

COLOUR_SHADOW = 0.5
"""MOG2's own shadow threshold: in colour, a pixel darkened to half of the background with its colour kept is
a shadow."""


# How long the motion detector's background model remembers, whatever the frame rate (see ``BackgroundModel.pace``).
MEMORY_SECONDS = 50.0
MIN_HISTORY = 20  # frames: below this MOG2 learns every passer-by into the background


class BackgroundModel:
    """A Gaussian-mixture background on a downscaled colour image; ``foreground`` gives the moving pixels.

    Colour, not grey: in grey every darker pixel looks like a shadow, and without shadow detection the
    shadows glue neighbours into one blob. With colour MOG2 marks shadows (127) and they are dropped.
    """

    def __init__(
        self,
        work_width: int = 192,
        history: int = 500,
        var_threshold: float = 16.0,
        global_change: float = 0.5,
        grey_shadow: float = 0.8,
    ) -> None:
        self.work_width = work_width
        self.history = history
        self.var_threshold = var_threshold
        # More of the view than this changing at once is the light, not people (see ``foreground``).
        self.global_change = global_change
        # The shadow test of a grey view (a camera at night, on infrared, or a monochrome one): see ``_follow_grey``.
        self.grey_shadow = grey_shadow
        self._grey = False
        self._subtractor = self._subtractor_for_new_scene()
        self.scale = 1.0  # full-frame pixels per work pixel
        self.frame_size: tuple[int, int] | None = None

    def pace(self, looks_per_second: float) -> None:
        """Remember ``MEMORY_SECONDS`` of the scene at this many frames a second. MOG2 counts its history in
        frames: 500 were chosen on a clip looked at 10 times a second, and looked at 30 times the same model
        forgets three times as fast. Someone who stood for 20 s just past a line, absorbed into the
        background, then left a ghost that was counted a second time; at every rate a wait of the same length
        now does the same."""
        history = max(MIN_HISTORY, round(MEMORY_SECONDS * looks_per_second))
        if history != self.history:
            self.history = history
            self._subtractor.setHistory(history)

    def _subtractor_for_new_scene(self) -> cv2.BackgroundSubtractorMOG2:
        subtractor = cv2.createBackgroundSubtractorMOG2(
            history=self.history, varThreshold=self.var_threshold, detectShadows=True
        )
        # Someone standing still fades into the background once their mixture component outweighs
        # 1 - ratio; 0.7 keeps them for about a third of the history instead of a tenth.
        subtractor.setBackgroundRatio(0.7)
        subtractor.setShadowThreshold(self._shadow_threshold)
        return subtractor

    @property
    def _shadow_threshold(self) -> float:
        return self.grey_shadow if self._grey else COLOUR_SHADOW

    def _follow_grey(self, small: Image) -> None:
        """Follow the camera between colour and grey (night, infrared). MOG2 takes a pixel for shadow when
        it is darker than the background (down to the shadow threshold of it) with the same colour; in grey
        every darker pixel has the same colour, so a person in dark clothes would pass as their own shadow.
        There only a faint darkening (to ``grey_shadow`` of the background) is a shadow."""
        if small.ndim != 3:
            return
        b, g, r = cv2.split(small)
        size = b.size
        grey = cv2.norm(b, g, cv2.NORM_L1) < 2 * size and cv2.norm(g, r, cv2.NORM_L1) < 2 * size
        if grey != self._grey:
            self._grey = grey
            self._subtractor.setShadowThreshold(self._shadow_threshold)

    def small(self, image: Image) -> Image:
        h, w = image.shape[:2]
        if self.frame_size != (w, h):
            self.frame_size = (w, h)
            self.scale = max(1.0, w / self.work_width)
        size = (max(1, round(w / self.scale)), max(1, round(h / self.scale)))
        small: Image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return small

    def foreground(self, image: Image) -> Image:
        """Binary mask (255 = moving) at work size; shadows, which MOG2 marks 127, count as background."""
        small = self.small(image)
        self._follow_grey(small)
        mask = self._subtractor.apply(small)
        _, binary = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)
        if cv2.countNonZero(binary) > self.global_change * binary.size:
            # The sun came out, a street light or the camera's exposure switched: the whole view is new at
            # once (a darker one passes as shadow). At its normal rate the model would take minutes to learn
            # it and see nothing but one frame-sized blob meanwhile; it starts again from this frame, as a
            # camera switched on now would (its first frames learn fast).
            self._subtractor = self._subtractor_for_new_scene()
            self._subtractor.apply(small)
            binary = np.zeros_like(binary)
        result: Image = binary
        return result

    def background(self) -> Image | None:
        """The learned background, upscaled to the frame size (for calibration; never a live frame)."""
        if self.frame_size is None:
            return None
        bg = self._subtractor.getBackgroundImage()
        if bg is None:
            return None
        result: Image = cv2.resize(bg, self.frame_size, interpolation=cv2.INTER_LINEAR)
        return result


class RecentMedian:
    """The median of the last ``keep`` values, kept sorted as they come and go: read for every blob, it would
    otherwise be a sort of up to ``keep`` values each time (the largest cost of a blob's analysis)."""

    def __init__(self, keep: int) -> None:
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self.keep = keep

    def __len__(self) -> int:
        return len(self._recent)

    def append(self, value: float) -> None:
        if len(self._recent) == self.keep:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent.popleft())]
        self._recent.append(value)
        bisect.insort(self._sorted, value)

    def median(self) -> float:
        n = len(self._sorted)
        if n % 2:
            return self._sorted[n // 2]
        return (self._sorted[n // 2 - 1] + self._sorted[n // 2]) / 2


class PersonShape:
    """How tall a person is, by the image row of their feet (perspective), and how wide for their height.

    Learned online from blobs shaped like one person, so it carries over to any camera height and lens
    without a setting. The median per band of rows is robust to the minority of blobs that are two people
    or half a person; a straight line through the band medians gives the height at any row.
    """

    def __init__(self, rows: int, bands: int = 8, keep: int = 40, min_samples: int = 30) -> None:
        self.rows = rows
        self._bands: list[deque[float]] = [deque(maxlen=keep) for _ in range(bands)]
        self._aspects = RecentMedian(4 * keep)
        self._shoulders = RecentMedian(4 * keep)
        self.min_samples = min_samples
        self._fit: tuple[float, float] | None = None
        self._since_fit = 0

    def learn(self, foot_y: float, height: float, width: float, shoulders: float | None = None) -> None:
        """A blob that may be one person; ``shoulders`` is the width of its upper part (head and torso)."""
        aspect = width / height
        if not 0.2 <= aspect <= 0.6:  # clearly not one upright person
            return
        band = min(max(int(foot_y * len(self._bands) / self.rows), 0), len(self._bands) - 1)
        self._bands[band].append(height)
        self._aspects.append(aspect)
        if shoulders is not None:
            self._shoulders.append(shoulders / height)
        self._since_fit += 1

    def _refit(self) -> None:
        points = [
            ((k + 0.5) * self.rows / len(self._bands), float(np.median(b)), len(b))
            for k, b in enumerate(self._bands)
            if len(b) >= 3
        ]
        if not points or sum(n for *_, n in points) < self.min_samples:
            self._fit = None
            return
        ys = np.array([p[0] for p in points])
        hs = np.array([p[1] for p in points])
        ws = np.array([p[2] for p in points], dtype=np.float64)
        if len(points) == 1:
            self._fit = (float(hs[0]), 0.0)
            return
        slope, intercept = np.polyfit(ys, hs, 1, w=np.sqrt(ws))
        if slope < 0:
            # People further away (higher in the image) are never taller: a rising line is noise, and the
            # best flat line is the weighted mean (not the rising line's intercept, which overshoots so far
            # that no one person's blob would ever be learnt from again).
            slope, intercept = 0.0, float(np.average(hs, weights=np.sqrt(ws)))
        self._fit = (float(intercept), float(slope))

    def height_at(self, foot_y: float) -> float | None:
        """Expected height of one person whose feet are on row ``foot_y``; None while still learning."""
        if self._since_fit >= 10 or (self._fit is None and self._since_fit):
            self._since_fit = 0
            self._refit()
        if self._fit is None:
            return None
        a, b = self._fit
        return a + b * foot_y

    def top_to_foot(self, top: float) -> float | None:
        """Row of the feet of a person whose head is on row ``top``: y - (a + b*y) = top."""
        if self._fit is None or self._fit[1] >= 0.9:
            return None
        a, b = self._fit
        return (top + a) / (1.0 - b)

    @property
    def aspect(self) -> float:
        return self._aspects.median() if self._aspects else 0.4

    @property
    def shoulders(self) -> float:
        """Width of one person's upper part for their height."""
        return self._shoulders.median() if self._shoulders else self.aspect


class MotionDetector:
    """Blobs of moving pixels as person boxes.

    Size limits are fractions of the frame height, not pixels, so they carry over between cameras. People
    walking side by side or one behind the other merge into one blob; once the detector has learned how
    tall and wide one person is at each row (``PersonShape``), a blob much wider than one person there is
    split side by side, and one much taller is split into the person in front (feet at the bottom) and the
    one behind (head at the top).
    """

    name = "motion"
    classifies = False
    # Half the foot-position noise measured against annotated boxes (sd 0.07 box heights on PETS 2009).
    noise_allowance = 0.035

    def __init__(
        self,
        work_width: int = 256,
        min_height: float = 0.04,
        # Only a change over (nearly) the whole frame height is not people: close to the camera one person
        # is half the frame, and one walking in front of another makes a blob taller than that, which is split.
        max_height: float = 0.95,
        person_aspect: float = 0.45,
        learn_shape: bool = True,
        # Pieces of one person are joined up to the tallest blob still learnt as one person (1.3 people).
        join: float = 1.3,
    ) -> None:
        self.model = BackgroundModel(work_width=work_width)
        self.min_height = min_height
        self.max_height = max_height
        self.person_aspect = person_aspect
        self.learn_shape = learn_shape
        self.join = join
        self.shape: PersonShape | None = None
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 7))

    def pace(self, looks_per_second: float) -> None:
        """How many frames a second it will be shown (the pipeline knows): see ``BackgroundModel.pace``."""
        self.model.pace(looks_per_second)

    def detect(self, image: Image, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        mask = self.model.foreground(image)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        frame_h, frame_w = mask.shape[:2]
        if self.learn_shape and (self.shape is None or self.shape.rows != frame_h):
            self.shape = PersonShape(frame_h)
        scale = self.model.scale
        blobs: list[_Blob] = []
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if h < self.min_height * frame_h or h > self.max_height * frame_h or area < 0.3 * w * h * 0.5:
                continue
            if roi is not None and not _overlaps((x * scale, y * scale, (x + w) * scale, (y + h) * scale), roi):
                continue
            blobs.append(_Blob(labels, (label,), x, y, w, h, area))
        detections: list[Detection] = []
        for blob in self._join(blobs):
            score = min(1.0, blob.area / (blob.w * blob.h))
            for bx1, by1, bx2, by2 in self._people(blob, frame_w, frame_h):
                detections.append(Detection(bx1 * scale, by1 * scale, bx2 * scale, by2 * scale, score=score))
        return detections

    def _join(self, blobs: list[_Blob]) -> list[_Blob]:
        """Pieces of one person as one blob: where clothes match the street behind them (common at close range,
        where a body covers much of the view), the background model sees a head and torso and, apart, legs.

        Each piece on its own would be a person of its own size, and a track on the upper piece crosses a line
        at its own time (a double count). Two blobs are joined when their columns overlap by half the narrower
        one, the smaller is shorter than 0.6 of a person there, and together they are no taller than ``join``
        people standing where the lower one stands (the learnt shape): two whole people one behind the other
        are taller, and are split later. Nothing is joined before a person's shape is learnt."""
        shape = self.shape
        if shape is None or self.join <= 0 or len(blobs) < 2:
            return blobs
        out = sorted(blobs, key=lambda b: -b.h)
        joined = True
        while joined:
            joined = False
            for i, j in combinations(range(len(out)), 2):
                a, b = out[i], out[j]  # taller first: b is the piece, a what it may belong to
                if min(a.x + a.w, b.x + b.w) - max(a.x, b.x) < 0.5 * min(a.w, b.w):
                    continue
                top, foot = min(a.y, b.y), max(a.y + a.h, b.y + b.h)
                expected = shape.height_at(float(foot))
                if expected is None or b.h >= 0.6 * expected or foot - top > self.join * expected:
                    continue
                out[i] = a.union(b)
                del out[j]
                joined = True
                break
        return out

    def _people(self, blob: _Blob, frame_w: int, frame_h: int) -> list[Box]:
        """One blob as one or more person boxes (work pixels)."""
        x, y, w, h = blob.x, blob.y, blob.w, blob.h
        foot = float(y + h)
        shape = self.shape
        # Blobs cut by the frame border say nothing about a person's size: neither learnt from nor split.
        inside = x > 0 and y > 0 and x + w < frame_w and foot < frame_h
        expected = shape.height_at(foot) if shape is not None and inside else None
        if y == 0 and foot < frame_h:
            # Cut by the top of the frame: only the legs of someone walking in at the top edge are in view.
            # The box keeps their feet but gets a whole person's height (the crossing rule's band scales
            # with it; a leg-sized band lets every stride count as a crossing). Before the shape is learnt
            # nothing better is known (a guess from the width is worse than none: strides and pairs).
            whole = shape.height_at(foot) if shape is not None else None
            height = max(float(h), whole if whole is not None else h)
            return [(float(x), foot - height, float(x + w), foot)]
        if shape is None or expected is None or expected < 2:
            if shape is not None and inside:
                shape.learn(foot, h, w, blob.shoulders())
            # Without a learnt shape: split only blobs that are far wider than a standing person.
            return _side_by_side(x, y, w, h, round(w / (self.person_aspect * h * 1.5)))
        if 0.7 * expected <= h <= 1.3 * expected:
            shape.learn(foot, h, w, blob.shoulders())
        if w >= 2 * shape.aspect * expected:
            # As wide as two people: two side by side have two heads and torsos, while a cyclist is wide
            # only at the bicycle (a person with a bag or a swinging arm is not that wide at all).
            parts = int(blob.shoulders() / (shape.shoulders * expected))
            if parts > 1:
                return _side_by_side(x, y, w, h, parts)
        if h > 1.4 * expected:
            # Taller than one person at this row: the one in front stands on the bottom, the one behind
            # has their head at the top.
            back = shape.top_to_foot(float(y))
            if back is not None and y < back < foot - 0.3 * expected:
                return [(float(x), foot - expected, float(x + w), foot), (float(x), float(y), float(x + w), back)]
        return [(float(x), float(y), float(x + w), foot)]

    def background(self) -> Image | None:
        return self.model.background()


Box = tuple[float, float, float, float]


class _Blob:
    """One or more connected components taken as one: their labels, bounding box and area in the label image."""

    def __init__(self, labels: Image, label: tuple[int, ...], x: int, y: int, w: int, h: int, area: int) -> None:
        self.labels, self.label, self.x, self.y, self.w, self.h, self.area = labels, label, x, y, w, h, area

    def union(self, other: _Blob) -> _Blob:
        x, y = min(self.x, other.x), min(self.y, other.y)
        x2, y2 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return _Blob(self.labels, self.label + other.label, x, y, x2 - x, y2 - y, self.area + other.area)

    def shoulders(self) -> float:
        """Columns occupied by the upper 40% of the blob (heads and torsos)."""
        top = self.labels[self.y : self.y + max(1, int(0.4 * self.h)), self.x : self.x + self.w]
        mine = top == self.label[0] if len(self.label) == 1 else np.isin(top, self.label)
        return float(np.count_nonzero(mine.any(axis=0)))


def _side_by_side(x: int, y: int, w: int, h: int, parts: int) -> list[Box]:
    parts = max(1, parts)
    step = w / parts
    return [(x + k * step, float(y), x + (k + 1) * step, float(y + h)) for k in range(parts)]


def _overlaps(box: tuple[float, float, float, float], roi: tuple[int, int, int, int]) -> bool:
    return box[0] < roi[2] and box[2] > roi[0] and box[1] < roi[3] and box[3] > roi[1]
