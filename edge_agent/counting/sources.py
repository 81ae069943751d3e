"""Frame sources behind one small interface: Pi camera, V4L2/RTSP, video files and a synthetic scene.

Live sources keep only the newest frame: when processing falls behind, older frames are dropped (and
counted) instead of queueing, so counts stay current and memory flat. A camera that disappears is reopened
with exponential backoff; its state is what health reports.
"""

from __future__ import annotations

import configparser
import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge_agent.counting.detectors import Image
from edge_agent.progress import Heartbeat
from hub_protocol.backoff import Backoff


class CameraState(StrEnum):
    """Same values as the health contract's camera states."""

    ABSENT = "absent"
    OK = "ok"
    REOPENING = "reopening"
    FAILED = "failed"


class SourceError(RuntimeError):
    """A source that cannot be opened at all (bad path or URI)."""


@dataclass
class Frame:
    index: int  # position in the source's stream, counting dropped frames too
    timestamp: float  # monotonic seconds
    _image: Image | None = None
    _retrieve: Callable[[], Image | None] | None = None

    @property
    def image(self) -> Image | None:
        """The pixels, decoded on first use: frames nobody looks at cost no colour conversion."""
        if self._image is None and self._retrieve is not None:
            self._image = self._retrieve()
            self._retrieve = None
        return self._image


class FrameSource(Protocol):
    fps: float  # nominal frames per second (for speeds and time budgets)
    frame_size: tuple[int, int] | None  # width, height once known

    def read(self) -> Frame | None:
        """The next frame; None at the end of a file or when a live source has nothing (see ``state``)."""
        ...

    @property
    def state(self) -> CameraState: ...

    @property
    def dropped(self) -> int: ...

    def close(self) -> None: ...


# Frame rates a video file or a folder of frames may state; outside this range the rate is unknown.
MAX_FPS = 240.0
DEFAULT_FPS = 10.0  # assumed where a file states no usable rate (and the user gave none)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class VideoFileSource:
    """Every frame of a video file, in order (evaluation must see all of them); decoding is lazy."""

    def __init__(self, path: str) -> None:
        self._cap = cv2.VideoCapture(path)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open video {path}")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # Some containers carry no rate or a time base (1000, 90000) instead of one: then it is unknown.
        self.fps_known = 0 < fps <= MAX_FPS
        self.fps = fps if self.fps_known else DEFAULT_FPS
        w, h = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_size: tuple[int, int] | None = (w, h) if w and h else None
        self._index = -1
        self._state = CameraState.OK

    def read(self) -> Frame | None:
        if not self._cap.grab():
            self._state = CameraState.ABSENT
            return None
        self._index += 1
        return Frame(self._index, time.monotonic(), _retrieve=self._retrieve)

    def _retrieve(self) -> Image | None:
        ok, image = self._cap.retrieve()
        return image if ok else None

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        self._cap.release()


OpenFn = Callable[[], Any]
GrabFn = Callable[[Any], Image | None]


