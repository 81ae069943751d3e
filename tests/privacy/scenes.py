"""Synthetic street videos for the privacy tests (written here, in tests/, and only into pytest's tmp_path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 320, 240
PERSON = (30, 30, 30)
PERSON_W, PERSON_H = 20, 60
PERSON_Y = 120  # top of the box; the person walks left to right across the whole width


def background() -> np.ndarray:
    """A textured, static street: a vertical grey gradient with a light kerb and two dark windows."""
    ramp = np.linspace(120, 200, HEIGHT, dtype=np.float32)[:, None]
    image = np.repeat(np.repeat(ramp, WIDTH, axis=1)[:, :, None], 3, axis=2).astype(np.uint8)
    image[200:210, :] = (210, 210, 210)
    image[20:60, 40:90] = (70, 90, 110)
    image[20:60, 230:280] = (70, 90, 110)
    return image


def person_x(frame: int) -> int:
    return (frame * 8) % (WIDTH + PERSON_W) - PERSON_W


def write_street_video(path: Path, frames: int, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    base = background()
    for i in range(frames):
        image = base.copy()
        x = person_x(i)
        image[PERSON_Y : PERSON_Y + PERSON_H, max(0, x) : max(0, x + PERSON_W)] = PERSON
        writer.write(image)
    writer.release()
    return path
