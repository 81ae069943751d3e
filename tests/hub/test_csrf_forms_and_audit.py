"""CSRF for HTML forms (session field and anonymous double submit), session expiry, the append-only audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_server.accounts import audit
from hub_server.accounts.auth import CSRF_COOKIE, csrf_token, current_principal, require_role
from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.store import accounts
from hub_server.store.accounts import Role, utc_now
from hub_server.store.db import Database
from hub_server.store.engine import IntegrityError
from hub_server.store.timestamps import to_epoch
from tests.hub.conftest import ClientFactory, add_user, login


async def form_page(request: web.Request) -> web.Response:
    """Like a page of the dashboard: renders a form with the token."""
    return web.Response(text=csrf_token(request))


@require_role(Role.OPERATOR)
async def form_action(request: web.Request) -> web.Response:
    form = await request.post()
    principal = current_principal(request)
    return web.Response(text=f"{principal.username if principal else '-'}:{form.get('x')}")


async def anonymous_action(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def page_client(hub_config: HubConfig, db: Database, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    app = create_app(hub_config, database=db, background=False, pages=False)
    app.router.add_get("/form", form_page)
    app.router.add_post("/form", form_action)
    app.router.add_post("/public-form", anonymous_action)
    app.router.add_get("/dashboard-like", require_role(Role.VIEWER)(form_page))
    return await aiohttp_client(app)


async def test_page_without_login_redirects_to_login(page_client: TestClient[Any, Any]) -> None:
    response = await page_client.get("/dashboard-like?tab=1", allow_redirects=False)
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/dashboard-like?tab=1"]}


async def test_session_form_needs_the_hidden_field(page_client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "olga", Role.OPERATOR)
    await login(page_client, "olga")
    token = await (await page_client.get("/form")).text()
    refused = await page_client.post("/form", data={"x": "1"})
    assert refused.status == 403
    accepted = await page_client.post("/form", data={"x": "1", "csrf_token": token})
    assert accepted.status == 200 and await accepted.text() == "olga:1"


async def test_anonymous_form_is_checked_against_the_cookie_the_page_set(page_client: TestClient[Any, Any]) -> None:
    page = await page_client.get("/form")
    token = await page.text()
    assert page.cookies[CSRF_COOKIE].value == token
    assert (await page_client.post("/public-form", data={"csrf_token": token})).status == 200
    assert (await page_client.post("/public-form", data={"csrf_token": "x" * 43})).status == 403
    page_client.session.cookie_jar.clear()
    # A cross-site form cannot read or set our cookie: the token alone does not pass.
    assert (await page_client.post("/public-form", data={"csrf_token": token})).status == 403


def test_idle_and_expired_sessions_are_refused_and_removed(db: Database) -> None:
    add_user(db, "alice", Role.VIEWER)
    with db.write() as conn:
        user = accounts.get_user(conn, "alice")
        assert user is not None
        accounts.create_session(conn, "idle-token", user, "csrf", timedelta(hours=12))
        accounts.create_session(conn, "old-token", user, "csrf", timedelta(seconds=-1))
        accounts.create_session(conn, "fresh-token", user, "csrf", timedelta(hours=12))
        stale = to_epoch(utc_now() - timedelta(hours=2))
        conn.execute(
            "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?", (stale, accounts.sha256_hex("idle-token"))
        )
        idle = timedelta(minutes=60)
        assert accounts.load_session(conn, "idle-token", idle) is None
        assert accounts.load_session(conn, "old-token", idle) is None
        assert accounts.load_session(conn, "fresh-token", idle) is not None
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1


def test_audit_log_is_append_only(db: Database) -> None:
    with db.write() as conn:
        entry = audit.record(conn, "user:alice", "device.add", "device:cam-1", {"site": "main-street"})
    for statement in ("UPDATE audit_log SET actor = 'user:mallory'", "DELETE FROM audit_log"):
        with pytest.raises(IntegrityError, match="append-only"), db.write() as conn:
            conn.execute(statement)
    found = audit.query(db.conn, action="device.")
    assert [(e.id, e.actor, e.detail) for e in found] == [(entry, "user:alice", {"site": "main-street"})]
    assert audit.query(db.conn, action="device_") == []  # '_' is not a wildcard
