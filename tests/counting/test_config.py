"""The [counting] section: clear errors with key paths, defaults that keep the feature off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import AgentConfig
from edge_agent.counting.config import CountingConfig
from edge_agent.counting.factory import build_pipeline
from hub_protocol.validation import ConfigError, validate_data

BASE: dict[str, Any] = {"device": {"id": "lamp-1", "site": "street"}, "mqtt": {"password_file": "pw"}}


def agent(counting: dict[str, Any] | None) -> AgentConfig:
    data = dict(BASE)
    if counting is not None:
        data["counting"] = counting
    return validate_data(AgentConfig, data, "agent.toml")


def problems(counting: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        agent(counting)
    return info.value.problems


def test_counting_is_off_without_a_section() -> None:
    assert agent(None).counting is None


def test_valid_section() -> None:
    cfg = agent({"source": "synthetic", "lines": [{"name": "door", "points": [0, 10, 100, 10.5]}]}).counting
    assert isinstance(cfg, CountingConfig)
    assert cfg.detector == "motion" and cfg.lines[0].to_line().points == (0, 10, 100, 10.5)


def test_lasting_time_reaches_the_crossing_rule_in_frames() -> None:
    section = {"source": "synthetic", "lines": [{"name": "a", "points": [0, 0, 10, 10]}]}
    cfg = agent(section).counting
    assert cfg is not None and build_pipeline(cfg, fps=10).counter.persist == 3  # 0.3 s by default
    cfg = agent({**section, "persist_seconds": 1.0}).counting
    assert cfg is not None and build_pipeline(cfg, fps=15).counter.persist == 15


def test_points_need_four_numbers_and_the_error_says_where() -> None:
    lines = [{"name": "a", "points": [0, 0, 10, 10]}, {"name": "b", "points": [1, 2, 3]}]
    assert problems({"source": "synthetic", "lines": lines}) == ["counting.lines[1].points: expected 4 numbers"]
    lines[1]["points"] = "1,2,3,4"
    assert problems({"source": "synthetic", "lines": lines}) == ["counting.lines[1].points: expected 4 numbers"]
    lines[1]["points"] = [1, 2, 1, 2]
    assert problems({"source": "synthetic", "lines": lines}) == [
        "counting.lines[1].points: the two end points must differ"
    ]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"detector": "onnx"}, "needs `model`"),
        ({"detector": "yolo"}, "counting.detector:"),
        ({"margin": 5}, "counting.margin:"),
        ({"detect_every": 0}, "counting.detect_every:"),
        ({"score_threshold": 1.5}, "counting.score_threshold:"),
        ({"persist_seconds": -0.1}, "counting.persist_seconds:"),
        ({"lines": []}, "counting.lines:"),
        ({"lines": [{"name": "a", "points": [0, 0, 1, 1]}, {"name": "a", "points": [0, 0, 2, 2]}]}, "unique"),
        ({"lines": [{"name": "Door 1", "points": [0, 0, 1, 1]}]}, "counting.lines[0].name:"),
        ({"colour": "red"}, "counting.colour: Extra inputs"),
    ],
)
def test_bad_values_are_named(change: dict[str, Any], fragment: str) -> None:
    section = {"source": "synthetic", "lines": [{"name": "a", "points": [0, 0, 10, 10]}], **change}
    assert any(fragment in p for p in problems(section)), problems(section)


def test_check_config_reports_the_line_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[device]\nid = "lamp-1"\nsite = "street"\n[mqtt]\npassword_file = "pw"\n'
        '[counting]\nsource = "synthetic"\n'
        '[[counting.lines]]\nname = "a"\npoints = [0, 0, 10, 10]\n'
        '[[counting.lines]]\nname = "b"\npoints = [0, 0, 10]\n'
    )
    code = "import sys; from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}: counting.lines[1].points: expected 4 numbers" in result.stderr


@pytest.mark.parametrize(
    ("source", "size", "point"),
    [
        ("picamera", {"width": 640, "height": 480}, [700, 300]),
        ("/dev/video0", {"width": 1280, "height": 720}, [640, 900]),
        ("2", {}, [100, 481]),
        ("synthetic", {"width": 1280, "height": 720}, [900, 100]),  # the synthetic street is at most 640x480
    ],
)
def test_a_line_outside_the_cameras_frame_is_named(source: str, size: dict[str, int], point: list[int]) -> None:
    """A line drawn for another camera or resolution would count silently wrong: a warning names it (not a
    refusal: an updated agent must keep its lockers running over a counting line)."""
    lines = [{"name": "ok", "points": [0, 10, 100, 10]}, {"name": "far", "points": [10, 10, *point]}]
    cfg = agent({"source": source, **size, "lines": lines}).counting
    assert cfg is not None
    [warning] = cfg.lines_outside_frame()
    assert f"line far: point ({point[0]}, {point[1]}) lies outside" in warning
    fitting = [{"name": "far", "points": [0, 0, min(point[0], 640), min(point[1], 480)]}]
    fits = agent({"source": source, **size, "lines": fitting}).counting
    assert fits is not None and fits.lines_outside_frame() == []


def test_a_file_or_stream_has_its_own_frame_size() -> None:
    """Known only when opened (edge-agent count checks it there): the config cannot judge it."""
    for source in ("street.mp4", "rtsp://camera.local/stream"):
        cfg = agent({"source": source, "lines": [{"name": "wide", "points": [0, 500, 1900, 500]}]}).counting
        assert cfg is not None and cfg.lines_outside_frame() == []


def test_check_config_warns_of_a_line_outside_the_frame(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[device]\nid = "lamp-1"\nsite = "street"\n[mqtt]\npassword_file = "pw"\n'
        '[counting]\nsource = "picamera"\n[[counting.lines]]\nname = "door"\npoints = [0, 288, 768, 288]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == "OK"
    assert "warning: counting: line door: point (768, 288) lies outside the 640x480 frame" in result.stderr
