"""Detectors turn a frame into boxes of people (and cyclists); all share the small ``Detector`` interface."""

from __future__ import annotations

from typing import Any, Protocol

import numpy.typing as npt

from edge_agent.counting.tracking import Detection

Image = npt.NDArray[Any]
"""A BGR (or grey) frame; typed loosely because cv2's stubs differ between OpenCV 4.x and 5.x."""


class Detector(Protocol):
    name: str
    classifies: bool  # True when the detector tells cyclists from pedestrians itself
    # Extra hysteresis, in box heights, for the detector's own localisation noise: the furthest of several
    # noisy foot positions overshoots the true furthest one, which would count near-misses as crossings.
    noise_allowance: float

    def detect(self, image: Image, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        """Boxes in full-frame pixels; ``roi`` (x1, y1, x2, y2) limits where the detector looks."""
        ...
