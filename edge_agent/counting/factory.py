"""Builds detectors, pipelines and sources from settings (the CLI, the runner and the benchmark share it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge_agent.counting.detectors import Detector
from edge_agent.counting.detectors.motion import MotionDetector
from edge_agent.counting.lines import CountLine
from edge_agent.counting.pipeline import CountingPipeline, PipelineSettings
from edge_agent.counting.source_kinds import is_device, synthetic_size
from edge_agent.counting.sources import (
    FrameSource,
    SourceError,
    SyntheticSource,
    VideoFileSource,
    capture_source,
    demo_scene,
    picamera_source,
)

if TYPE_CHECKING:  # the pydantic config: `edge-agent count` builds from arguments and does without it
    from edge_agent.counting.config import CountingConfig

DEFAULT_DETECT_EVERY = {"motion": 1, "onnx": 4}
# Detections down to this share of the score threshold are kept, but only to continue tracks (a person half
# hidden behind another scores lower); only those above the threshold start one.
WEAK_SHARE = 0.75


def build_detector(
    name: str, model: Path | None = None, score_threshold: float = 0.4, backend: str = "auto"
) -> Detector:
    if name == "motion":
        return MotionDetector()
    if name == "onnx":
        if model is None:
            raise ValueError("the onnx detector needs a model file")
        from edge_agent.counting.detectors.onnx import OnnxDetector

        return OnnxDetector(model, score_threshold=WEAK_SHARE * score_threshold, backend=backend)
    raise ValueError(f"unknown detector {name!r} (expected motion or onnx)")


def settings_for(
    detector: str,
    detect_every: int | None = None,
    margin: float = 0.25,
    cyclist_speed: float = 2.0,
    max_coast_seconds: float = 1.5,
    persist_seconds: float = 0.3,
    score_threshold: float = 0.4,
) -> PipelineSettings:
    return PipelineSettings(
        detect_every=detect_every or DEFAULT_DETECT_EVERY[detector],
        high_score=score_threshold,
        model_boxes=detector != "motion",
        margin=margin,
        cyclist_speed=cyclist_speed,
        max_coast_seconds=max_coast_seconds,
        persist_seconds=persist_seconds,
        # A model's looks: three at the cadence the rules were chosen with (every 4th frame at 10 frames/s),
        # as many looks' worth at any other rate. The motion detector was chosen on every frame and is
        # left as it was (its blobs were never measured at another rate).
        confirm_seconds=1.2 if detector != "motion" else 0.0,
    )


def build_pipeline(config: CountingConfig, fps: float) -> CountingPipeline:
    lines: Sequence[CountLine] = [line.to_line() for line in config.lines]
    detector = build_detector(config.detector, config.model, config.score_threshold, config.backend)
    settings = settings_for(
        config.detector,
        config.detect_every,
        config.margin,
        config.cyclist_speed,
        config.max_coast_seconds,
        config.persist_seconds,
        config.score_threshold,
    )
    return CountingPipeline(lines, detector, fps, settings)


def open_source(config: CountingConfig) -> FrameSource:
    """Live sources pace themselves; a file is read as fast as asked (the runner paces it)."""
    source = config.source
    if source == "picamera":
        return picamera_source(config.width, config.height, config.fps)
    if source == "synthetic":
        scene = demo_scene(*synthetic_size(config.width, config.height), config.fps)
        return SyntheticSource(scene, fps=config.fps, realtime=True, loop=True)
    if is_device(source):
        return capture_source(int(source) if source.isdigit() else source, config.fps, config.width, config.height)
    if "://" in source:
        return capture_source(source, config.fps)
    if not Path(source).is_file():
        raise SourceError(f"video file {source} does not exist")
    return VideoFileSource(source)
