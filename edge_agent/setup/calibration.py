"""The calibration view of the setup page: the learned, verified background, never a live frame.

``BackgroundSource`` is the small interface the page needs. ``CalibrationBackground`` implements it with
the calibration command's learning (``edge_agent.commands.calibrate.learn_background``, over
``edge_agent.counting.background``): a median of frames spread over the time watched, with moving things
masked out, answered only once the older and newer halves of that time agree, and refused if the ``onnx``
detector sees a person in it. Until then the page has no picture at all: while someone lingers it says that
the scene has not settled, and learning starts again until it does or the page closes. Nothing here writes
the picture to disk or sends it anywhere: ``png_of`` encodes it in memory for the local browser only (with
the calibration command, the only place that encodes an image).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge_agent.counting.config import CountingConfig

if TYPE_CHECKING:
    from edge_agent.counting.background import LearnedBackground

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0
"""Pause before learning again after the scene did not settle (a video file that never settles would spin)."""

Learn = Callable[[CountingConfig, int, float], "LearnedBackground"]
"""Learns a verified picture from at least ``frames`` frames within ``timeout`` seconds; raises
``SceneNotSettled`` when there is none (someone lingering), any other exception when the camera fails."""


def _calibration_learn() -> Learn:
    from edge_agent.commands.calibrate import learn_background  # OpenCV only when a picture is wanted

    return learn_background


class BackgroundSource(Protocol):
    def picture(self) -> np.ndarray | None:
        """The verified background image (BGR or grey), or None while there is none."""
        ...

    def state(self) -> str:
        """``learning``, ``unsettled`` (still learning: the scene did not settle yet), ``ready`` or ``failed``."""
        ...

    def close(self) -> None:
        """Stop learning and forget the picture (the page closed)."""
        ...


class CalibrationBackground:
    """Learns the background on a thread of its own, when first asked, until it is verified clean."""

    def __init__(self, config: CountingConfig, frames: int, timeout: float = 120.0, learn: Learn | None = None) -> None:
        self.config = config
        self.frames = frames
        self.timeout = timeout
        self._learn = learn
        self._image: np.ndarray | None = None
        self._state = "idle"
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def _run(self) -> None:
        try:
            from edge_agent.commands.calibrate import SceneNotSettled

            learn = self._learn or _calibration_learn()
            while not self._closed.is_set():
                try:
                    learned = learn(self.config, self.frames, self.timeout)
                except SceneNotSettled as exc:
                    log.info("setup: no picture yet, learning on: %s", exc)
                    with self._lock:
                        self._state = "unsettled"  # the page says so; nothing unverified is ever shown
                    self._closed.wait(RETRY_PAUSE_S)
                    continue
                log.info("setup: background learned from %d frames", learned.frames)
                with self._lock:
                    if not self._closed.is_set():
                        self._image, self._state = learned.image, "ready"
                return
        except Exception as exc:  # reported on the page; the agent goes on counting
            log.warning("setup: background could not be learned: %s", exc)
            with self._lock:
                self._state = "failed"

    def _ensure_started(self) -> None:
        with self._lock:
            if self._state != "idle" or self._closed.is_set():
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

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._image = None


def png_of(image: np.ndarray) -> bytes | None:
    """The picture as PNG bytes, in memory, for the setup page's response."""
    import cv2

    ok, data = cv2.imencode(".png", image)
    return bytes(data) if ok else None
