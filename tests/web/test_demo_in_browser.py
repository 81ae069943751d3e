"""The demo as an operator sees it, in Chromium: every page with live data from the real agents.

Unlike the other browser tests, whose devices are MQTT clients speaking the contract, these devices are
real ``edge-agent run`` processes started by ``hub-server demo``; stopping one must show it offline live.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from hub_server.fleet.broker import free_port
from tests.web.test_browser import ARGS, CHROMIUM, check_accessibility, shoot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (install Debian's chromium)"),
]
LOGIN = re.compile(r"Operator login: (\S+) / (\S+)")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str, str, Path, subprocess.Popen[str]]]:
    state = tmp_path / "demo"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hub_server.cli", "demo", "--port", str(port), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    user = password = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and user is None:
        line = process.stdout.readline()
        if not line:
            break
        if match := LOGIN.search(line):
            user, password = match.groups()
    assert user is not None and password is not None, "the demo printed no operator login"
    yield f"http://127.0.0.1:{port}", user, password, state, process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def _agent_pid(state: Path, device: str) -> int:
    config = state / "provisioned" / device / "agent.toml"
    found = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True, check=False)
    pids = [int(p) for p in found.stdout.split()]
    assert len(pids) == 1, f"expected one agent process for {device}, found {pids}"
    return pids[0]


def test_demo_pages_show_live_data_and_a_stopped_agent_goes_offline(demo: Any) -> None:
    url, user, password, state, process = demo
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        page: Any = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{url}/login?lang=en")
        page.get_by_label("User name").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/dashboard*")
        expect(page.locator('[data-live="online-count"]')).to_have_text("2/2", timeout=60_000)
        shoot(page, "demo-fleet")

        lockers = context.new_page()
        lockers.goto(f"{url}/dashboard/lockers?lang=en")
        expect(lockers.locator('[data-live^="comp-hub-locker-"][data-live$="-box"]')).to_have_count(6)
        check_accessibility(lockers, "demo-lockers")
        shoot(lockers, "demo-lockers")

        deliveries = context.new_page()
        for _ in range(30):  # the scripted courier's first delivery follows within seconds
            deliveries.goto(f"{url}/dashboard/deliveries?lang=en")
            if deliveries.locator("table.cards tbody tr").count() > 0:
                break
            time.sleep(2)
        assert deliveries.locator("table.cards tbody tr").count() > 0, "no delivery appeared in the demo"
        shoot(deliveries, "demo-deliveries")

        sensors = context.new_page()
        sensors.goto(f"{url}/sensors?lang=en")
        body = sensors.locator("main").inner_text()
        assert "corner-camera" in body and "hub-locker" in body
        shoot(sensors, "demo-sensors")

        page.wait_for_selector("html[data-live-ready]", state="attached")
        status = page.locator('[data-live="status-corner-camera"]')
        assert status.inner_text() == "online"
        os.kill(_agent_pid(state, "corner-camera"), signal.SIGTERM)  # a clean stop: the agent says offline
        expect(status).to_have_text("offline", timeout=30_000)
        expect(page.locator('[data-live="online-count"]')).to_have_text("1/2")
        shoot(page, "demo-fleet-offline")
        browser.close()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, "the demo reported errors after a clean agent stop"
