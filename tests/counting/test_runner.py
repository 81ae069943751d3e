"""Frame sources (reopen with backoff, drop rather than queue) and the counter running as a thread."""

from __future__ import annotations

import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.counting.config import CountingConfig
from edge_agent.counting.runner import CounterRunner
from edge_agent.counting.sources import CameraState, LiveSource, SyntheticSource, Walker
from hub_protocol.backoff import Backoff
from hub_protocol.envelope import CameraState as ContractCameraState
from tests.conftest import wait_until
from tests.counting.scenes import scene, write_video

wait_for = partial(wait_until, timeout=10.0, interval=0.02)


def test_camera_states_match_the_health_contract() -> None:
    assert {s.value for s in CameraState} == {s.value for s in ContractCameraState}


class FlakyCamera:
    """Fails to open twice, delivers 20 frames, vanishes, then comes back."""

    def __init__(self) -> None:
        self.opens = 0
        self.frames = 0

    def open(self) -> Any:
        self.opens += 1
        return None if self.opens <= 2 else object()

    def grab(self, _handle: Any) -> np.ndarray | None:
        self.frames += 1
        if self.frames == 20:
            return None  # cable pulled
        time.sleep(0.002)
        return np.zeros((24, 32, 3), np.uint8)


def test_live_source_reopens_with_backoff_and_reports_its_state() -> None:
    camera = FlakyCamera()
    source = LiveSource(camera.open, camera.grab, lambda _h: None, backoff=Backoff(0.01, 0.05, jitter=False))
    try:
        assert wait_for(lambda: camera.opens >= 4)  # two failures, the first session, the reopen
        assert wait_for(lambda: source.state == CameraState.OK)
        frame = source.read(timeout=2)
        assert frame is not None and frame.image is not None and frame.image.shape == (24, 32, 3)
    finally:
        source.close()


def test_live_source_goes_failed_after_repeated_failures() -> None:
    source = LiveSource(
        lambda: None, lambda _h: None, lambda _h: None, backoff=Backoff(0.001, 0.001, jitter=False), fail_after=3
    )
    try:
        assert wait_for(lambda: source.state == CameraState.FAILED)
        assert source.read(timeout=0.05) is None
    finally:
        source.close()


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted() -> None:
    counter = {"n": 0}

    def grab(_handle: Any) -> np.ndarray:
        counter["n"] += 1
        time.sleep(0.002)
        return np.full((4, 4, 3), counter["n"] % 256, np.uint8)

    source = LiveSource(lambda: object(), grab, lambda _h: None)
    try:
        first = source.read(timeout=2)
        time.sleep(0.2)  # processing falls behind: about a hundred frames arrive meanwhile
        second = source.read(timeout=2)
        assert first is not None and second is not None
        assert second.index - first.index > 10  # the stale frames in between were skipped, not queued
        assert source.dropped >= second.index - first.index - 2
    finally:
        source.close()


def test_runner_emits_crossings_and_stats_then_stops_cleanly() -> None:
    synthetic = scene(
        Walker([(160, 40), (160, 220)], speed=3, height=50),
        Walker([(100, 220), (100, 40)], speed=3, height=50, start=10, colour=(225, 225, 210)),
    )
    config = CountingConfig(source="synthetic", lines=[{"name": "mid", "points": [10, 120, 310, 120]}])
    got: Counter[tuple[str, str, str]] = Counter()
    lock = threading.Lock()

    def on_crossing(line: str, direction: str, object_class: str, track: object) -> None:
        with lock:
            got[(line, direction, object_class)] += 1

    runner = CounterRunner(config, on_crossing, source_factory=lambda: SyntheticSource(synthetic, fps=10))
    runner.start()
    try:
        assert wait_for(lambda: sum(got.values()) >= 2)
        stats = runner.stats()
        assert stats.frames_processed > 50 and stats.fps > 0 and stats.frames_dropped == 0
    finally:
        runner.stop()
    assert got == Counter({("mid", "in", "pedestrian"): 1, ("mid", "out", "pedestrian"): 1})
    assert runner.stats().camera_state == CameraState.ABSENT
    assert not any(t.name == "counter" and t.is_alive() for t in threading.enumerate())


def test_runner_on_a_missing_camera_reports_reopening_and_stops_promptly() -> None:
    config = CountingConfig(source="/nonexistent/clip.avi", lines=[{"name": "a", "points": [0, 0, 10, 10]}])
    runner = CounterRunner(config, lambda *_: None)
    runner.start()
    try:
        assert wait_for(lambda: runner.stats().camera_state == CameraState.REOPENING)
    finally:
        started = time.monotonic()
        runner.stop()
    assert time.monotonic() - started < 2


@pytest.mark.slow
def test_synthetic_demo_source_is_cheap_in_real_time() -> None:
    """The demo runs agents on shared cores: the synthetic camera at 5 fps must cost little CPU."""
    config = CountingConfig(source="synthetic", fps=5, lines=[{"name": "mid", "points": [0, 120, 320, 120]}])
    got: list[str] = []
    runner = CounterRunner(config, lambda line, d, c, track: got.append(d))
    start_wall, start_cpu = time.monotonic(), time.process_time()
    runner.start()
    time.sleep(3)
    runner.stop()
    used = time.process_time() - start_cpu
    assert runner.stats().frames_processed >= 12
    assert used / (time.monotonic() - start_wall) < 0.25  # generous: the machine is shared


