"""The systemd notification protocol (sd_notify): one datagram to ``$NOTIFY_SOCKET``, no library needed.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a cheap no-op, so the agent calls it unconditionally.
"""

from __future__ import annotations

import os
import socket
import time


class SystemdNotifier:
    """Tells systemd the agent is ready, alive (watchdog), stopping, and what it is doing."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_s = _watchdog_seconds(env)
        self._last_watchdog = 0.0

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """Half the unit's WatchdogSec (systemd's advice), or None when no watchdog is configured."""
        return None if self._watchdog_s is None else self._watchdog_s / 2

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` lines; False when not under systemd or the socket is gone (never raises)."""
        if self._address is None or not assignments:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *_status(status))

    def watchdog(self) -> bool:
        """Feed the watchdog; call it from the main loop only, so a stuck loop gets the agent restarted."""
        self._last_watchdog = time.monotonic()
        return self.notify("WATCHDOG=1")

    def watchdog_due(self) -> bool:
        """True when the next ``watchdog()`` is due (lets a fast loop skip most datagrams)."""
        interval = self.watchdog_interval_s
        return interval is not None and time.monotonic() - self._last_watchdog >= interval

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status(status))


def _status(text: str | None) -> list[str]:
    # One line only: a newline would start another assignment.
    return [] if text is None else ["STATUS=" + " ".join(text.split())[:200]]


def _socket_address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]  # Linux abstract namespace
    if value.startswith("/"):
        return value
    return None


def _watchdog_seconds(env: dict[str, str] | os._Environ[str]) -> float | None:
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    # WATCHDOG_PID names the process meant to feed it; a child process must not.
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000
