"""Evaluation on the real PETS 2009 clip in ../shared (skipped when that folder is absent).

Floors, not targets: the benchmark (bench/counting.py) prints the figures; these catch regressions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.counting import evaluate as ev
from edge_agent.counting.factory import build_detector, settings_for
from edge_agent.counting.lines import CountLine
from edge_agent.counting.offline import count_source
from edge_agent.counting.pipeline import CountingPipeline
from edge_agent.counting.sources import VideoFileSource
from tests.conftest import shared_path

pytestmark = [pytest.mark.shared, pytest.mark.slow]

ISSUE_LINES = [
    CountLine("h-mid", 0, 288, 768, 288),
    CountLine("v-mid", 384, 0, 384, 576),
    CountLine("h-top", 0, 192, 768, 192),
    CountLine("h-low", 0, 384, 768, 384),
    CountLine("v-left", 256, 0, 256, 576),
    CountLine("v-right", 512, 0, 512, 576),
    CountLine("diag", 160, 96, 672, 528),
]
# Placed after the fact, never used for tuning: diagonals, short segments, lines along walking paths.
HELD_OUT = [
    CountLine("anti-diag", 700, 100, 100, 500),
    CountLine("short-centre", 300, 250, 450, 250),
    CountLine("short-upright", 500, 150, 500, 300),
    CountLine("along-path", 100, 240, 700, 250),
    CountLine("long-diag", 50, 500, 500, 50),
    CountLine("v-330", 330, 80, 330, 500),
    CountLine("h-330", 60, 330, 740, 330),
]


def scores(detector: str, lines: list[CountLine], model: Path | None = None) -> ev.Scores:
    video = shared_path("data", "pets09-s2l1", "vtest.avi")
    truth = ev.truth_crossings(ev.load_mot(shared_path("data", "pets09-s2l1", "gt.txt")), lines, 0.25)
    source = VideoFileSource(str(video))
    pipeline = CountingPipeline(lines, build_detector(detector, model), source.fps, settings_for(detector))
    result = count_source(source, pipeline)
    source.close()
    assert result.frames == 795
    return ev.score_events(result.events, truth, lines)


def test_ground_truth_gives_crossings_on_every_issue_line() -> None:
    gt = ev.load_mot(shared_path("data", "pets09-s2l1", "gt.txt"))
    assert len(gt) == 19
    truth = ev.truth_crossings(gt, ISSUE_LINES, 0.25)
    per_line = {line.name: sum(1 for c in truth if c.line == line.name) for line in ISSUE_LINES}
    assert all(n > 0 for n in per_line.values()), per_line


@pytest.mark.parametrize("lines", [ISSUE_LINES, HELD_OUT], ids=["issue-lines", "held-out-lines"])
def test_motion_detector_accuracy(lines: list[CountLine]) -> None:
    result = scores("motion", lines)
    assert result.f1 is not None and result.f1 >= 0.86, result
    assert result.count_error <= 0.15, result


@pytest.mark.parametrize("lines", [ISSUE_LINES, HELD_OUT], ids=["issue-lines", "held-out-lines"])
def test_onnx_detector_accuracy(lines: list[CountLine]) -> None:
    model = shared_path("models", "nanodet-m", "object_detection_nanodet_2022nov.onnx")
    result = scores("onnx", lines, model)
    assert result.f1 is not None and result.f1 >= 0.92, result
    assert result.count_error <= 0.10, result


def test_count_command_on_the_real_video() -> None:
    video = shared_path("data", "pets09-s2l1", "vtest.avi")
    code = "import sys; from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["count", str(video), "--line", "h-mid=0,288,768,288", "--json"]
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["frames"] == 795
    assert out["lines"][0]["in"] + out["lines"][0]["out"] == len(out["events"]) > 10
