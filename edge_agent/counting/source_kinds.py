"""What a counting source string names, and the frame size the config sets for it (no OpenCV, no pydantic:
the config, the factory and the runner share it)."""

from __future__ import annotations

# The generated demo street is drawn at most this large, whatever size is asked for.
SYNTHETIC_MAX = (640, 480)


def is_device(source: str) -> bool:
    return source.isdigit() or source.startswith("/dev/video")


def is_file_source(source: str) -> bool:
    return source not in ("picamera", "synthetic") and "://" not in source and not is_device(source)


def synthetic_size(width: int, height: int) -> tuple[int, int]:
    return (min(width, SYNTHETIC_MAX[0]), min(height, SYNTHETIC_MAX[1]))


def configured_frame_size(source: str, width: int, height: int) -> tuple[int, int] | None:
    """The frame size where the config sets it: a camera delivers what is asked, the synthetic street at most
    ``SYNTHETIC_MAX``; a file or stream has its own, known only when opened."""
    if source == "synthetic":
        return synthetic_size(width, height)
    if source == "picamera" or is_device(source):
        return (width, height)
    return None
