"""Health telemetry: figures an operator needs to trust a device, sampled every interval.

Health is not an event: only the latest sample matters, so it goes straight to MQTT (QoS 1, not retained)
and is dropped while offline instead of filling the outbox.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.privacy.quality import published_load
from edge_agent.transport.outbox import OutboxStats
from hub_protocol.envelope import CameraState, Health

CameraStats = tuple[CameraState, float]
CameraStatsProvider = Callable[[], CameraStats]
"""Returns the camera's state and the frames per second it delivered; absent when the device counts nothing."""

THERMAL_ROOT = Path("/sys/class/thermal")
MEMINFO = Path("/proc/meminfo")


def cpu_temperature(root: Path = THERMAL_ROOT) -> float | None:
    """Degrees Celsius of the CPU zone (or the first zone), None where the board has no sensor."""
    zones = sorted(root.glob("thermal_zone*"))
    preferred = [z for z in zones if "cpu" in _read(z / "type").lower()] or zones
    for zone in preferred:
        raw = _read(zone / "temp")
        try:
            value = int(raw) / 1000.0
        except ValueError:
            continue
        if -60 <= value <= 150:
            return round(value, 1)
    return None


def memory_used_fraction(meminfo: Path = MEMINFO) -> float:
    fields: dict[str, int] = {}
    for line in _read(meminfo).splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    total = fields.get("MemTotal", 0)
    available = fields.get("MemAvailable", fields.get("MemFree", total))
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, 1.0 - available / total))


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class HealthSampler:
    def __init__(
        self,
        device: str,
        boot: str,
        version: str,
        state_dir: Path,
        outbox_stats: Callable[[], OutboxStats],
        camera: CameraStatsProvider | None = None,
        *,
        thermal_root: Path = THERMAL_ROOT,
        disk_full: Callable[[], bool] | None = None,
    ) -> None:
        self.clock_sync: Callable[[], str] | None = None
        """Set by the agent when it counts: the clock's state, which decides whether flow windows open."""
        self.device = device
        self.boot = boot
        self.version = version[:32]
        self.state_dir = state_dir
        self.outbox_stats = outbox_stats
        self.camera = camera
        self.thermal_root = thermal_root
        self.disk_full = disk_full
        self._started = time.monotonic()

    def sample(self) -> Health:
        outbox = self.outbox_stats()
        state, fps = self.camera() if self.camera else (CameraState.ABSENT, 0.0)
        try:
            disk_free = shutil.disk_usage(self.state_dir).free
        except OSError:
            disk_free = 0
        return Health(
            device=self.device,
            boot=self.boot,
            # Times in whole seconds: their fractions would show how late the sampling tick woke, which grows
            # while the counter works on people in view (docs/privacy.md, second round).
            at=datetime.now(UTC).replace(microsecond=0),
            uptime_s=float(round(time.monotonic() - self._started)),
            version=self.version,
            cpu_temp_c=cpu_temperature(self.thermal_root),
            load1=published_load(os.getloadavg()[2]),
            mem_used_fraction=round(memory_used_fraction(), 3),
            disk_free_bytes=disk_free,
            disk_full=self.disk_full() if self.disk_full else False,
            outbox_depth=outbox.depth,
            outbox_oldest_age_s=float(round(outbox.oldest_age_s)),
            dropped_total=outbox.dropped_total,
            camera_state=state,
            fps=round(max(0.0, fps), 2),
            clock_sync=self.clock_sync() if self.clock_sync is not None else None,
        )
