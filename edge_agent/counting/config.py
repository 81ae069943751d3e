"""The ``[counting]`` section of the agent config: where frames come from, how to detect, which lines."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from edge_agent.counting.lines import CountLine
from edge_agent.counting.source_kinds import configured_frame_size
from hub_protocol.validation import Identifier, StrictModel


def check_points(value: Any) -> list[float]:
    """Four finite numbers x1, y1, x2, y2 (pixels) of two distinct points."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) != 4:
        raise PydanticCustomError("points", "expected 4 numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise PydanticCustomError("points", "expected 4 numbers")
    points = [float(v) for v in value]
    if not all(0 <= v <= 10_000 for v in points):
        raise PydanticCustomError("points", "coordinates must be pixels between 0 and 10000")
    if math.hypot(points[2] - points[0], points[3] - points[1]) < 1:
        raise PydanticCustomError("points", "the two end points must differ")
    return points


class LineConfig(StrictModel):
    name: Identifier = Field(description="Line name, as it appears in flow reports")
    points: list[float] = Field(description="x1, y1, x2, y2 in pixels; `in` = from left to right of A->B")

    @field_validator("points", mode="before")
    @classmethod
    def _points(cls, value: Any) -> list[float]:
        return check_points(value)

    def to_line(self) -> CountLine:
        x1, y1, x2, y2 = self.points
        return CountLine(self.name, x1, y1, x2, y2)


class CountingConfig(StrictModel):
    source: str = Field(
        min_length=1,
        max_length=1024,
        description='"picamera", "synthetic", a V4L2 device ("/dev/video0" or "0"), an rtsp:// URL or a video file',
    )
    width: int = Field(default=640, ge=64, le=4096, description="Requested camera frame width")
    height: int = Field(default=480, ge=48, le=4096, description="Requested camera frame height")
    fps: float = Field(default=10, gt=0, le=60, description="Camera frame rate (synthetic: frames generated)")
    detector: Literal["motion", "onnx"] = Field(default="motion", description="motion needs no model; onnx does")
    model: Path | None = Field(default=None, description="ONNX model file (NanoDet-m), required for onnx")
    backend: Literal["auto", "opencv", "onnxruntime"] = Field(
        default="auto", description="Runtime for the onnx model: auto = onnxruntime when installed, else opencv"
    )
    lines: list[LineConfig] = Field(min_length=1, max_length=16, description="Counting lines")
    detect_every: int | None = Field(
        default=None, ge=1, le=30, description="Run the detector every k-th frame (default: 1 motion, 4 onnx)"
    )
    score_threshold: float = Field(
        default=0.4,
        ge=0.05,
        le=0.95,
        description="onnx: detections this sure start a track; down to 3/4 of it they only continue one",
    )
    margin: float = Field(
        default=0.25, ge=0.05, le=1.0, description="Hysteresis half-width around a line, in box heights"
    )
    cyclist_speed: float = Field(
        default=2.0, ge=0.5, le=20, description="motion: box heights per second above which an object is a cyclist"
    )
    max_coast_seconds: float = Field(default=1.5, ge=0.1, le=10, description="How long a hidden object is kept")
    persist_seconds: float = Field(
        default=0.3, ge=0, le=5, description="How long an object must stay past a line before its crossing counts"
    )

    @model_validator(mode="after")
    def _consistent(self) -> CountingConfig:
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise PydanticCustomError("lines", "line names must be unique")
        if self.detector == "onnx" and self.model is None:
            raise PydanticCustomError("model", "the onnx detector needs `model` (path of the .onnx file)")
        return self

    def lines_outside_frame(self) -> list[str]:
        """Lines with a point outside the frame the source gives, where the config sets that size: nearly always
        a line drawn for another camera or resolution, which counts silently wrong. A warning (check-config, the
        doctor), not a refusal: an agent updated in the field must not stop its lockers over a counting line."""
        size = configured_frame_size(self.source, self.width, self.height)
        return self.lines_outside(size, "this source gives (`width` x `height`)") if size else []

    def lines_outside(self, size: tuple[int, int], whose: str) -> list[str]:
        """One message per line with a point outside a ``size`` (width, height) frame."""
        width, height = size
        outside = [(line.name, line.to_line().point_outside(width, height)) for line in self.lines]
        return [
            f"counting: line {name}: point ({p[0]:g}, {p[1]:g}) lies outside the {width}x{height} frame {whose}"
            for name, p in outside
            if p is not None
        ]
