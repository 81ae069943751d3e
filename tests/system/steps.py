"""Timed steps and the checks' results, printed as they happen; the JSON summary at the end."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

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


class Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


def close_run(steps: Steps, system: Stoppable | None, work: Path, keep: bool) -> None:
    """Stop the system, keep its log beside the run's folder as *-last.log, remove the folder unless kept."""
    if system is not None:
        steps.timed("shut down", system.stop)
    last_log = work.parent / f"{work.name.rsplit('-', 1)[0]}-last.log"
    shutil.copy(work / "log.txt", last_log)
    print(f"log: {last_log}")
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def begin(name: str, description: str, arch: str, tools: tuple[str, ...]) -> tuple[Path, bool] | int:
    """Parse --keep and make the run's folder; or, when this host cannot run the test, the exit status of a skip."""
    parser = argparse.ArgumentParser(prog=f"make {name}", description=description)
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (system, logs) afterwards")
    keep = parser.parse_args().keep
    reason = skip_reason(tools)
    if reason:
        print(f"{name} SKIPPED: {reason}")
        print(json.dumps({"arch": arch, "skipped": reason}))
        return 1 if os.environ.get("SYSTEM_TEST_REQUIRED") == "1" else 0
    work = Path(tempfile.mkdtemp(prefix=f"nh-{name}-", dir=os.environ.get("SYSTEM_TEST_WORK", "/var/tmp")))
    print(f"{name} on {arch}: log in {work / 'log.txt'}", flush=True)
    return work, keep
