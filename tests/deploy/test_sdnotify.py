"""The sd_notify client speaks the real datagram protocol, to a path and to an abstract socket."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.deploy.sdnotify import SystemdNotifier


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
        env_value = address
    else:
        name = f"edge-agent-test-{secrets.token_hex(4)}"
        sock.bind("\0" + name)
        env_value = "@" + name
    sock.settimeout(2)
    yield sock, env_value
    sock.close()


def test_messages_reach_systemd(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready("counting on 2 lines")
    assert sock.recv(4096) == b"READY=1\nSTATUS=counting on 2 lines"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.status("broker\nlost")  # a newline would start a second assignment
    assert sock.recv(4096) == b"STATUS=broker lost"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.watchdog() and not notifier.stopping()
    assert notifier.watchdog_interval_s is None and not notifier.watchdog_due()


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert not SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready()


def test_watchdog_interval_is_half_the_timeout() -> None:
    mine = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier(mine)
    assert notifier.watchdog_interval_s == 10
    assert notifier.watchdog_due()  # never fed yet
    notifier.watchdog()  # the socket does not exist: still counts as an attempt
    assert not notifier.watchdog_due()
    # A watchdog meant for another process (e.g. the parent) is not ours to feed.
    assert SystemdNotifier({**mine, "WATCHDOG_PID": "1"}).watchdog_interval_s is None
    assert SystemdNotifier({**mine, "WATCHDOG_USEC": "junk"}).watchdog_interval_s is None
