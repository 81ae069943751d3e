"""The setup page in headless Chromium without a mouse: keyboard only, then a finger on a touchscreen, in
Dutch, on an agent counting its synthetic street (no ../shared needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_agent_config
from edge_agent.deploy.service import ServiceLifecycle
from edge_agent.setup.access import open_setup
from hub_server.fleet.broker import free_port
from tests.conftest import BrokerSetup, wait_for
from tests.web.setup_agent import Service, agent_toml
from tests.web.test_browser import ARGS, CHROMIUM, check_accessibility

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (install Debian's chromium)"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

DEVICE = "cam-keys"
WIDTH, HEIGHT = 640, 480  # the synthetic street


@pytest.fixture
def agent(tmp_path: Path, make_broker: Any) -> Iterator[tuple[Service, str, Path]]:
    broker: BrokerSetup = make_broker(devices=(DEVICE,))
    folder = tmp_path / "agent"
    folder.mkdir()
    port = free_port()
    installed = folder / "agent.toml"
    installed.write_text(agent_toml(broker, folder, DEVICE, "synthetic", port, language="nl"))
    service = Service(installed)
    service.start()
    try:
        yield service, f"http://127.0.0.1:{port}", installed
    finally:
        service.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(
            viewport={"width": 800, "height": 900}, has_touch=True, reduced_motion="reduce", locale="nl-NL"
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def press(page: Any, key: str, times: int = 1) -> None:
    for _ in range(times):
        page.keyboard.press(key)


def swipe(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger on the picture (image pixels), as the touchscreen reports it: touch events, not a mouse."""
    page.locator("#overlay").scroll_into_view_if_needed()
    box = page.locator("#overlay").bounding_box()

    def screen(x: float, y: float) -> dict[str, float]:
        return {"x": box["x"] + x * box["width"] / WIDTH, "y": box["y"] + y * box["height"] / HEIGHT}

    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [screen(*start)]})
    for k in range(1, 6):
        x = start[0] + (end[0] - start[0]) * k / 5
        y = start[1] + (end[1] - start[1]) * k / 5
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [screen(x, y)]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_keyboard_and_touch_in_dutch(agent: tuple[Service, str, Path], page: Any) -> None:
    service, url, installed = agent
    code = open_setup(Path(load_agent_config(installed).device.state_dir), 600)
    wait_for(lambda: service.agents[-1].setup.server, timeout=15, what="the setup page to open")  # type: ignore[union-attr]

    page.goto(f"{url}/setup")
    expect(page.get_by_label("Instelcode")).to_be_focused()  # autofocus: type straight away
    page.keyboard.type(code or "")
    press(page, "Enter")
    page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
    expect(page.get_by_role("heading", name="Tellijnen")).to_be_visible()
    check_accessibility(page, "setup-nl")

    # Keyboard only: Tab to "Lijn toevoegen", then name, coordinates and reverse by keys.
    add = page.get_by_role("button", name="Lijn toevoegen")
    for _ in range(40):
        press(page, "Tab")
        if add.evaluate("b => b === document.activeElement"):
            break
    expect(add).to_be_focused()
    press(page, "Enter")
    name = page.locator("#line-1-name")
    expect(name).to_be_focused()
    press(page, "Control+A")
    page.keyboard.type("stoep")
    for value in ("100", "400", "540", "400"):
        press(page, "Tab")
        press(page, "Control+A")
        page.keyboard.type(value)
    press(page, "Tab")
    expect(
        page.get_by_role("group", name="Lijn stoep").get_by_role("button", name="Omdraaien (in en uit wisselen)")
    ).to_be_focused()
    press(page, "Enter")  # reverse: B becomes A
    expect(page.locator("#line-1-p0")).to_have_value("540")
    expect(page.locator("#line-1-p2")).to_have_value("100")

    # A finger draws a third line.
    swipe(page, (600, 50), (600, 300))
    expect(page.locator("#line-2-name")).to_have_value("line-1")
    touched = [float(page.locator(f"#line-2-p{k}").input_value()) for k in range(4)]
    assert touched == pytest.approx([600, 50, 600, 300], abs=3)
    check_accessibility(page, "setup-nl-lines")

    before = page.locator("body").get_attribute("data-instance") or ""
    save = page.get_by_role("button", name="Lijnen opslaan")
    save.focus()
    press(page, "Enter")
    expect(page.locator("#save-status")).to_contain_text("Opgeslagen.")
    wait_for(lambda: len(service.agents) >= 2, timeout=60, what="the restart with the saved lines")
    saved = load_agent_config(ServiceLifecycle(installed).store.active_path())
    assert saved.counting is not None
    assert [(ln.name, ln.points) for ln in saved.counting.lines[:2]] == [
        ("v-left", [256.0, 0.0, 256.0, 480.0]),
        ("stoep", [540.0, 400.0, 100.0, 400.0]),
    ]
    assert saved.counting.lines[2].name == "line-1"

    # After the restart the page shows what the agent runs with; a bad name is refused before saving.
    expect(page.locator("body")).not_to_have_attribute("data-instance", before, timeout=60_000)
    expect(page.locator("#line-1-name")).to_have_value("stoep")
    page.locator("#line-2-name").fill("Lijn met spaties")
    save.focus()
    press(page, "Enter")
    expect(page.locator("#save-status")).to_contain_text("Niet opgeslagen")
