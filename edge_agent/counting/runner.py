"""The counter as a service inside the agent: a thread reading a source, feeding crossings to a callback.

Only ``on_crossing(line, direction, object_class, track)`` leaves this module: no frame, position or time of a
crossing. ``track`` is an opaque key of the tracked object (unique within the process) that lets the privacy
layer cap what one object adds to a window; it goes no further. The privacy layer aggregates into windows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from edge_agent.counting.config import CountingConfig
from edge_agent.counting.detectors import Image
from edge_agent.counting.factory import build_pipeline, open_source
from edge_agent.counting.lines import Direction
from edge_agent.counting.pipeline import CountingPipeline, Crossing, ObjectClass
from edge_agent.counting.source_kinds import is_file_source
from edge_agent.counting.sources import CameraState, FrameSource, SourceError, VideoFileSource
from edge_agent.progress import Heartbeat
from hub_protocol.backoff import Backoff

log = logging.getLogger(__name__)

CrossingCallback = Callable[[str, Direction, ObjectClass, Hashable], None]

STALL_FRAMES_S = 3.0
"""A camera reported OK whose newest frame is older than this (or three frame intervals, if longer) is
reported failed: a grab that blocks (RTSP, libcamera) otherwise looks like a healthy camera."""


@dataclass(frozen=True)
class CounterStats:
    camera_state: CameraState
    fps: float  # frames processed per second, recent average
    frames_processed: int
    frames_dropped: int
    seconds_observing: float  # time the camera delivered frames since start


class CounterRunner:
    """Runs the counting pipeline on a thread: ``start()``, ``stop()``, ``stats()``.

    A video file is paced to ``config.fps`` and looped (the demo); a live source paces itself and is
    reopened with backoff by the source when lost. ``source_factory`` lets tests inject a source.
    """

    def __init__(
        self,
        config: CountingConfig,
        on_crossing: CrossingCallback,
        source_factory: Callable[[], FrameSource] | None = None,
    ) -> None:
        self.config = config
        self._on_crossing = on_crossing
        self._source_factory = source_factory or (lambda: open_source(config))
        self._paced = source_factory is None and is_file_source(config.source)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = CameraState.REOPENING
        self._processed = 0
        self._dropped_before = 0  # drops of sources already closed
        self._source: FrameSource | None = None
        self._observing = 0.0
        self._generation = 0
        self._fps = 0.0
        self._last_frame = 0.0
        self._heart = Heartbeat()
        self._stall_s = max(STALL_FRAMES_S, 3.0 / config.fps)
        self._pipeline: CountingPipeline | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("counter already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="counter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def stats(self) -> CounterStats:
        with self._lock:
            source = self._source
            dropped = self._dropped_before + (source.dropped if source is not None else 0)
            state = source.state if source is not None and self._state == CameraState.OK else self._state
            frame_age = time.monotonic() - self._last_frame
            if state == CameraState.OK and frame_age > self._stall_s:
                state = CameraState.FAILED  # open, and silent: frames stopped arriving
            # A rate from frames long gone is no rate: a camera that stopped delivering reports 0.
            fps = self._fps if frame_age < 3.0 else 0.0
            return CounterStats(state, round(fps, 2), self._processed, dropped, round(self._observing, 1))

    def progressing(self, stall_s: float) -> bool:
        """The counter thread went round its loop within ``stall_s`` (a file source's grab runs on it)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._heart.recent(stall_s)

    def camera_progressing(self, stall_s: float) -> bool:
        """A live camera's own thread came back from the driver within ``stall_s`` (True for other sources)."""
        camera_progress = getattr(self._source, "progressing", None)
        return not callable(camera_progress) or bool(camera_progress(stall_s))

    def background(self) -> Image | None:
        """The motion model's learned background (for calibration), if the motion detector runs."""
        pipeline = self._pipeline
        background = getattr(pipeline.detector, "background", None) if pipeline is not None else None
        return background() if callable(background) else None

    def _run(self) -> None:
        backoff = Backoff(0.5, 30.0, jitter=False)
        while not self._stopping.is_set():
            self._heart.beat()
            try:
                source = self._source_factory()
            except (SourceError, OSError, ValueError) as exc:
                log.warning("counting source unavailable: %s", exc)
                self._set_state(CameraState.FAILED if backoff.ceiling() >= 8 else CameraState.REOPENING)
                if self._heart.pause(self._stopping, backoff.next_delay()):
                    break
                continue
            try:
                if self._consume(source) > 0:
                    backoff.reset()
                elif self._heart.pause(self._stopping, backoff.next_delay()):  # a file without frames: do not spin
                    break
            except Exception:
                log.exception("counting stopped on an unexpected error; restarting the source")
                self._set_state(CameraState.REOPENING)
                self._stopping.wait(1.0)
            finally:
                with self._lock:
                    self._dropped_before += source.dropped
                    self._source = None
                source.close()
        self._set_state(CameraState.ABSENT)

    def _consume(self, source: FrameSource) -> int:
        """Count from ``source`` until it ends or the runner stops; returns the frames processed."""
        fps = source.fps or self.config.fps
        pipeline = build_pipeline(self.config, fps if not self._paced else self.config.fps)
        self._generation += 1  # a new pipeline numbers its tracks from 1 again
        self._pipeline = pipeline
        with self._lock:
            self._source = source
            self._state = CameraState.OK
            self._last_frame = time.monotonic()  # the age of frames counts from the opening
        interval = 1.0 / self.config.fps
        last = time.monotonic()
        frames = 0
        checked = False
        while not self._stopping.is_set():
            frame = source.read()
            now = time.monotonic()
            self._heart.beat()
            if frame is None:
                if isinstance(source, VideoFileSource):
                    break  # end of the file: reopen it (the demo loops a video)
                self._stopping.wait(0.05)
                last = now
                continue
            frames += 1
            image = frame.image if pipeline.wants_image(frame.index) else None
            self._deliver(pipeline.process(frame.index, image))
            if not checked and source.frame_size is not None:
                checked = True  # once per opening: a file or stream's size is known only now
                for warning in self.config.lines_outside(source.frame_size, "the source delivers; it counts wrong"):
                    log.warning("%s", warning)
            elapsed = now - last
            last = now
            with self._lock:
                self._last_frame = now
                self._processed += 1
                if source.state == CameraState.OK and elapsed < 5.0:
                    self._observing += elapsed
                if elapsed > 0:
                    self._fps = 1.0 / elapsed if self._fps == 0 else 0.9 * self._fps + 0.1 / elapsed
            if self._paced:
                self._stopping.wait(max(0.0, interval - (time.monotonic() - now)))
        self._deliver(pipeline.flush())  # crossings still waiting for their class are real crossings too
        return frames

    def _deliver(self, crossings: list[Crossing]) -> None:
        for crossing in crossings:
            try:
                track = (self._generation, crossing.track)
                self._on_crossing(crossing.line, crossing.direction, crossing.object_class, track)
            except Exception:
                log.exception("crossing callback failed")

    def _set_state(self, state: CameraState) -> None:
        with self._lock:
            self._state = state
