"""``edge-agent count`` on a folder of frames (a MOTChallenge ``img1/``) and with ``--fps``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.counting.sources import ImageFolderSource, SourceError, Walker
from tests.counting.scenes import scene

CODE = "import sys; from edge_agent.cli import main; sys.exit(main(sys.argv[1:]))"
MID = "mid=10,120,310,120"


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MOTChallenge-style sequence (test data only): seq/seqinfo.ini and seq/img1/1.png, 2.png, ... unpadded,
    so that name order and frame order differ (10.png sorts before 2.png as text)."""
    synthetic = scene(
        Walker([(100, 40), (100, 220)], speed=3, height=50),
        Walker([(220, 220), (220, 40)], speed=16, height=50, cyclist=True, start=30, colour=(225, 225, 210)),
    )
    root = tmp_path_factory.mktemp("seq")
    frames = root / "img1"
    frames.mkdir()
    for index in range(synthetic.length):
        assert cv2.imwrite(str(frames / f"{index + 1}.png"), synthetic.render(index))
    (root / "seqinfo.ini").write_text("[Sequence]\nname=synthetic\nimDir=img1\nframeRate=10\n")
    return frames


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", CODE, *args], capture_output=True, text=True, timeout=120
    )


def test_a_folder_counts_like_the_video(sequence: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["count", str(sequence), "--line", MID, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["frames"] == len(list(sequence.glob("*.png")))
    [mid] = out["lines"]
    assert mid["by_class"] == {"pedestrian": {"in": 1, "out": 0}, "cyclist": {"in": 0, "out": 1}}
    assert "note" not in captured.err  # seqinfo.ini stated the rate


def test_frames_come_in_number_order(tmp_path: Path) -> None:
    for index in (1, 2, 3, 9, 10, 11, 100):
        cv2.imwrite(str(tmp_path / f"frame{index}.png"), np.full((4, 4, 3), index, np.uint8))
    (tmp_path / "notes.txt").write_text("not a frame")
    source = ImageFolderSource(tmp_path)
    seen = []
    while (frame := source.read()) is not None:
        assert frame.image is not None
        seen.append(int(frame.image[0, 0, 0]))
    assert seen == [1, 2, 3, 9, 10, 11, 100]
    assert not source.fps_known and source.frame_size == (4, 4)


def test_fps_sets_the_clock_of_every_time_rule(sequence: Path, tmp_path: Path) -> None:
    """The rider moves 16 px a frame, 50 px tall: 3.2 heights a second at 10 frames/s (a cyclist for the
    motion detector's speed rule), 1.6 at 5 frames/s (walking pace)."""
    bare = tmp_path / "frames"
    bare.mkdir()
    for image in sequence.iterdir():
        (bare / image.name).write_bytes(image.read_bytes())
    unknown = run("count", str(bare), "--line", MID, "--json")
    assert unknown.returncode == 0
    assert "states no frame rate; assuming 10 frames/s (give --fps)" in unknown.stderr
    stated = run("count", str(bare), "--line", MID, "--json", "--fps", "10")
    slow = run("count", str(bare), "--line", MID, "--json", "--fps", "5")
    assert stated.stderr == "" and slow.stderr == ""
    [at_10] = json.loads(stated.stdout)["lines"]
    [at_5] = json.loads(slow.stdout)["lines"]
    assert at_10["by_class"]["cyclist"] == {"in": 0, "out": 1}
    assert at_5["by_class"] == {"pedestrian": {"in": 1, "out": 1}, "cyclist": {"in": 0, "out": 0}}


@pytest.mark.parametrize(
    ("case", "extra", "message", "status"),
    [
        ("sequence", ["--fps", "0"], "frames per second must be above 0 and at most 240", 2),
        ("sequence", ["--fps", "fast"], "expected a number of frames per second", 2),
        ("sequence", ["--fps", "1000"], "at most 240", 2),
        ("empty", [], "holds no images", 1),
        ("corrupt", [], "cannot read image", 1),
        ("mixed", [], "the folder's first image 320x240", 1),
        ("sequence", ["--line", "low=10,300,310,300"], "point (10, 300) lies outside the 320x240 frame", 1),
    ],
)
def test_bad_folders_and_rates_get_one_clear_line(
    sequence: Path, tmp_path: Path, case: str, extra: list[str], message: str, status: int
) -> None:
    folder = {"sequence": sequence, "empty": tmp_path}.get(case, tmp_path)
    if case == "corrupt":
        (tmp_path / "1.png").write_bytes((sequence / "1.png").read_bytes())
        (tmp_path / "2.png").write_text("not an image")
    if case == "mixed":
        (tmp_path / "1.png").write_bytes((sequence / "1.png").read_bytes())
        cv2.imwrite(str(tmp_path / "2.png"), np.zeros((10, 10, 3), np.uint8))
    result = run("count", str(folder), "--line", MID, *extra)
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_a_folder_that_cannot_be_listed_is_a_source_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(SourceError, match=r"cannot list folder .*: Permission denied"):
        ImageFolderSource(tmp_path)
