"""A cheap colour signature of a person's upper body, to tell two overlapping people apart.

Boxes alone cannot say which of two people walking past each other is which; the colour of their clothes
can. The signature is a coarse hue-saturation histogram (8 x 4 bins) plus a 4-bin brightness histogram
(black and white coats have no hue) of the inner part of the torso: the box's middle half across, from
below the head to the hips, so that little background and no face is in it.

Privacy by construction: a signature is 36 numbers that cannot be turned back into an image. It is
computed from the frame the detector already has, kept in the tracker's memory only as long as the track
lives, and never logged, stored or sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # the tracker uses ``distance``: no import cycle at run time
    from edge_agent.counting.tracking import Detection

FloatArray = npt.NDArray[np.float64]

HUE_BINS, SAT_BINS, VALUE_BINS = 8, 4, 4
MIN_PIXELS = 24  # a torso smaller than this says nothing about colour


def torso(det: Detection) -> tuple[float, float, float, float]:
    """The part of a box a signature is taken from (x1, y1, x2, y2): middle half across, below the head to
    the hips."""
    bw, bh = det.x2 - det.x1, det.y2 - det.y1
    return det.x1 + 0.25 * bw, det.y1 + 0.18 * bh, det.x2 - 0.25 * bw, det.y1 + 0.5 * bh


def describe(image: npt.NDArray[Any], det: Detection) -> FloatArray | None:
    """The signature of the person in ``det`` (full-frame pixels of ``image``), or None if too small/grey."""
    if image.ndim != 3 or image.shape[2] != 3:
        return None
    h, w = image.shape[:2]
    left, top, right, bottom = torso(det)
    x1, x2 = max(int(left), 0), min(int(right), w)
    y1, y2 = max(int(top), 0), min(int(bottom), h)
    if x2 <= x1 or y2 <= y1 or (x2 - x1) * (y2 - y1) < MIN_PIXELS:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_BGR2HSV)
    hs = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
    v = cv2.calcHist([hsv], [2], None, [VALUE_BINS], [0, 256]).ravel()
    total = float(hs.sum())
    if total <= 0:
        return None
    # Colour and brightness weigh equally.
    return np.concatenate([hs, v]).astype(np.float64) / (2.0 * total)


def with_appearance(image: npt.NDArray[Any], detections: Sequence[Detection]) -> list[Detection]:
    """The detections with their signature added (those that have one already keep it)."""
    return [det if det.appearance is not None else replace(det, appearance=describe(image, det)) for det in detections]


def distance(a: FloatArray, b: FloatArray) -> float:
    """Bhattacharyya distance of two signatures: 0 the same colours, 1 nothing in common (scale-free)."""
    return math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(a * b)))))
