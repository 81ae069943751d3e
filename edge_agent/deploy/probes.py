"""The doctor's windows on the machine: clock, camera, GPIO. Small interfaces, so tests can pass fakes."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import time
import warnings
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class ClockState:
    synchronized: bool | None
    """True/False as the system reports it; None when it cannot be told."""
    source: str
    detail: str = ""


class ClockProbe(Protocol):
    def read(self) -> ClockState: ...


# adjtimex(2) returns TIME_ERROR while the kernel's clock is not disciplined by NTP.
_TIME_ERROR = 5
_TIMEX_BUFFER = 512  # larger than struct timex on every Linux ABI; modes = 0 (first field) only reads


class SystemClock:
    """Asks ``timedatectl`` first (systemd-timesyncd, chrony), else the kernel through ``adjtimex``."""

    def read(self) -> ClockState:
        state = self._timedatectl()
        return state if state is not None else self._adjtimex()

    @staticmethod
    def _timedatectl() -> ClockState | None:
        try:
            done = subprocess.run(
                ["timedatectl", "show", "--property=NTPSynchronized", "--property=NTP"],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        if done.returncode != 0 or "NTPSynchronized" not in values:
            return None
        ntp = values.get("NTP", "unknown")
        return ClockState(values["NTPSynchronized"] == "yes", "timedatectl", f"NTP service enabled: {ntp}")

    @staticmethod
    def _adjtimex() -> ClockState:
        name = ctypes.util.find_library("c")
        if name is None:
            return ClockState(None, "adjtimex", "C library not found")
        buffer = ctypes.create_string_buffer(_TIMEX_BUFFER)
        result = int(ctypes.CDLL(name, use_errno=True).adjtimex(buffer))
        if result < 0:
            return ClockState(None, "adjtimex", f"adjtimex failed (errno {ctypes.get_errno()})")
        return ClockState(result != _TIME_ERROR, "adjtimex", f"kernel clock state {result}")


@dataclass(frozen=True)
class CameraReading:
    opened: bool
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    width: int = 0
    height: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class CameraProbe(Protocol):
    def measure(self, source: str, frames: int, timeout_s: float) -> CameraReading:
        """Open ``source``, read up to ``frames`` frames within ``timeout_s``, close it. Never keeps a frame."""
        ...


class OpenCvCamera:
    """USB/V4L2 devices (a number or /dev/videoN), RTSP/HTTP URLs and files through cv2.VideoCapture."""

    def measure(self, source: str, frames: int, timeout_s: float) -> CameraReading:
        import cv2  # heavy import, only when the camera is checked

        target: int | str = int(source) if source.isdigit() else source
        capture = cv2.VideoCapture(target)
        try:
            if not capture.isOpened():
                return CameraReading(False, error="the source could not be opened")
            start = time.monotonic()
            count = width = height = 0
            while count < frames and time.monotonic() - start < timeout_s:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                count += 1
                height, width = frame.shape[:2]
                del frame  # only its size is kept
            seconds = time.monotonic() - start
            if count == 0:
                return CameraReading(False, error="opened, but no frame could be read")
            return CameraReading(True, count, seconds, width=width, height=height)
        finally:
            capture.release()


class CountingCamera:
    """The agent's own frame sources (Pi camera, V4L2, RTSP, file, synthetic), built from its [counting] section."""

    def __init__(self, counting: Any) -> None:
        self._counting = counting

    def measure(self, source: str, frames: int, timeout_s: float) -> CameraReading:
        from edge_agent.counting.factory import open_source
        from edge_agent.counting.sources import CameraState, SourceError

        try:
            camera = open_source(self._counting.model_copy(update={"source": source}))
        except (SourceError, OSError, ImportError) as exc:
            return CameraReading(False, error=str(exc))
        try:
            start = time.monotonic()
            count = 0
            while count < frames and time.monotonic() - start < timeout_s:
                if camera.read() is not None:
                    count += 1
                elif camera.state not in (CameraState.OK, CameraState.REOPENING):
                    break  # end of a file, or a camera given up on
            seconds = time.monotonic() - start
            if count == 0:
                state = camera.state.value
                return CameraReading(False, error=f"no frame within {timeout_s:g} s (camera {state})")
            width, height = camera.frame_size or (0, 0)
            return CameraReading(True, count, seconds, width=width, height=height)
        finally:
            camera.close()


@dataclass(frozen=True)
class PinFactoryState:
    name: str | None
    """Class name of the pin factory gpiozero loaded, or None when none loads."""
    detail: str = ""

    @property
    def is_mock(self) -> bool:
        return self.name is not None and "Mock" in self.name


class PinFactoryProbe(Protocol):
    def load(self) -> PinFactoryState: ...


class GpiozeroPins:
    """Loads gpiozero's default pin factory, the one the locker bank would get (honours GPIOZERO_PIN_FACTORY)."""

    def load(self) -> PinFactoryState:
        from gpiozero import Device
        from gpiozero.exc import BadPinFactory

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                Device.ensure_pin_factory()
            except BadPinFactory as exc:
                tried = "; ".join(str(w.message) for w in caught)
                return PinFactoryState(None, f"{exc} ({tried})" if tried else str(exc))
        factory: Any = Device.pin_factory
        return PinFactoryState(type(factory).__name__)
