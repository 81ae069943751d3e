"""The kiosk in headless Chromium: keyboard only, the on-screen keypad, live door guidance, accessibility."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.lockers.kiosk.server import KioskServer
from tests.lockers.conftest import Rig

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TOUCHSCREEN = {"width": 800, "height": 480}  # the official 7" display

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (install Debian's chromium)"),
]

sync_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")
expect = sync_api.expect


@pytest.fixture
def kiosk(make_rig: Callable[..., Rig]) -> Iterator[tuple[Rig, str]]:
    rig = make_rig()
    server = KioskServer(rig.bank, "127.0.0.1", 0, "en")
    server.start()
    yield rig, f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport=TOUCHSCREEN, reduced_motion="reduce")
        page = context.new_page()
        page.set_default_timeout(10_000)
        yield page
        browser.close()


def check_accessibility(page: Any, name: str) -> None:
    options = {
        "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
        "resultTypes": ["violations"],
    }
    results = axe_api.Axe().run(page, options=options)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, f"{name}: " + "; ".join(f"{v['id']}: {v['help']}" for v in serious)


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"kiosk-{name}.png"), full_page=True)


def test_keyboard_only_dropoff_with_live_guidance(kiosk: tuple[Rig, str], page: Any) -> None:
    rig, url = kiosk
    rig.reserve(1, "parcel-1", "dropoff", "48291305")
    page.goto(f"{url}/?lang=en")
    check_accessibility(page, "form")
    shoot(page, "form")
    expect(page.get_by_label("Code (6 to 12 digits)")).to_be_focused()  # autofocus: type straight away
    page.keyboard.type("48291305")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Compartment 1 is open")).to_be_visible()
    status = page.locator("#door-status")
    expect(status).to_have_text("Waiting for the door to be closed.")
    check_accessibility(page, "opened")
    shoot(page, "opened")
    rig.doors.set_door(1, closed=False)
    expect(status).to_have_text("The door is open. Close it when you are done.")
    rig.doors.set_door(1, closed=True)
    expect(status).to_have_text("Thank you. The door is closed.")


def test_on_screen_keypad_and_wrong_code_in_dutch(kiosk: tuple[Rig, str], page: Any) -> None:
    _, url = kiosk
    page.goto(f"{url}/?lang=nl")
    for key in "123456":
        page.locator(f'#keys button[data-key="{key}"]').click()
    page.get_by_role("button", name="Laatste cijfer weg").click()
    expect(page.get_by_label("Code (6 tot 12 cijfers)")).to_have_value("12345")
    page.locator('#keys button[data-key="9"]').click()
    page.get_by_role("button", name="Openen").click()
    expect(page.get_by_role("alert")).to_contain_text("Die code klopt niet")
    check_accessibility(page, "wrong-nl")
    shoot(page, "wrong-nl")
    page.get_by_role("link", name="Deutsch").click()
    expect(page.get_by_role("heading", name="Code eingeben")).to_be_visible()
