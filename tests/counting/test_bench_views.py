"""The benchmark's transformed views (``bench/scenes.py``): frames and ground-truth boxes move together.

A zoomed or mirrored view is only fair material if its truth is transformed exactly as its pixels are; a
box that lands beside the person it belongs to would score the counter against the wrong truth. A small
generated video with one bright box checks it for a plain, a zoomed and a mirrored view.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge_agent.counting.evaluate import GtBox


def _bench_scenes():  # type: ignore[no-untyped-def]
    """bench/scenes.py under its own name, without putting bench/ (counting.py, privacy.py...) on the path."""
    spec = importlib.util.spec_from_file_location(
        "bench_scenes", Path(__file__).resolve().parents[2] / "bench" / "scenes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


sc = _bench_scenes()

BOX = GtBox(0, 100.0, 200.0, 160.0, 380.0)  # x1, y1, x2, y2 in the clip's 768x576 pixels


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("views") / "box.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, sc.FULL)
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write MJPG video")
    image = np.zeros((sc.FULL[1], sc.FULL[0], 3), dtype=np.uint8)
    image[int(BOX.y1) : int(BOX.y2), int(BOX.x1) : int(BOX.x2)] = 255
    for _ in range(3):
        writer.write(image)
    writer.release()
    return path


@pytest.mark.parametrize(
    "view",
    [
        sc.Scene("plain"),
        sc.Scene("mirrored", mirror=True),
        sc.Scene("zoomed", (40, 150, 320, 240), (640, 480)),
        sc.Scene("zoomed and mirrored", (40, 150, 320, 240), (640, 480), mirror=True),
    ],
    ids=lambda v: v.name,
)
def test_the_transformed_box_covers_the_transformed_pixels(video: Path, view: Any) -> None:
    source = sc.SceneSource(view, video)
    frame = source.read()
    image = frame.image if frame is not None else None  # decoded on first use: before the source closes
    source.close()
    assert image is not None
    bright = np.argwhere(image.max(axis=2) > 128)
    (top, left), (bottom, right) = bright.min(axis=0), bright.max(axis=0) + 1
    box = view.to_scene(BOX)
    # Within two pixels (scaling blurs the edge by one); a flip of boxes without the frames is 500 px off.
    assert box.x1 == pytest.approx(left, abs=2) and box.x2 == pytest.approx(right, abs=2)
    assert box.y1 == pytest.approx(top, abs=2) and box.y2 == pytest.approx(bottom, abs=2)
    assert view.key.endswith("_mirror") == view.mirror  # cached boxes of a flipped view are its own
