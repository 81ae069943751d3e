"""Timed steps and the checks' results, printed as they happen; the JSON summary at the end."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
EXPOSURE_TARGET = 3.0


NSPAWN_TOOLS = ("systemd-nspawn", "debootstrap", "nsenter")


def skip_reason(tools: tuple[str, ...] = NSPAWN_TOOLS) -> str:
    """Why this host cannot run the system test, or "" when it can."""
    if os.geteuid() != 0:
        return "needs root (it boots a Debian system in a container or VM and installs into it)"
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found: install with scripts/system-deps.sh (--system-test or --pi-vm)"
    return ""


class Steps:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.failures: list[str] = []
        self.units: dict[str, str] = {}
        self.window_at_hub = False
        self.watchdog_restarted = False
        self.reboot_survived = False
        self.exposure: dict[str, float | None] = {"edge-agent": None, "hub-server": None}
        self.info: dict[str, Any] = {}
        self.times: dict[str, float] = {}

    def timed(self, name: str, action: Callable[[], T]) -> T:
        print(f"-- {name} ...", flush=True)
        start = time.monotonic()
        try:
            return action()
        finally:
            took = time.monotonic() - start
            self.times[name] = round(took, 1)
            print(f"   {name}: {took:.1f} s", flush=True)

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        print(f"   {'PASS' if ok else 'FAIL'} {what}{f': {detail}' if detail else ''}", flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def fail(self, reason: str) -> None:
        print(f"   FAIL {reason}", flush=True)
        self.failures.append(reason)

    def passed(self) -> bool:
        exposure_ok = all(x is not None and x <= EXPOSURE_TARGET for x in self.exposure.values())
        units_ok = bool(self.units) and all(state == "active" for state in self.units.values())
        flags = self.window_at_hub and self.watchdog_restarted and self.reboot_survived
        return not self.failures and exposure_ok and units_ok and flags

    def result(self, arch: str) -> dict[str, Any]:
        return {
            "arch": arch,
            "units": self.units,
            "window_at_hub": self.window_at_hub,
            "watchdog_restarted": self.watchdog_restarted,
            "reboot_survived": self.reboot_survived,
            "exposure": self.exposure,
            **self.info,
            "seconds": {**self.times, "total": round(time.monotonic() - self.started, 1)},
            "failures": self.failures,
        }
