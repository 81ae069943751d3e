"""Operator log-in, roles, CSRF, login limits and API tokens, through the aiohttp test client."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from hub_server.accounts import audit
from hub_server.accounts.auth import CSRF_COOKIE, KNOWN_COOKIE, SESSION_COOKIE, LoginLimiter
from hub_server.app import AUTH_KEY, create_app
from hub_server.config import HubConfig
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests import postgres
from tests.hub.conftest import PASSWORD, add_token, add_user, hub_config_data, login


def replace_cookie(client: TestClient[Any, Any], name: str, value: str) -> None:
    client.session.cookie_jar.clear(lambda cookie: cookie.key == name)
    client.session.cookie_jar.update_cookies({name: value}, response_url=client.make_url("/"))


async def test_protected_route_needs_a_login(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/users")
    assert response.status == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert (await response.json())["status"] == 401


async def test_login_sets_a_hardened_session_cookie(client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "alice", Role.ADMIN)
    response = await client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert response.status == 200
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # not behind TLS in this config
    assert response.cookies[CSRF_COOKIE]["httponly"] == ""  # readable by the page's script: double submit
    # The database holds only a hash of the session token.
    token = cookie.value.rsplit(".", 1)[0]
    stored = [r[0] for r in db.conn.execute("SELECT token_hash FROM sessions")]
    assert stored and token not in stored
    me = await (await client.get("/api/v1/session")).json()
    assert (me["username"], me["role"], me["kind"]) == ("alice", "admin", "user")
    assert [e.action for e in audit.query(db.conn, actor="user:alice")] == ["session.login"]


async def test_wrong_password_and_unknown_user_look_the_same(client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "alice", Role.VIEWER)
    wrong = await client.post("/api/v1/session", json={"username": "alice", "password": "not the password"})
    unknown = await client.post("/api/v1/session", json={"username": "mallory", "password": "not the password"})
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["detail"] == (await unknown.json())["detail"]
    assert SESSION_COOKIE not in wrong.cookies


async def test_forged_session_cookie_is_ignored(client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "alice", Role.ADMIN)
    await login(client, "alice")
    value = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    token, sig = value.rsplit(".", 1)
    replace_cookie(client, SESSION_COOKIE, f"{token}x.{sig}")
    assert (await client.get("/api/v1/session")).status == 401


@pytest.mark.parametrize(
    ("role", "users", "audit_log"), [(Role.VIEWER, 403, 403), (Role.OPERATOR, 403, 200), (Role.ADMIN, 200, 200)]
)
async def test_roles_are_ordered(
    client: TestClient[Any, Any], db: Database, role: Role, users: int, audit_log: int
) -> None:
    add_user(db, "someone", role)
    await login(client, "someone")
    assert (await client.get("/api/v1/session")).status == 200
    assert (await client.get("/api/v1/users")).status == users
    assert (await client.get("/api/v1/audit")).status == audit_log


async def test_state_change_with_a_session_needs_the_csrf_token(client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "alice", Role.ADMIN)
    csrf = await login(client, "alice")
    new_user = {"username": "bob", "role": "viewer", "password": "another long password"}
    refused = await client.post("/api/v1/users", json=new_user)
    assert refused.status == 403
    assert "CSRF" in (await refused.json())["detail"]
    wrong = await client.post("/api/v1/users", json=new_user, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status == 403
    assert db.conn.execute("SELECT COUNT(*) FROM users WHERE username = 'bob'").fetchone()[0] == 0
    accepted = await client.post("/api/v1/users", json=new_user, headers={"X-CSRF-Token": csrf})
    assert accepted.status == 201, await accepted.text()
    entry = audit.query(db.conn, action="user.add")[0]
    assert (entry.actor, entry.target, entry.detail) == ("user:alice", "user:bob", {"role": "viewer"})


async def test_json_bodies_are_strict(client: TestClient[Any, Any], db: Database) -> None:
    token = add_token(db, Role.ADMIN)
    add_user(db, "bob", Role.VIEWER)
    response = await client.patch(
        "/api/v1/users/bob", json={"disabled": 0}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 422
    assert (await response.json())["problems"] == ["body.disabled: Input should be a valid boolean"]


async def test_anonymous_form_post_needs_the_double_submit_cookie(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/session", data={"username": "a", "password": "b"})
    assert response.status == 403


async def test_logout_ends_the_session(client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "alice", Role.VIEWER)
    csrf = await login(client, "alice")
    old_cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    assert (await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})).status == 204
    assert (await client.get("/api/v1/session")).status == 401
    replace_cookie(client, SESSION_COOKIE, old_cookie)  # a copied cookie is dead too
    assert (await client.get("/api/v1/session")).status == 401


async def test_disabling_a_user_ends_their_sessions(
    client: TestClient[Any, Any], db: Database, aiohttp_client: Any
) -> None:
    add_user(db, "admin", Role.ADMIN)
    add_user(db, "bob", Role.OPERATOR)
    other = await aiohttp_client(client.app)
    await login(other, "bob")
    csrf = await login(client, "admin")
    response = await client.patch("/api/v1/users/bob", json={"disabled": True}, headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    assert (await other.get("/api/v1/session")).status == 401
    last = await client.patch("/api/v1/users/admin", json={"role": "viewer"}, headers={"X-CSRF-Token": csrf})
    assert last.status == 409  # the last admin stays


async def test_login_rate_limit_per_user(client: TestClient[Any, Any], db: Database) -> None:
    add_user(db, "alice", Role.VIEWER)
    cap = client.app[AUTH_KEY].limiter.per_user
    for _ in range(cap):
        bad = await client.post("/api/v1/session", json={"username": "alice", "password": "guess guess guess"})
        assert bad.status == 401
    blocked = await client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert blocked.status == 429  # even the right password waits out the window
    assert int(blocked.headers["Retry-After"]) > 0


def test_login_limiter_delays_double_and_the_window_slides(db: Database) -> None:
    conn = db.conn  # the failures are kept in the store
    now = [1_700_000_000.0]
    limiter = LoginLimiter(per_user=2, per_address=3, window_s=600, max_delay_s=30, clock=lambda: now[0])
    limiter.failed(conn, "a", "1.2.3.4")
    assert limiter.retry_after(conn, "a", "1.2.3.4") is None  # the first failures are free
    limiter.failed(conn, "a", "1.2.3.4")
    waits = []
    for _ in range(6):
        wait = limiter.retry_after(conn, "a", "1.2.3.4")
        assert wait is not None
        waits.append(wait)
        now[0] += wait
        assert limiter.retry_after(conn, "a", "1.2.3.4") is None, "after the wait the next attempt is checked"
        limiter.failed(conn, "a", "1.2.3.4")
    assert waits == [2, 4, 8, 16, 30, 30], "delays double up to the cap"
    assert limiter.retry_after(conn, "b", "5.6.7.8") is None
    assert limiter.retry_after(conn, "c", "1.2.3.4") is not None  # the address is slowed for every name
    assert limiter.retry_after(conn, "a", "1.2.3.4", known=True) is None, "a known browser has its own count"
    now[0] += 601
    assert limiter.retry_after(conn, "a", "1.2.3.4") is None
    limiter.failed(conn, "a", "9.9.9.9")
    limiter.succeeded(conn, "a")
    limiter.failed(conn, "a", "9.9.9.9")
    assert limiter.retry_after(conn, "a", "9.9.9.9") is None


async def test_an_attacker_cannot_lock_the_real_user_out(
    client: TestClient[Any, Any], db: Database, aiohttp_client: Any
) -> None:
    add_user(db, "alice", Role.VIEWER)
    csrf = await login(client, "alice")  # an earlier good login: this browser is known now
    assert (await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})).status == 204
    assert client.session.cookie_jar.filter_cookies(client.make_url("/")).get(KNOWN_COOKIE) is not None
    attacker = await aiohttp_client(client.app)
    statuses = []
    for _ in range(30):
        guess = await attacker.post("/api/v1/session", json={"username": "alice", "password": "guess guess guess"})
        statuses.append(guess.status)
    assert statuses.count(401) <= client.app[AUTH_KEY].limiter.per_user + 1, "the attacker is slowed down"
    assert statuses[-1] == 429 and int(guess.headers["Retry-After"]) > 0
    # The real user, from the browser that logged in before, gets in at once with the right password.
    real = await client.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert real.status == 200, await real.text()
    # A browser never used by alice waits like the attacker (the price of not locking anyone out).
    stranger = await aiohttp_client(client.app)
    assert (await stranger.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})).status == 429


async def test_forwarded_for_is_believed_only_from_configured_proxies(tmp_path: Any, aiohttp_client: Any) -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        HubConfig.model_validate(hub_config_data(tmp_path / "bad", http={"trusted_proxies": ["proxy.local"]}))
    data = hub_config_data(
        tmp_path / "direct",
        http={"behind_tls": True, "trusted_proxies": ["10.9.9.9"]},
        auth={"login_failures_per_address": 2},
    )
    config = HubConfig.model_validate(data)
    client = await aiohttp_client(
        create_app(config, database=Database(config.store.location), background=False, pages=False)
    )
    # The test client is not the proxy: a new X-Forwarded-For with every attempt must not reset the count.
    statuses = []
    for n in range(4):
        body = {"username": f"x{n}", "password": "wrong wrong wrong"}
        answer = await client.post("/api/v1/session", json=body, headers={"X-Forwarded-For": f"10.1.0.{n}"})
        statuses.append(answer.status)
    assert statuses == [401, 401, 429, 429]


async def test_api_token_authenticates_without_csrf(client: TestClient[Any, Any], db: Database) -> None:
    token = add_token(db, Role.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/v1/session", headers=headers)
    assert (await me.json())["kind"] == "token"
    created = await client.post(
        "/api/v1/users", json={"username": "carol", "role": "viewer", "password": "a long password!"}, headers=headers
    )
    assert created.status == 201
    assert audit.query(db.conn, action="user.add")[0].actor.startswith("token:")


async def test_bad_tokens_are_refused(client: TestClient[Any, Any], db: Database) -> None:
    viewer = add_token(db, Role.VIEWER)
    assert (await client.get("/api/v1/users", headers={"Authorization": f"Bearer {viewer}"})).status == 403
    for header in ("Bearer hubt_not-a-token", "Basic YWxpY2U6eA==", "Bearer"):
        response = await client.get("/api/v1/session", headers={"Authorization": header})
        assert response.status == 401, header


async def test_token_lifecycle_through_the_api(client: TestClient[Any, Any], db: Database) -> None:
    admin = add_token(db, Role.ADMIN, "admin-tool")
    headers = {"Authorization": f"Bearer {admin}"}
    created = await client.post("/api/v1/tokens", json={"name": "counter-export", "role": "viewer"}, headers=headers)
    assert created.status == 201
    body = await created.json()
    secret = body["token"]
    assert secret.startswith("hubt_")
    assert secret not in str(db.conn.execute("SELECT * FROM api_tokens").fetchall())
    listed = await (await client.get("/api/v1/tokens", headers=headers)).json()
    assert all("token" not in t for t in listed)
    assert (await client.get("/api/v1/session", headers={"Authorization": f"Bearer {secret}"})).status == 200
    revoked = await client.delete(f"/api/v1/tokens/{body['id']}", headers=headers)
    assert revoked.status == 200
    assert (await client.get("/api/v1/session", headers={"Authorization": f"Bearer {secret}"})).status == 401
    assert (await client.delete("/api/v1/tokens/99999", headers=headers)).status == 404


async def test_behind_tls_cookies_are_secure_and_limits_use_the_forwarded_address(
    tmp_path: Any, aiohttp_client: Any
) -> None:
    data = hub_config_data(tmp_path / "tls", http={"behind_tls": True}, auth={"login_failures_per_address": 2})
    config = HubConfig.model_validate(data)
    db = Database(config.store.location)
    add_user(db, "alice", Role.VIEWER)
    client = await aiohttp_client(create_app(config, database=db, background=False, pages=False))
    ok = await client.post(
        "/api/v1/session", json={"username": "alice", "password": PASSWORD}, headers={"X-Forwarded-For": "10.0.0.9"}
    )
    assert ok.status == 200
    assert ok.cookies[SESSION_COOKIE]["secure"] is True and ok.cookies[CSRF_COOKIE]["secure"] is True
    client.session.cookie_jar.clear()
    for name in ("x1", "x2"):
        bad = {"username": name, "password": "wrong wrong wrong"}
        assert (await client.post("/api/v1/session", json=bad, headers={"X-Forwarded-For": "10.0.0.1"})).status == 401
    third = {"username": "x3", "password": "wrong wrong wrong"}
    assert (await client.post("/api/v1/session", json=third, headers={"X-Forwarded-For": "10.0.0.1"})).status == 429
    # The proxy appends the real client: a forged first hop does not escape the limit...
    forged = {"X-Forwarded-For": "1.2.3.4, 10.0.0.1"}
    assert (await client.post("/api/v1/session", json=third, headers=forged)).status == 429
    # ...and another client behind the same proxy is not locked out.
    other = await client.post(
        "/api/v1/session", json={"username": "alice", "password": PASSWORD}, headers={"X-Forwarded-For": "10.0.0.2"}
    )
    assert other.status == 200


async def test_two_hubs_on_one_database_share_the_login_limit(tmp_path: Any, aiohttp_client: Any) -> None:
    postgres.require()
    url = postgres.fresh_database()
    config = HubConfig.model_validate(hub_config_data(tmp_path / "hub", store={"url": url}))
    hubs = [create_app(config, database=Database(url), background=False, pages=False) for _ in range(2)]
    add_user(Database(url), "alice", Role.VIEWER)
    first, second = [await aiohttp_client(hub) for hub in hubs]
    for _ in range(first.app[AUTH_KEY].limiter.per_user):
        bad = await first.post("/api/v1/session", json={"username": "alice", "password": "guess guess guess"})
        assert bad.status == 401
    elsewhere = await second.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert elsewhere.status == 429, "the other instance counts the same failures"
    assert int(elsewhere.headers["Retry-After"]) > 0