class ImageFolderSource:
    """Every image of a folder, in the order of their names (a camera's frames saved one by one, or a
    MOTChallenge ``img1/`` folder), as a video file: same frame indices, decoded only when looked at.

    The frame rate comes from a MOTChallenge ``seqinfo.ini`` (``frameRate``) in the folder or the one above
    it; without one it is unknown (``fps_known``) and ``DEFAULT_FPS`` is assumed."""

    def __init__(self, folder: Path) -> None:
        try:
            self._files = sorted(
                (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key
            )
        except OSError as exc:
            raise SourceError(f"cannot list folder {folder}: {exc.strerror or exc}") from None
        if not self._files:
            raise SourceError(f"folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        stated = _sequence_rate(folder)
        self.fps_known = stated is not None
        self.fps = stated if stated is not None else DEFAULT_FPS
        self.frame_size: tuple[int, int] | None = None
        # Decoded at once: its size is the folder's (line points are checked against it); kept for frame 0.
        self._first: Image | None = self._load(self._files[0])
        self._index = -1

    def read(self) -> Frame | None:
        if self._index + 1 >= len(self._files):
            return None
        self._index += 1
        return Frame(self._index, time.monotonic(), _retrieve=partial(self._image, self._files[self._index]))

    def _image(self, path: Path) -> Image:
        if self._first is not None and path == self._files[0]:
            first, self._first = self._first, None
            return first
        return self._load(path)

    def _load(self, path: Path) -> Image:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot read image {path}")
        h, w = image.shape[:2]
        if self.frame_size is None:
            self.frame_size = (w, h)
        elif self.frame_size != (w, h):
            raise SourceError(
                f"image {path} is {w}x{h}, the folder's first image {self.frame_size[0]}x{self.frame_size[1]}"
            )
        return image

    @property
    def state(self) -> CameraState:
        return CameraState.OK if self._index + 1 < len(self._files) else CameraState.ABSENT

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        self._files = []
        self._first = None


def _natural_key(path: Path) -> tuple[Any, ...]:
    """frame2.jpg before frame10.jpg: digit runs (every second part of the split) compare as numbers."""
    return tuple(int(part) if odd % 2 else part for odd, part in enumerate(re.split(r"(\d+)", path.name)))


def _sequence_rate(folder: Path) -> float | None:
    """``frameRate`` of a MOTChallenge ``seqinfo.ini`` beside the frames or one folder up (None: none usable)."""
    for ini in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
        if not ini.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(ini, encoding="utf-8")
            rate = parser.getfloat("Sequence", "frameRate", fallback=0.0)
        except (configparser.Error, ValueError, UnicodeDecodeError):
            return None
        return rate if 0 < rate <= MAX_FPS else None
    return None


class LiveSource:
    """A camera read by its own thread that keeps only the newest frame, reopening it with backoff.

    ``open_fn`` returns a device handle (or raises / returns None), ``grab_fn(handle)`` returns a frame or
    None on loss, ``close_fn`` releases the handle. Used for V4L2/RTSP (cv2) and the Pi camera.
    """

    def __init__(
        self,
        open_fn: OpenFn,
        grab_fn: GrabFn,
        close_fn: Callable[[Any], None],
        fps: float = 15.0,
        backoff: Backoff | None = None,
        fail_after: int = 8,
    ) -> None:
        self.fps = fps
        self.frame_size: tuple[int, int] | None = None
        self._open_fn, self._grab_fn, self._close_fn = open_fn, grab_fn, close_fn
        self._backoff = backoff or Backoff(0.5, 30.0, jitter=False)
        self._fail_after = fail_after
        self._cond = threading.Condition()
        self._latest: Image | None = None
        self._latest_index = -1
        self._taken_index = -1
        self._dropped = 0
        self._state = CameraState.REOPENING
        self._stopping = threading.Event()
        self._heart = Heartbeat()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def progressing(self, stall_s: float) -> bool:
        """The camera thread came back from the driver within ``stall_s`` (a grab or open that blocks does not).

        A camera that is absent and being reopened is progressing: restarting the agent would not bring it
        back. A call into the driver that never returns might be cured by a fresh process."""
        return self._thread.is_alive() and self._heart.recent(stall_s)

    def _run(self) -> None:
        failures = 0
        index = -1
        while not self._stopping.is_set():
            self._heart.beat()
            handle = None
            try:
                handle = self._open_fn()
            except Exception:
                handle = None
            if handle is None:
                failures += 1
                self._set_state(CameraState.FAILED if failures >= self._fail_after else CameraState.REOPENING)
                if self._heart.pause(self._stopping, self._backoff.next_delay()):
                    break
                continue
            failures = 0
            self._backoff.reset()
            self._set_state(CameraState.OK)
            while not self._stopping.is_set():
                try:
                    image = self._grab_fn(handle)
                except Exception:
                    image = None
                self._heart.beat()
                if image is None:
                    break
                index += 1
                with self._cond:
                    if self._latest_index > self._taken_index:
                        self._dropped += 1  # the consumer never saw the previous one: skip, never queue
                    self._latest = image
                    self._latest_index = index
                    self.frame_size = (image.shape[1], image.shape[0])
                    self._cond.notify_all()
            with contextlib.suppress(Exception):  # releasing a vanished device may fail; nothing to do
                self._close_fn(handle)
            if not self._stopping.is_set():
                self._set_state(CameraState.REOPENING)

    def _set_state(self, state: CameraState) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def read(self, timeout: float = 1.0) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._latest_index > self._taken_index or self._stopping.is_set(), timeout)
            if self._latest_index <= self._taken_index or self._latest is None:
                return None
            self._taken_index = self._latest_index
            return Frame(self._latest_index, time.monotonic(), _image=self._latest)

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def dropped(self) -> int:
        return self._dropped

    def close(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)


def capture_source(
    uri: str | int, fps: float = 15.0, width: int | None = None, height: int | None = None
) -> LiveSource:
    """A USB/V4L2 camera (device number or /dev/videoN) or an RTSP/HTTP stream through cv2.VideoCapture."""

    def open_fn() -> Any:
        cap = cv2.VideoCapture(uri)
        if not cap.isOpened():
            cap.release()
            return None
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
        return cap

    def grab_fn(cap: Any) -> Image | None:
        ok, image = cap.read()
        return image if ok else None

    return LiveSource(open_fn, grab_fn, lambda cap: cap.release(), fps=fps)


def picamera_source(width: int = 640, height: int = 480, fps: float = 15.0) -> LiveSource:
    """The Pi camera through picamera2, imported only when used (it exists only on a Pi)."""

    def open_fn() -> Any:
        from picamera2 import Picamera2

        camera = Picamera2()
        config = camera.create_video_configuration(
            main={"size": (width, height), "format": "RGB888"}, controls={"FrameRate": fps}
        )
        camera.configure(config)
        camera.start()
        return camera

    def grab_fn(camera: Any) -> Image | None:
        image = camera.capture_array("main")
        return None if image is None else np.ascontiguousarray(image[:, :, :3])

    def close_fn(camera: Any) -> None:
        camera.stop()
        camera.close()

    return LiveSource(open_fn, grab_fn, close_fn, fps=fps)


# --- synthetic scenes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Walker:
    """An object moving along a polyline of (x, y) foot positions at ``speed`` pixels per frame.

    ``start`` is the frame it appears; ``height`` its box height; cyclists are wider and darker at the
    bottom. ``pauses`` maps a waypoint index to frames spent standing there (loitering).
    """

    path: Sequence[tuple[float, float]]
    start: int = 0
    speed: float = 4.0
    height: float = 60.0
    cyclist: bool = False
    colour: tuple[int, int, int] = (30, 30, 60)
    pauses: dict[int, int] = field(default_factory=dict)

    @cached_property  # the path is fixed: every rendered frame asks for it
    def _timeline(self) -> list[tuple[int, tuple[float, float], tuple[float, float]]]:
        """Segments as (frames, from, to), with pauses as zero-length segments."""
        out: list[tuple[int, tuple[float, float], tuple[float, float]]] = []
        for i in range(len(self.path) - 1):
            a, b = self.path[i], self.path[i + 1]
            if self.pauses.get(i):
                out.append((self.pauses[i], a, a))
            n = max(1, math.ceil(math.hypot(b[0] - a[0], b[1] - a[1]) / self.speed))
            out.append((n, a, b))
        return out

    @property
    def duration(self) -> int:
        return sum(n for n, _, _ in self._timeline)

    def foot(self, frame: int) -> tuple[float, float] | None:
        t = frame - self.start
        if t < 0:
            return None
        for n, a, b in self._timeline:
            if t < n:
                k = t / n
                return (a[0] + k * (b[0] - a[0]), a[1] + k * (b[1] - a[1]))
            t -= n
        return None

    def box(self, frame: int) -> tuple[float, float, float, float] | None:
        foot = self.foot(frame)
        if foot is None:
            return None
        w = self.height * (0.9 if self.cyclist else 0.4)
        return (foot[0] - w / 2, foot[1] - self.height, foot[0] + w / 2, foot[1])


@dataclass
class SyntheticScene:
    """A textured, static background with walkers drawn as filled shapes: known paths, known crossings."""

    width: int = 320
    height: int = 240
    walkers: list[Walker] = field(default_factory=list)
    seed: int = 1
    noise: float = 3.0  # sensor noise (grey levels)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        base = rng.integers(90, 170, size=(self.height // 8 + 1, self.width // 8 + 1, 3)).astype(np.uint8)
        self._background = cv2.resize(base, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        self._rng = rng

    @property
    def length(self) -> int:
        return max((w.start + w.duration for w in self.walkers), default=0)

    def boxes(self, frame: int) -> list[tuple[int, tuple[float, float, float, float]]]:
        """Ground truth: (walker index, box) of every walker visible in ``frame``."""
        out = []
        for i, walker in enumerate(self.walkers):
            box = walker.box(frame)
            if box is not None:
                out.append((i, box))
        return out

    def render(self, frame: int) -> Image:
        image = self._background.copy()
        # Draw far objects first so nearer (lower) ones occlude them, as in a real street.
        for i, box in sorted(self.boxes(frame), key=lambda item: item[1][3]):
            walker = self.walkers[i]
            x1, y1, x2, y2 = (round(v) for v in box)
            if walker.cyclist:
                cv2.rectangle(image, (x1, (y1 + y2) // 2), (x2, y2), (20, 20, 20), -1)
                cx = (x1 + x2) // 2
                quarter = (x2 - x1) // 4
                cv2.rectangle(image, (cx - quarter, y1), (cx + quarter, (y1 + y2) // 2), walker.colour, -1)
            else:
                cv2.ellipse(image, (((x1 + x2) / 2, (y1 + y2) / 2), (x2 - x1, y2 - y1), 0), walker.colour, -1)
        if self.noise > 0:
            noise = self._rng.normal(0, self.noise, size=image.shape[:2]).astype(np.int16)
            image = np.clip(image.astype(np.int16) + noise[:, :, None], 0, 255).astype(np.uint8)
        return image


class SyntheticSource:
    """Frames of a synthetic scene; with ``realtime`` it paces itself to ``fps`` like a camera would."""

    def __init__(self, scene: SyntheticScene, fps: float = 10.0, realtime: bool = False, loop: bool = False) -> None:
        self.scene = scene
        self.fps = fps
        self.frame_size: tuple[int, int] | None = (scene.width, scene.height)
        self._realtime = realtime
        self._loop = loop
        self._index = -1
        self._next_time = time.monotonic()

    def read(self) -> Frame | None:
        if self._realtime:
            delay = self._next_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_time = max(self._next_time + 1 / self.fps, time.monotonic() - 1.0)
        self._index += 1
        length = self.scene.length
        frame_in_scene = self._index % length if self._loop and length else self._index
        if not self._loop and self._index >= length:
            return None
        scene = self.scene
        return Frame(self._index, time.monotonic(), _retrieve=lambda: scene.render(frame_in_scene))

    @property
    def state(self) -> CameraState:
        return CameraState.OK

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        pass


def demo_scene(width: int = 320, height: int = 240, fps: float = 10.0, seed: int = 7) -> SyntheticScene:
    """A loopable street: pedestrians (0.8 body heights per second) and cyclists (3.5) walking and riding
    up and down the whole image in six lanes, so any line across it gets crossings both ways and people
    in different lanes never merge into one moving blob (the demo should count what it shows)."""
    rng = np.random.default_rng(seed)
    walkers: list[Walker] = []
    t = 0
    lanes = [width * (0.15 + 0.14 * i) for i in range(6)]
    for k in range(24):
        cyclist = k % 4 == 3
        downwards = rng.random() < 0.5
        x = lanes[(k * 5) % len(lanes)]  # a lane is used again only after five others
        top, bottom = 0.25 * height, 0.98 * height
        path = [(x, top), (x + rng.uniform(-0.02, 0.02) * width, bottom)]
        if not downwards:
            path.reverse()
        walkers.append(
            Walker(
                path=path,
                start=t,
                speed=(3.5 if cyclist else 0.8) * 0.25 * height / fps,
                height=0.25 * height,
                cyclist=cyclist,
                colour=(int(rng.integers(0, 60)), int(rng.integers(0, 60)), int(rng.integers(0, 60))),
            )
        )
        t += int(rng.integers(2, 6) * fps)
    return SyntheticScene(width=width, height=height, walkers=walkers, seed=seed)
