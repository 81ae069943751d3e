"""The calibration picture of a busy real scene, learned from the fewest frames the command accepts, shows
nobody: compared with a clean background computed here independently (the median of frames spread over the
whole PETS 2009 clip), it has no difference blob the size of a person (sizes from the clip's MOT boxes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.commands.calibrate import MIN_FRAMES
from tests.conftest import shared_path

pytestmark = [pytest.mark.shared, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LINE_Y = 20  # along the top (the building): people walk lower down, so the drawn line hides none of them
SKIP_ROWS = 80  # the line, its arrow towards `in` and its labels


def read_all(video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def person_blobs(picture: np.ndarray, clean: np.ndarray, min_area: float) -> list[tuple[int, int, int, int, int]]:
    """Connected regions of strong difference (any channel over 40 grey levels) of at least ``min_area``."""
    diff = np.abs(picture.astype(np.int16) - clean.astype(np.int16)).max(axis=2)
    mask = (diff > 40).astype(np.uint8)
    mask[:SKIP_ROWS] = 0
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [tuple(int(v) for v in stats[i]) for i in range(1, count) if stats[i, 4] >= min_area]  # type: ignore[misc]


def calibrate(output: Path, source: Path, line: str, frames: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edge_agent.cli", "calibrate", str(output), "--source", str(source)]
    return subprocess.run(
        [*command, "--line", line, "--frames", str(frames), "--timeout", "900"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_calibration_from_the_fewest_frames_shows_nobody(tmp_path: Path) -> None:
    video = shared_path("data", "pets09-s2l1", "vtest.avi")
    gt = np.loadtxt(shared_path("data", "pets09-s2l1", "gt.txt"), delimiter=",", ndmin=2)
    frames = read_all(video)
    assert len(frames) == 795
    # A person-sized blob: a third of the area of the smallest people in the clip (5th percentile of the boxes),
    # so half a body left in the picture still counts.
    min_area = 0.33 * float(np.percentile(gt[:, 4] * gt[:, 5], 5))
    clean = np.median(np.stack(frames[::6]), axis=0).astype(np.uint8)
    # The check can fail: a raw frame has people in it.
    assert len(person_blobs(frames[MIN_FRAMES], clean, min_area)) >= 3

    output = tmp_path / "calibration.png"
    done = calibrate(output, video, f"top=0,{LINE_Y},767,{LINE_Y}", MIN_FRAMES)
    assert done.returncode == 0, done.stderr
    picture = cv2.imread(str(output))
    assert picture is not None and picture.shape == clean.shape
    assert person_blobs(picture, clean, min_area) == []
    # The line is drawn where asked (so the rows left out of the comparison are the line's, not people's).
    row = picture[LINE_Y, 100:700].astype(np.int16)
    assert (np.abs(row - (0, 215, 255)).sum(axis=1) < 90).mean() > 0.8


def test_calibration_refuses_a_scene_that_does_not_settle(tmp_path: Path) -> None:
    """The first 120 frames of the clip (people lingering on the right throughout) at --frames 100: refused,
    nothing written, one clear line."""
    video = shared_path("data", "pets09-s2l1", "vtest.avi")
    short = tmp_path / "first.avi"
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*"MJPG"), 7, (768, 576))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for image in read_all(video)[:120]:
        writer.write(image)
    writer.release()
    output = tmp_path / "calibration.png"
    done = calibrate(output, short, "a=0,20,767,20", 100)
    assert done.returncode == 1
    assert "did not settle" in done.stderr and "nothing was written" in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.exists()


def test_with_the_onnx_detector_someone_who_stood_still_the_whole_time_is_refused(tmp_path: Path) -> None:
    """The learner cannot tell a person who never moved from the street; the configured onnx detector can.
    Two videos of the clip's clean background with sensor noise, one with three of its people pasted in the
    same place in every frame: the first gives a picture, the second is refused."""
    video = shared_path("data", "pets09-s2l1", "vtest.avi")
    model = shared_path("models", "nanodet-m", "object_detection_nanodet_2022nov.onnx")
    gt = np.loadtxt(shared_path("data", "pets09-s2l1", "gt.txt"), delimiter=",", ndmin=2)
    frames = read_all(video)
    clean = np.median(np.stack(frames[::6]), axis=0).astype(np.uint8)
    statues = clean.copy()
    for _, _, x, y, w, h, *_ in gt[gt[:, 0] == 1].astype(int):
        statues[y : y + h, x : x + w] = frames[0][y : y + h, x : x + w]
    rng = np.random.default_rng(3)
    results = {}
    for name, still in (("empty", clean), ("statues", statues)):
        path = tmp_path / f"{name}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 7, (768, 576))
        assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
        for _ in range(200):
            noise = rng.normal(0, 2.0, still.shape[:2])[:, :, None]
            writer.write(np.clip(still.astype(np.int16) + noise, 0, 255).astype(np.uint8))
        writer.release()
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[device]\nid = "dev-a"\nsite = "street-a"\nstate_dir = "{tmp_path / "state"}"\n\n'
            '[mqtt]\npassword_file = "mqtt-password"\n\n'
            f'[counting]\nsource = "{path}"\ndetector = "onnx"\nmodel = "{model}"\n'
            'lines = [{ name = "top", points = [0, 20, 767, 20] }]\n'
        )
        output = tmp_path / f"{name}.png"
        command = [sys.executable, "-m", "edge_agent.cli", "calibrate", str(output), "--config", str(config)]
        results[name] = subprocess.run(
            [*command, "--frames", str(MIN_FRAMES)], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
        )
        assert output.exists() == (name == "empty"), results[name].stderr
    assert results["empty"].returncode == 0, results["empty"].stderr
    refused = results["statues"]
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "detector sees 3 person(s)" in refused.stderr and "nothing was written" in refused.stderr