def test_runner_reports_a_lost_camera_and_its_rate_drops_to_zero() -> None:
    """Health must not show a frame rate from the past while the camera is away."""
    delivered = {"n": 0}

    def grab(_handle: Any) -> np.ndarray | None:
        delivered["n"] += 1
        if delivered["n"] > 30:
            return None
        time.sleep(0.01)
        return np.zeros((48, 64, 3), np.uint8)

    opens = {"n": 0}

    def open_camera() -> Any:
        opens["n"] += 1
        return object() if opens["n"] == 1 else None  # the camera never comes back

    def source() -> LiveSource:
        return LiveSource(open_camera, grab, lambda _h: None, backoff=Backoff(0.05, 0.1, jitter=False), fail_after=3)

    config = CountingConfig(source="synthetic", lines=[{"name": "a", "points": [0, 0, 10, 10]}])
    runner = CounterRunner(config, lambda *_: None, source_factory=source)
    runner.start()
    try:
        assert wait_for(lambda: runner.stats().frames_processed >= 10)
        assert wait_for(lambda: runner.stats().camera_state == CameraState.FAILED)
        assert wait_for(lambda: runner.stats().fps == 0.0, timeout=6)
    finally:
        runner.stop()


def test_runner_plays_a_video_file_paced_and_looped(tmp_path: Path) -> None:
    """The demo runs the counter on a video: paced to the configured rate, started again at its end."""
    # 4 px per frame at 30 frames/s for an 80 px person: 1.5 body heights per second, a walker.
    clip = write_video(tmp_path / "street.avi", scene(Walker([(160, 60), (160, 230)], speed=4, height=80)))
    frames = cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT)
    config = CountingConfig(source=str(clip), fps=30, lines=[{"name": "mid", "points": [10, 140, 310, 140]}])
    got: list[tuple[str, str, str]] = []
    runner = CounterRunner(config, lambda *crossing: got.append(crossing[:3]))
    started = time.monotonic()
    runner.start()
    try:
        assert wait_for(lambda: len(got) >= 2, timeout=20)  # the one crossing, once per pass
        assert runner.stats().frames_processed > frames
    finally:
        runner.stop()
    elapsed = time.monotonic() - started
    assert runner.stats().frames_processed <= elapsed * 30 * 1.2 + 5  # paced, not as fast as possible
    assert set(got) == {("mid", "in", "pedestrian")}


def test_a_line_outside_the_videos_frame_is_logged_once_per_opening(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file's size is known only when opened: a line drawn for another resolution is named in the log
    (the config could not tell), and the counter runs on (it may be the lockers' agent)."""
    clip = write_video(tmp_path / "street.avi", scene(Walker([(160, 60), (160, 230)], speed=4, height=80)))
    lines = [{"name": "mid", "points": [10, 140, 310, 140]}, {"name": "wide", "points": [0, 100, 640, 100]}]
    config = CountingConfig(source=str(clip), fps=30, lines=lines)
    got: list[str] = []
    runner = CounterRunner(config, lambda *crossing: got.append(crossing[0]))
    with caplog.at_level("WARNING", logger="edge_agent.counting.runner"):
        runner.start()
        try:
            assert wait_for(lambda: got.count("mid") >= 2, timeout=20)  # it counts on; the file looped once
        finally:
            runner.stop()
    warnings = [r.getMessage() for r in caplog.records if "lies outside" in r.getMessage()]
    assert warnings[0] == (
        "counting: line wide: point (640, 100) lies outside the 320x240 frame the source delivers; it counts wrong"
    )
    assert 2 <= len(warnings) <= runner.stats().frames_processed // 50 + 2  # once per opening, not per frame
    assert "mid" in got


class HangingCamera:
    """Delivers frames until ``hang`` is set, then blocks inside grab (an RTSP or libcamera stall)."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()

    def grab(self, _handle: Any) -> np.ndarray | None:
        if self.hang.is_set():
            self.release.wait()
        time.sleep(0.02)
        return np.zeros((24, 32, 3), np.uint8)


def test_a_camera_whose_grab_blocks_is_reported_failed_within_seconds() -> None:
    camera = HangingCamera()
    source = LiveSource(lambda: object(), camera.grab, lambda _h: None, fps=25)
    config = CountingConfig.model_validate(
        {"source": "0", "fps": 25, "lines": [{"name": "a", "points": [0, 5, 32, 5]}]}
    )
    runner = CounterRunner(config, lambda *_args: None, source_factory=lambda: source)
    runner.start()
    try:
        assert wait_for(lambda: runner.stats().camera_state == CameraState.OK and runner.stats().frames_processed > 5)
        assert runner.camera_progressing(2.0)
        camera.hang.set()
        stalled_at = time.monotonic()
        assert wait_for(lambda: runner.stats().camera_state == CameraState.FAILED)
        assert time.monotonic() - stalled_at < 5.0
        assert wait_for(lambda: not runner.camera_progressing(2.0))
        assert runner.progressing(2.0)  # the counter itself still turns: it waits for frames with a timeout
        camera.release.set()
        assert wait_for(lambda: runner.stats().camera_state == CameraState.OK and runner.camera_progressing(2.0))
    finally:
        camera.release.set()
        runner.stop()
