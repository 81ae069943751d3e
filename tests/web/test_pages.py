"""The pages over HTTP against the real hub app (real auth, real store): access, forms, languages, headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.fleet.alarms import HubAlarmKind
from hub_server.logistics.wiring import ALARMS_KEY
from hub_server.store import provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.hub.conftest import PASSWORD, ClientFactory, add_user

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

PAGES = [
    "/dashboard",
    "/dashboard/flows",
    "/dashboard/lockers",
    "/dashboard/deliveries",
    "/dashboard/alarms",
    "/dashboard/audit",
    "/dashboard/devices/dev-a",
]


@pytest.fixture
async def web_client(hub_config: HubConfig, db: Database, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    add_user(db, "olga", Role.OPERATOR)  # argon2 is slow on purpose: one account per test unless it needs two
    with db.write() as conn:
        provisioning.add(conn, "dev-a", "test-street", "dev-a", "test")
    app: web.Application = create_app(hub_config, database=db, background=False)
    return await aiohttp_client(app)


async def _csrf(client: TestClient[Any, Any], path: str) -> str:
    response = await client.get(path)
    match = CSRF.search(await response.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


async def log_in(client: TestClient[Any, Any], name: str, password: str = PASSWORD, next_: str = "/dashboard") -> Any:
    token = await _csrf(client, "/login")
    return await client.post(
        "/login",
        data={"username": name, "password": password, "csrf_token": token, "next": next_},
        allow_redirects=False,
    )


@pytest.mark.parametrize("path", PAGES)
async def test_dashboard_pages_need_a_login(web_client: TestClient[Any, Any], path: str) -> None:
    response = await web_client.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")


async def test_login_then_every_page_renders_with_security_headers(web_client: TestClient[Any, Any]) -> None:
    response = await log_in(web_client, "olga", next_="/dashboard/flows")
    assert response.status == 303 and response.headers["Location"] == "/dashboard/flows"
    for path in PAGES:
        page = await web_client.get(path)
        text = await page.text()
        assert page.status == 200, (path, text[:500])
        assert 'class="skip-link" href="#main"' in text
        assert "olga" in text
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    fleet = await (await web_client.get("/dashboard")).text()
    assert "dev-a" in fleet and 'data-live="status-dev-a"' in fleet


async def test_live_stream_needs_a_login_and_is_not_redirected(web_client: TestClient[Any, Any]) -> None:
    response = await web_client.get("/live", allow_redirects=False)
    assert response.status == 401
    await log_in(web_client, "olga")
    async with web_client.get("/live") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await stream.content.readuntil(b"\n\n")
        assert first == b"retry: 3000\n\n"


async def test_wrong_password_is_refused_with_a_message_and_no_session(web_client: TestClient[Any, Any]) -> None:
    response = await log_in(web_client, "olga", password="not the password")
    assert response.status == 401
    text = await response.text()
    assert 'role="alert"' in text and 'value="olga"' in text
    assert "hub_session" not in response.cookies
    assert (await web_client.get("/dashboard", allow_redirects=False)).status == 303


async def test_login_without_csrf_token_is_refused(web_client: TestClient[Any, Any]) -> None:
    await web_client.get("/login")
    response = await web_client.post("/login", data={"username": "olga", "password": PASSWORD}, allow_redirects=False)
    assert response.status == 403
    assert "hub_session" not in response.cookies


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
async def test_login_never_redirects_off_site(web_client: TestClient[Any, Any], target: str) -> None:
    response = await log_in(web_client, "olga", next_=target)
    assert response.status == 303
    assert response.headers["Location"] == "/dashboard"


async def test_state_changing_forms_need_the_session_csrf_token(web_client: TestClient[Any, Any]) -> None:
    await log_in(web_client, "olga")
    response = await web_client.post("/dashboard/alarms/1/ack", data={"csrf_token": "wrong"}, allow_redirects=False)
    assert response.status == 403
    token = await _csrf(web_client, "/dashboard/alarms")
    missing = await web_client.post("/dashboard/alarms/999/ack", data={"csrf_token": token}, allow_redirects=False)
    assert missing.status == 409
    assert 'role="alert"' in await missing.text()


async def test_a_viewer_sees_but_cannot_act(web_client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "vera", Role.VIEWER)
    await log_in(web_client, "vera")
    page = await (await web_client.get("/dashboard/deliveries")).text()
    assert 'action="/dashboard/deliveries"' not in page  # no create form for viewers
    token = await _csrf(web_client, "/dashboard")  # the logout form carries it
    response = await web_client.post(
        "/dashboard/deliveries",
        data={"csrf_token": token, "device": "dev-a", "size": "M", "resident_name": "x"},
        allow_redirects=False,
    )
    assert response.status == 403


async def test_delivery_form_rejects_bad_input_with_a_reason(web_client: TestClient[Any, Any]) -> None:
    await log_in(web_client, "olga")
    token = await _csrf(web_client, "/dashboard/deliveries")
    response = await web_client.post(
        "/dashboard/deliveries?lang=en",
        data={"csrf_token": token, "device": "dev-a", "size": "XXL", "resident_name": "Ann"},
    )
    assert response.status == 400
    assert "Choose a size: S, M or L." in await response.text()


async def test_language_from_query_is_kept_in_a_cookie(web_client: TestClient[Any, Any]) -> None:
    first = await web_client.get("/sensors?lang=de", headers={"Accept-Language": "en"})
    text = await first.text()
    assert '<html lang="de">' in text and "Sensoren in dieser Nachbarschaft" in text
    assert first.cookies["lang"].value == "de"
    later = await web_client.get("/login", headers={"Accept-Language": "en"})
    assert '<html lang="de">' in await later.text()
    switched = await web_client.get("/login?lang=nl")
    assert '<html lang="nl">' in await switched.text() and "Inloggen" in await switched.text()


async def test_browser_language_is_the_default(web_client: TestClient[Any, Any]) -> None:
    text = await (await web_client.get("/sensors", headers={"Accept-Language": "en-GB,en;q=0.9"})).text()
    assert '<html lang="en">' in text and "Sensors in this neighbourhood" in text


async def test_the_hub_address_leads_to_the_public_page(web_client: TestClient[Any, Any]) -> None:
    response = await web_client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/sensors"
    assert 'href="/login"' in await (await web_client.get("/sensors")).text()


async def test_sensor_register_export_is_public_json(web_client: TestClient[Any, Any]) -> None:
    response = await web_client.get("/sensors.json")
    assert response.status == 200
    body = await response.json()
    assert body["count"] == len(body["sensors"])
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("token", ["short", "a" * 43, "bad*token!with~signs-1234567890"])
async def test_unknown_resident_link_is_a_plain_not_found(web_client: TestClient[Any, Any], token: str) -> None:
    response = await web_client.get(f"/r/{token}")
    assert response.status == 404
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_unknown_device_page_is_not_found(web_client: TestClient[Any, Any]) -> None:
    await log_in(web_client, "olga")
    assert (await web_client.get("/dashboard/devices/no-such")).status == 404
    assert (await web_client.get("/dashboard/devices/UPPER<x>")).status == 404


async def test_logout_ends_the_session(web_client: TestClient[Any, Any]) -> None:
    await log_in(web_client, "olga")
    token = await _csrf(web_client, "/dashboard")
    response = await web_client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    assert (await web_client.get("/dashboard", allow_redirects=False)).status == 303


async def test_device_page_lists_its_own_alarms_behind_many_newer_ones(web_client: TestClient[Any, Any]) -> None:
    service = web_client.app[ALARMS_KEY]
    start = datetime.now(UTC) - timedelta(hours=2)
    own = service.raise_alarm("dev-a", HubAlarmKind.CAMERA_DOWN, start)
    others = [
        service.raise_alarm("dev-b", HubAlarmKind.DOOR_LEFT_OPEN, start + timedelta(minutes=1 + i), compartment=i + 1)
        for i in range(60)
    ]
    await log_in(web_client, "olga")
    page = await (await web_client.get("/dashboard/devices/dev-a")).text()
    assert f'action="/dashboard/alarms/{own.id}/ack"' in page
    assert not any(f'action="/dashboard/alarms/{a.id}/ack"' in page for a in others)
