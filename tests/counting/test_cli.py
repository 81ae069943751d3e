"""The ``edge-agent count`` / ``evaluate`` contract: JSON shape, counts, and clear one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edge_agent import cli as edge_cli
from edge_agent.cli import main
from edge_agent.counting.sources import Walker
from tests.counting.scenes import scene, write_video

CODE = "import sys; from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic clip (written only here, in a test folder): one walker down, one cyclist up."""
    synthetic = scene(
        Walker([(100, 40), (100, 220)], speed=3, height=50),
        Walker([(220, 220), (220, 40)], speed=16, height=50, cyclist=True, start=30, colour=(225, 225, 210)),
    )
    return write_video(tmp_path_factory.mktemp("video") / "clip.avi", synthetic)


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_count_json_contract(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "count", str(video), "--line", "mid=10,120,310,120", "--line", "v=300,0,300,240", "--json")
    assert set(out) == {"frames", "seconds", "fps", "lines", "events"}
    assert out["frames"] == cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT)
    assert out["seconds"] > 0 and out["fps"] > 0
    mid, v = out["lines"]
    assert set(mid) == {"name", "points", "in", "out", "by_class"}
    assert mid["name"] == "mid" and mid["points"] == [10, 120, 310, 120]
    assert (mid["in"], mid["out"]) == (1, 1)
    assert mid["by_class"] == {"pedestrian": {"in": 1, "out": 0}, "cyclist": {"in": 0, "out": 1}}
    assert (v["in"], v["out"]) == (0, 0)
    assert [(e["line"], e["direction"], e["class"]) for e in out["events"]] == [
        ("mid", "in", "pedestrian"),
        ("mid", "out", "cyclist"),
    ]
    for event in out["events"]:
        assert set(event) == {"frame", "line", "direction", "class"}
        assert 0 <= event["frame"] < out["frames"]


def test_evaluate_with_a_manual_tally(video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tally = tmp_path / "tally.csv"
    tally.write_text("line,direction,count\nmid,in,1\nmid,out,2\n")
    out = run_json(capsys, "evaluate", str(video), "--line", "mid=10,120,310,120", "--gt", str(tally), "--json")
    assert out["count_error"] == pytest.approx(1 / 3)
    assert out["precision"] is None and out["f1"] is None
    assert {(r["direction"], r["counted"], r["truth"]) for r in out["lines"]} == {("in", 1, 1), ("out", 1, 2)}


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["count", "VIDEO"], "the following arguments are required: --line", 2),
        (["count", "VIDEO", "--line", "mid=1,2,3"], "expected 4 numbers", 2),
        (["count", "VIDEO", "--line", "mid"], "expected NAME=x1,y1,x2,y2", 2),
        (["count", "VIDEO", "--line", "Mid Line=1,2,3,4"], "line name must be", 2),
        (["count", "VIDEO", "--line", "m=1,2,1,2"], "end points must differ", 2),
        (["count", "VIDEO", "--line", "m=1,2,3,4", "--detector", "yolo"], "invalid choice", 2),
        (["count", "VIDEO", "--line", "m=1,2,3,4", "--line", "m=5,6,7,8"], "names must be unique", 1),
        (["count", "VIDEO", "--line", "m=1,2,3,4", "--detector", "onnx"], "needs --model", 1),
        (["count", "VIDEO", "--line", "m=1,2,3,4", "--detector", "onnx", "--model", "nope.onnx"], "does not exist", 1),
        (["count", "missing.avi", "--line", "m=1,2,3,4"], "video file missing.avi does not exist", 1),
        # Drawn for a 640x480 camera, used on this 320x240 clip.
        (["count", "VIDEO", "--line", "m=20,240,620,240"], "point (620, 240) lies outside the 320x240 frame", 1),
        (["count", "VIDEO", "--line", "m=-5,2,3,4"], "point (-5, 2) lies outside", 1),
        (["count", "NOTVIDEO", "--line", "m=1,2,3,4"], "cannot open video", 1),
        (["evaluate", "VIDEO", "--line", "m=1,2,3,4", "--gt", "nope.txt"], "does not exist", 1),
        (["evaluate", "VIDEO", "--line", "m=1,2,3,4", "--gt", "BADTALLY"], "expected line,direction,count", 1),
    ],
)
def test_bad_arguments_get_one_clear_line(
    video: Path, tmp_path: Path, args: list[str], message: str, status: int
) -> None:
    not_video = tmp_path / "notes.avi"
    not_video.write_text("not a video")
    bad_tally = tmp_path / "tally.csv"
    bad_tally.write_text("mid,sideways,3\n")
    args = [{"VIDEO": str(video), "NOTVIDEO": str(not_video), "BADTALLY": str(bad_tally)}.get(a, a) for a in args]
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CODE, *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].startswith("edge-agent")


def test_count_loads_only_what_counting_needs(video: Path) -> None:
    """Peak memory on a Pi: `edge-agent count` imports neither the other sub-commands nor the pydantic configs."""
    code = (
        "import json, sys; from edge_agent.cli import main; status = main(sys.argv[1:]); "
        "print(json.dumps([status, sorted(sys.modules)]))"
    )
    args = ["count", str(video), "--line", "mid=10,120,310,120", "--json"]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    status, modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert status == 0
    loaded = {m.split(".")[0] for m in modules} | set(modules)
    unwanted = {"pydantic", "edge_agent.config", "edge_agent.counting.config", "hub_protocol.validation", "paho"}
    assert not unwanted & loaded
    others = {name for name in edge_cli.COMMAND_MODULES.values() if name != "count"}
    assert not {f"edge_agent.commands.{name}" for name in others} & set(modules)


def test_every_sub_command_is_registered_under_its_own_name(capsys: pytest.CaptureFixture[str]) -> None:
    for name, module in edge_cli.COMMAND_MODULES.items():
        [loaded] = edge_cli.commands([name, "--help"])
        assert name == loaded.NAME and loaded.__name__ == f"edge_agent.commands.{module}"
    assert [m.NAME for m in edge_cli.COMMANDS] == list(edge_cli.COMMAND_MODULES)
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in edge_cli.COMMAND_MODULES)
