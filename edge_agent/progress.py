"""Heartbeats of the agent's worker threads, for a watchdog that tests progress rather than mere life.

A thread beats each time it goes round its loop or comes back from a call that may block (a camera grab,
a network read). A thread whose last beat is old is stuck in some call: the agent stops feeding systemd's
watchdog, which then restarts it. Waits between retries beat too: retrying patiently is progress.
"""

from __future__ import annotations

import threading
import time


class Heartbeat:
    def __init__(self) -> None:
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def recent(self, stall_s: float) -> bool:
        return time.monotonic() - self.last < stall_s

    def pause(self, stop: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``stop`` is set, beating every second; True when stopping."""
        deadline = time.monotonic() + seconds
        while True:
            self.beat()
            left = deadline - self.last
            if left <= 0:
                return stop.is_set()
            if stop.wait(min(left, 1.0)):
                return True
