"""The kiosk page over HTTP: form, outcomes in three languages, door progress, safety headers."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from edge_agent.lockers.kiosk.app import create_kiosk_app
from edge_agent.lockers.kiosk.server import KioskServer
from tests.lockers.conftest import Rig

ClientMaker = Callable[..., Any]


async def client_for(rig: Rig, aiohttp_client: ClientMaker, language: str = "nl") -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_kiosk_app(rig.bank, language))  # type: ignore[no-any-return]


async def test_form_is_labelled_local_and_in_the_default_language(
    make_rig: Callable[..., Rig], aiohttp_client: ClientMaker
) -> None:
    client = await client_for(make_rig(), aiohttp_client)
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200
    assert '<html lang="nl">' in html and "Voer uw code in" in html
    assert '<label for="code">' in html and 'id="code"' in html and 'inputmode="numeric"' in html
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external assets"
    for asset in ("/static/kiosk.css", "/static/kiosk.js"):
        assert asset in html
        assert (await client.get(asset)).status == 200


async def test_language_switch(make_rig: Callable[..., Rig], aiohttp_client: ClientMaker) -> None:
    client = await client_for(make_rig(), aiohttp_client)
    german = await client.get("/?lang=de")
    assert "Code eingeben" in await german.text()
    # The choice sticks (cookie) for the next page.
    again = await client.get("/")
    assert '<html lang="de">' in await again.text()
    english = await client.get("/?lang=en")
    assert "Enter your code" in await english.text()


async def test_wrong_code_says_so_and_counts_down(make_rig: Callable[..., Rig], aiohttp_client: ClientMaker) -> None:
    client = await client_for(make_rig(), aiohttp_client, "en")
    response = await client.post("/?lang=en", data={"code": "000000"})
    html = await response.text()
    assert response.status == 200
    assert 'role="alert"' in html and "That code is not right" in html and "Tries left before a pause: 4." in html


async def test_right_code_opens_and_guides_to_closing_the_door(
    make_rig: Callable[..., Rig], aiohttp_client: ClientMaker
) -> None:
    rig = make_rig()
    rig.reserve(2, "parcel-2", "dropoff", "200002")
    client = await client_for(rig, aiohttp_client, "en")
    response = await client.post("/?lang=en", data={"code": "200002"})
    html = await response.text()
    assert "Compartment 2 is open" in html and "blinking light" in html and "Put the parcel in." in html
    status_url = re.search(r'data-status-url="([^"]+)"', html)
    assert status_url is not None
    url = status_url.group(1).replace("&amp;", "&")

    async def phase() -> str:
        body = await (await client.get(url)).json()
        return str(body["phase"])

    assert await phase() == "waiting"
    rig.doors.set_door(2, closed=False)
    assert await phase() == "open"
    rig.doors.set_door(2, closed=True)
    assert await phase() == "closed"
    body = await (await client.get(url)).json()
    assert body["text"] == "Thank you. The door is closed."


async def test_bad_requests_change_nothing(make_rig: Callable[..., Rig], aiohttp_client: ClientMaker) -> None:
    rig = make_rig()
    client = await client_for(rig, aiohttp_client, "en")
    too_long = await client.post("/", data={"code": "1" * 40})
    assert too_long.status == 400 and "Type digits only" in await too_long.text()
    foreign = await client.post("/", data={"code": "000000"}, headers={"Origin": "http://evil.example"})
    assert foreign.status == 403
    cross_site = await client.post("/api/code", json={"code": "000000"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status == 403
    assert rig.bank.store.lockout().failures == 0  # neither counted as a guess
    missing = await client.get("/nothing-here")
    assert missing.status == 404 and "This page does not exist." in await missing.text()
    bad_status = await client.get("/status/1?since=yesterday")
    assert bad_status.status == 400 and "since" in (await bad_status.json())["error"]


def test_server_binds_to_localhost_and_serves(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    server = KioskServer(rig.bank, "127.0.0.1", 0, "de")
    server.start()
    try:
        assert server.port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as response:
            assert "Code eingeben" in response.read().decode()
    finally:
        server.stop()


async def test_json_endpoint(make_rig: Callable[..., Rig], aiohttp_client: ClientMaker) -> None:
    rig = make_rig()
    rig.reserve(1, "parcel-1", "dropoff", "482913")
    client = await client_for(rig, aiohttp_client)
    wrong = await client.post("/api/code", json={"code": "000000"})
    assert await wrong.json() == {
        "result": "wrong",
        "compartment": None,
        "purpose": None,
        "attempts_left": 4,
        "retry_after_s": None,
    }
    right = await (await client.post("/api/code", json={"code": "482913"})).json()
    assert (right["result"], right["compartment"], right["purpose"]) == ("opened", 1, "dropoff")
    for bad in ({"code": 482913}, {"code": "1", "extra": 1}, [1]):
        response = await client.post("/api/code", json=bad)
        assert response.status == 400 and "code" in (await response.json())["error"]
    not_json = await client.post("/api/code", data=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status == 400


def test_bank_serves_the_kiosk_from_config_and_survives_a_busy_port(
    make_rig: Callable[..., Rig], tmp_path: Path
) -> None:
    import socket

    from tests.lockers.conftest import make_config

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        rig = make_rig(config=make_config(kiosk={"port": busy}))
        assert rig.bank.kiosk is None  # logged, not fatal: codes still work on the keypad
        rig.reserve(1, "parcel-1", "dropoff", "482913")
        assert rig.bank.enter_code("482913").result == "opened"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    served = make_rig(config=make_config(kiosk={"port": free, "language": "de"}), state_dir=tmp_path / "other")
    assert served.bank.kiosk is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{free}/", timeout=5) as response:
        assert "Code eingeben" in response.read().decode()


async def test_status_polls_do_not_block_the_event_loop(
    make_rig: Callable[..., Rig], aiohttp_client: ClientMaker
) -> None:
    """While the locker machine is busy (its lock held, as during a slow SQLite write), the page stays served."""
    import asyncio
    import threading
    import time

    rig = make_rig()
    client = await client_for(rig, aiohttp_client, "en")
    since = rig.clock.now().isoformat().replace("+", "%2B")
    held, release = threading.Event(), threading.Event()

    def busy_machine() -> None:
        with rig.bank.machine._lock:
            held.set()
            release.wait(5)

    worker = threading.Thread(target=busy_machine)
    worker.start()
    try:
        assert held.wait(5)
        poll = asyncio.ensure_future(client.get(f"/status/2?since={since}"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        page = await asyncio.wait_for(client.get("/?lang=en"), 2)
        assert page.status == 200 and time.monotonic() - started < 1.0
        assert not poll.done()
    finally:
        release.set()
        worker.join(5)
    assert (await (await poll).json())["phase"] == "waiting"


def test_transitions_older_than_the_history_retention_are_pruned(make_rig: Callable[..., Rig]) -> None:
    from datetime import timedelta

    rig = make_rig()
    rig.reserve(2, "parcel-2", "dropoff", "200002")
    assert rig.bank.enter_code("200002").result == "opened"
    old = rig.bank.store.history(2)
    assert old, "the open was recorded"
    rig.clock.advance(timedelta(days=rig.config.timing.history_days, hours=2).total_seconds())
    rig.doors.set_door(2, closed=False)
    rig.bank.tick()
    kept = rig.bank.store.history(2)
    assert kept and all(h not in kept for h in old), "only the transitions within the retention remain"
    assert rig.bank.history_since(2, rig.clock.now() - timedelta(minutes=1)) == kept
