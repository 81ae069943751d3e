"""The technician's setup page in headless Chromium, on a real agent counting the PETS clip and a real hub.

Draw a line on the learned background, rename and reverse it, save: the agent's config changes (through the
config store, on trial), the agent restarts with it and the live tally of the new line moves while it counts
the shared video. Then a validation with scripted taps: the record reaches the hub's pages. Along the way:
axe-core finds no serious violation, every MQTT message the device sends decodes as a contract payload with
no picture in it, the page talks to the agent only, and no picture is written to disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge_agent.config import load_agent_config
from edge_agent.deploy.config_update import RESTART_EXIT_CODE
from edge_agent.deploy.service import ServiceLifecycle
from hub_protocol.codec import decode
from hub_protocol.topics import Channel, parse_topic
from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.fleet.broker import free_port
from hub_server.store import accounts
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, shared_path, wait_for, write_secret
from tests.hub.conftest import hub_config_data
from tests.hub.mqtt_probe import Probe
from tests.web.harness import RunningHub
from tests.web.setup_agent import Service, agent_toml
from tests.web.test_browser import ARGS, CHROMIUM, PASSWORD, check_accessibility

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.shared,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (install Debian's chromium)"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

DEVICE = "cam-setup"
WIDTH, HEIGHT = 768, 576  # the PETS clip
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"iVBORw0KGgo", b"/9j/")  # PNG and JPEG, raw and base64


@pytest.fixture
def world(tmp_path: Path, make_broker: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    video = shared_path("data", "pets09-s2l1", "vtest.avi")
    written: list[str] = []
    real_imwrite = cv2.imwrite

    def spy(path: str, *args: Any, **kwargs: Any) -> bool:
        written.append(str(path))
        return bool(real_imwrite(path, *args, **kwargs))

    monkeypatch.setattr(cv2, "imwrite", spy)
    broker: BrokerSetup = make_broker(devices=(DEVICE,))
    wire = Probe(broker.host, broker.port, broker.hub_user, broker.hub_password)  # sees all the devices send
    assert wire.connect()
    wire.subscribe(f"{broker.prefix}/v1/#")
    data = hub_config_data(tmp_path / "hub", mqtt={"port": broker.port, "prefix": broker.prefix})
    data["ingest"] = {"writer_process": False, "client_id": "hub-setup-e2e"}
    write_secret(Path(data["mqtt"]["password_file"]), broker.hub_password)
    config = HubConfig.model_validate(data)
    db = Database(config.store.location)
    with db.write() as conn:
        accounts.add_user(conn, "olga", Role.OPERATOR, PASSWORD)
    hub = RunningHub(create_app(config, database=db))
    hub.start()
    folder = tmp_path / "agent"
    folder.mkdir()
    setup_port = free_port()
    installed = folder / "agent.toml"
    installed.write_text(agent_toml(broker, folder, DEVICE, str(video), setup_port))
    service = Service(installed)
    service.start()
    try:
        yield {
            "hub": hub,
            "service": service,
            "installed": installed,
            "state_dir": folder / "state",
            "setup_url": f"http://127.0.0.1:{setup_port}",
            "wire": wire,
            "written": written,
            "tmp": tmp_path,
        }
    finally:
        service.stop()
        wire.close()
        hub.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1024, "height": 1400}, reduced_motion="reduce")
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()


def tally_of(page: Any, line: str) -> int:
    cells = page.locator(f'#tally td[data-line="{line}"]')
    if cells.count() != 2:
        return -1
    return sum(int(cells.nth(i).inner_text()) for i in range(2))


def to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#overlay").bounding_box()
    return box["x"] + x * box["width"] / WIDTH, box["y"] + y * box["height"] / HEIGHT


def test_draw_reverse_save_tally_and_validate(world: dict[str, Any], page: Any) -> None:
    url, hub = world["setup_url"], world["hub"]
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    # The operator opens the page from the hub's device page, which shows the one-time code once.
    page.goto(f"{hub.url}/login?next=/dashboard/devices/{DEVICE}&lang=en")
    page.get_by_label("User name").fill("olga")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    open_button = page.get_by_role("button", name="Open the setup page on the device (30 minutes)")

    def button_shown() -> bool:
        page.goto(f"{hub.url}/dashboard/devices/{DEVICE}?lang=en")
        return open_button.count() == 1

    wait_for(button_shown, timeout=30, what="the device page with its setup button")
    expect(page.locator(f"#validation-{DEVICE}")).to_contain_text("Never validated by hand")
    open_button.click()
    code = page.locator("#setup-code").inner_text()
    check_accessibility(page, "hub-setup-code")
    wait_for(lambda: world["service"].agents[-1].setup.server, timeout=15, what="the setup page to open")
    requests.clear()  # from here on: what the setup page asks for

    page.goto(f"{url}/setup?lang=en")
    page.get_by_label("Setup code").fill(code)
    page.get_by_role("button", name="Open setup").click()
    page.wait_for_selector("body[data-ready]", state="attached", timeout=60_000)
    expect(page.get_by_role("img", name=re.compile("Learned background"))).to_be_visible()
    check_accessibility(page, "setup")
    first_instance = page.locator("body").get_attribute("data-instance")

    # Draw with the mouse: from top to bottom across the middle of the square.
    page.mouse.move(*to_screen(page, 384, 40))
    page.mouse.down()
    page.mouse.move(*to_screen(page, 384, 300), steps=5)
    page.mouse.move(*to_screen(page, 384, 540), steps=5)
    page.mouse.up()
    name = page.locator("#line-1-name")
    expect(name).to_have_value("line-1")

    def points() -> list[float]:
        return [float(page.locator(f"#line-1-p{k}").input_value()) for k in range(4)]

    assert points() == pytest.approx([384, 40, 384, 540], abs=3)
    # Move an end by its dot, then the whole line by its body.
    page.mouse.move(*to_screen(page, 384, 540))
    page.mouse.down()
    page.mouse.move(*to_screen(page, 400, 520), steps=4)
    page.mouse.up()
    assert points() == pytest.approx([384, 40, 400, 520], abs=3)
    page.mouse.move(*to_screen(page, 392, 280))
    page.mouse.down()
    page.mouse.move(*to_screen(page, 376, 300), steps=4)
    page.mouse.up()
    drawn = points()
    assert drawn == pytest.approx([368, 60, 384, 540], abs=3)
    name.fill("drawn")
    expect(page.get_by_role("group", name="Line drawn")).to_be_visible()
    page.get_by_role("group", name="Line drawn").get_by_role("button", name="Reverse (swap in and out)").click()
    reversed_points = [float(page.locator(f"#line-1-p{k}").input_value()) for k in range(4)]
    assert reversed_points == [drawn[2], drawn[3], drawn[0], drawn[1]]
    assert page.locator("#overlay g.line .in-arrow").count() == 2, "each line shows which side is in"
    check_accessibility(page, "setup-drawn")

    page.get_by_role("button", name="Save lines").click()
    expect(page.locator("#save-status")).to_contain_text("Saved.")
    service = world["service"]
    wait_for(lambda: len(service.agents) >= 2, timeout=60, what="the agent to restart with the saved lines")
    store = ServiceLifecycle(world["installed"]).store
    saved = load_agent_config(store.active_path())
    assert saved.counting is not None
    assert [ln.name for ln in saved.counting.lines] == ["v-left", "drawn"]
    assert saved.counting.lines[1].points == pytest.approx(reversed_points)
    assert store.last_good.read_text() == world["installed"].read_text(), "the roll-back target is kept"
    assert service.exit_codes[0] == RESTART_EXIT_CODE

    # The page finds the agent again (same session), loads the lines it now runs with, and the tally of
    # the new line moves as it counts.
    expect(page.locator("body")).not_to_have_attribute("data-instance", first_instance or "", timeout=60_000)
    expect(page.locator("#line-1-name")).to_have_value("drawn")
    wait_for(lambda: tally_of(page, "drawn") >= 0, timeout=60, what="the tally to show the new line")
    start = tally_of(page, "drawn")
    wait_for(lambda: tally_of(page, "drawn") > start, timeout=120, what="the tally of the drawn line to move")
    check_accessibility(page, "setup-tally")

    # Validation by tally: scripted taps while the agent counts the same minutes.
    page.get_by_label("Minutes").fill("5")
    page.get_by_role("button", name="Start validation").click()
    tap_in = page.get_by_role("button", name=re.compile(r"^drawn in pedestrian"))
    tap_out = page.get_by_role("button", name=re.compile(r"^drawn out pedestrian"))
    for _ in range(6):
        tap_in.click()
    for _ in range(4):
        tap_out.click()
    expect(tap_in).to_contain_text("6")
    check_accessibility(page, "validation-running")
    page.wait_for_timeout(8_000)
    page.get_by_role("button", name="Finish now").click()
    table = page.locator("#validation-table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(4)  # two lines x two directions
    expect(table).to_contain_text("drawn")
    expect(page.locator("#overall-error")).to_contain_text("Overall count error")
    check_accessibility(page, "validation-result")
    setup_requests = list(requests)

    # The record reaches the hub: its public page and the operator's device page.
    def sensors_show_it() -> bool:
        page.goto(f"{hub.url}/sensors?lang=en")
        return "Validated by hand on" in (page.locator(f"#validation-{DEVICE}").text_content() or "")

    wait_for(sensors_show_it, timeout=60, what="the validation on /sensors")
    check_accessibility(page, "sensors-validated")
    page.goto(f"{hub.url}/dashboard/devices/{DEVICE}?lang=en")
    validation_lines = page.locator("#validation-lines")
    expect(validation_lines).to_contain_text("drawn")
    expect(validation_lines.locator("tbody tr")).to_have_count(4)
    check_accessibility(page, "device-validated")

    # The picture stayed local: the setup page talked to the agent only ...
    assert setup_requests and all(r.startswith(url + "/") for r in setup_requests), setup_requests
    assert any(r.endswith("/setup/background.png") for r in setup_requests)
    # ... every message the device sent the hub is a contract payload with no picture in it ...
    sent = [(t, p) for t, p in world["wire"].messages if (parts := parse_topic("cot", t)) and parts.device == DEVICE]
    channels = set()
    for topic, payload in sent:
        parts = parse_topic("cot", topic)
        assert parts is not None
        decode(parts.channel, payload)  # raises on anything the contract does not know
        channels.add(parts.channel)
        assert not any(magic in payload for magic in IMAGE_MAGIC), topic
    assert Channel.VALIDATION in channels
    # ... and no picture was written: not by OpenCV, not as any file of this test.
    assert world["written"] == []
    images = [
        p
        for p in world["tmp"].rglob("*")
        if p.is_file() and p.read_bytes()[:4].startswith((b"\x89PNG", b"\xff\xd8\xff"))
    ]
    assert images == []
