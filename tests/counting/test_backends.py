"""Runtimes for the onnx detector: choice in config and CLI, clear errors, the same detections from both."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.counting.detectors import backends
from edge_agent.counting.detectors.backends import ModelError, open_backend, resolve
from edge_agent.counting.detectors.onnx import OnnxDetector
from edge_agent.counting.sources import Walker, demo_scene
from hub_protocol.validation import ConfigError, validate_data
from tests.conftest import shared_path
from tests.counting.scenes import scene

CODE = "import sys; from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"
BASE: dict[str, Any] = {"device": {"id": "lamp-1", "site": "street"}, "mqtt": {"password_file": "pw"}}
HAS_ORT = backends.onnxruntime_available()
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (pip install '.[onnxruntime]')")


def model() -> Path:
    return shared_path("models", "nanodet-m", "object_detection_nanodet_2022nov.onnx")


def test_auto_takes_onnxruntime_only_when_it_can_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve("opencv") == "opencv"
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: False)
    assert resolve("auto") == "opencv"
    with pytest.raises(ModelError, match=r"onnxruntime is not installed .*\[onnxruntime\]"):
        resolve("onnxruntime")
    monkeypatch.setattr(backends, "onnxruntime_available", lambda: True)
    assert resolve("auto") == "onnxruntime"
    with pytest.raises(ModelError, match="unknown backend 'gpu'"):
        resolve("gpu")


def test_the_config_names_a_bad_backend() -> None:
    from edge_agent.config import AgentConfig

    counting = {
        "source": "synthetic",
        "detector": "onnx",
        "model": "m.onnx",
        "lines": [{"name": "a", "points": [0, 0, 9, 9]}],
    }
    config = validate_data(AgentConfig, {**BASE, "counting": counting}, "agent.toml").counting
    assert config is not None and config.backend == "auto"
    with pytest.raises(ConfigError) as info:
        validate_data(AgentConfig, {**BASE, "counting": {**counting, "backend": "tensorrt"}}, "agent.toml")
    assert any(p.startswith("counting.backend:") for p in info.value.problems), info.value.problems


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["--backend", "tensorrt"], "invalid choice: 'tensorrt'", 2),
        (["--backend", "opencv", "--model", "nope.onnx"], "model file nope.onnx does not exist", 1),
    ],
)
def test_bad_backend_arguments_get_one_clear_line(tmp_path: Path, args: list[str], message: str, status: int) -> None:
    video = tmp_path / "clip.avi"
    video.write_bytes(b"")
    command = ["count", str(video), "--line", "m=1,2,3,4", "--detector", "onnx", *args]
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", CODE, *command], capture_output=True, text=True)
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_choosing_onnxruntime_without_it_installed_is_one_clear_line(tmp_path: Path) -> None:
    """Run where onnxruntime cannot be imported (a None entry in sys.modules makes its import fail)."""
    video = tmp_path / "clip.avi"
    video.write_bytes(b"")
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"not a model")
    code = "import sys; sys.modules['onnxruntime'] = None; " + CODE.split("; ", 1)[1]
    command = ["count", str(video), "--line", "m=1,2,3,4", "--detector", "onnx", "--model", str(weights)]
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *command, "--backend", "onnxruntime"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "backend onnxruntime is not installed" in result.stderr


@pytest.mark.parametrize("name", ["opencv", pytest.param("onnxruntime", marks=needs_ort)])
def test_a_file_that_is_not_a_model_is_refused_clearly(tmp_path: Path, name: str) -> None:
    weights = tmp_path / "m.onnx"
    weights.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load model"):
        open_backend(name, weights)


@needs_ort
def test_both_runtimes_give_the_same_outputs_and_detections_on_a_generated_image() -> None:
    street = scene(*demo_scene(640, 480, fps=10).walkers[:6], Walker([(300, 100), (300, 400)], height=120))
    image = street.render(60)
    noise = np.random.default_rng(5).integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
    opencv = OnnxDetector(model(), score_threshold=0.05, backend="opencv")
    ort = OnnxDetector(model(), score_threshold=0.05, backend="onnxruntime")
    assert (opencv.backend.name, ort.backend.name) == ("opencv", "onnxruntime")
    assert OnnxDetector(model(), backend="auto").backend.name == "onnxruntime"
    blob = np.random.default_rng(6).normal(0, 1, size=(1, 3, 416, 416)).astype(np.float32)
    raw_cv = sorted(opencv.backend.run(blob), key=lambda a: a.shape)
    raw_ort = sorted(ort.backend.run(blob), key=lambda a: a.shape)
    assert [a.shape for a in raw_cv] == [a.shape for a in raw_ort]
    for a, b in zip(raw_cv, raw_ort, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    for picture, roi in ((image, None), (image, (100, 50, 500, 450)), (noise, None)):
        found_cv = opencv.detect(picture, roi)
        found_ort = ort.detect(picture, roi)
        assert len(found_cv) == len(found_ort)
        for p, q in zip(found_cv, found_ort, strict=True):
            assert p.cyclist == q.cyclist
            assert (p.x1, p.y1, p.x2, p.y2, p.score) == pytest.approx((q.x1, q.y1, q.x2, q.y2, q.score), abs=1e-3)
    assert any(opencv.detect(image))  # a low threshold: the comparison is over something, not two empty lists


@needs_ort
def test_onnxruntime_sessions_sleep_when_idle_and_share_one_arena_without_mixing_their_tensors() -> None:
    """Memory and CPU settings of the runtime (docs/counting.md, "Detector backends"): the workers do not
    spin, and every session of the process takes its tensors from one arena; two sessions run in turn on
    different inputs still give each input's own outputs, the same as a session run alone."""
    first, second = backends.OnnxRuntimeBackend(model()), backends.OnnxRuntimeBackend(model())
    for backend in (first, second):
        options = backend._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.get_session_config_entry("session.use_env_allocators") == "1"
    rng = np.random.default_rng(7)
    blobs = [rng.normal(0, 1, size=(1, 3, 416, 416)).astype(np.float32) for _ in range(2)]
    alone = [[a.copy() for a in first.run(blob)] for blob in blobs]
    for _ in range(2):
        for blob, expected in zip(blobs, alone, strict=True):
            for backend in (second, first):
                for a, b in zip(backend.run(blob), expected, strict=True):
                    np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(*alone, strict=True))  # the inputs differ in outputs
