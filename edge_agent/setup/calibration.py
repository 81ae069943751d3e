"""The calibration view of the setup page: the learned background, never a live frame.

``BackgroundSource`` is the small interface the page needs. ``CalibrationBackground`` implements it with
the calibration command's background learning (``edge_agent.commands.calibrate.learn_background``): many
frames go into a background model, passers-by fade out, and only the model's picture is kept, in memory.
Nothing here writes the picture to disk or sends it anywhere: ``png_of`` encodes it in memory for the local
browser only (with the calibration command, the only place that encodes an image).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np

from edge_agent.counting.config import CountingConfig

log = logging.getLogger(__name__)

Learn = Callable[[CountingConfig, int, float], tuple[np.ndarray, int]]


def _calibration_learn() -> Learn:
    from edge_agent.commands.calibrate import learn_background  # OpenCV only when a picture is wanted

    return learn_background


class BackgroundSource(Protocol):
    def picture(self) -> np.ndarray | None:
        """The background image (BGR or grey), or None while it is being learned or when learning failed."""
        ...

    def state(self) -> str:
        """``learning``, ``ready`` or ``failed``."""
        ...


class CalibrationBackground:
    """Learns the background once, on a thread of its own, when first asked."""

    def __init__(self, config: CountingConfig, frames: int, timeout: float = 120.0, learn: Learn | None = None) -> None:
        self.config = config
        self.frames = frames
        self.timeout = timeout
        self._learn = learn
        self._image: np.ndarray | None = None
        self._state = "idle"
        self._lock = threading.Lock()

    def _run(self) -> None:
        try:
            learn = self._learn or _calibration_learn()
            image, used = learn(self.config, self.frames, self.timeout)
            log.info("setup: background learned from %d frames", used)
            with self._lock:
                self._image, self._state = image, "ready"
        except Exception as exc:  # reported on the page; the agent goes on counting
            log.warning("setup: background could not be learned: %s", exc)
            with self._lock:
                self._state = "failed"

    def _ensure_started(self) -> None:
        with self._lock:
            if self._state != "idle":
                return
            self._state = "learning"
        threading.Thread(target=self._run, name="setup-background", daemon=True).start()

    def picture(self) -> np.ndarray | None:
        self._ensure_started()
        with self._lock:
            return self._image

    def state(self) -> str:
        self._ensure_started()
        with self._lock:
            return self._state


def png_of(image: np.ndarray) -> bytes | None:
    """The picture as PNG bytes, in memory, for the setup page's response."""
    import cv2

    ok, data = cv2.imencode(".png", image)
    return bytes(data) if ok else None
