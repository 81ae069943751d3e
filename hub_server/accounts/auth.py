"""Who is asking: operator sessions (signed cookie, row in the store), API tokens, CSRF, roles, login limits.

For pages and API modules:
- ``current_principal(request)`` -> ``Principal | None`` (set by the middleware for every request);
- ``@require_role(Role.OPERATOR)`` on an aiohttp handler (401/403 as JSON under /api, a redirect to
  /login for pages);
- ``await login(request, response, username, password)`` / ``await logout(request, response)`` for a login
  form; ``LoginRefused`` carries the HTTP status (401 or 429) and a plain reason;
- ``csrf_token(request)`` for the hidden ``csrf_token`` form field. Every state-changing request made with a
  session cookie must carry it, as that form field or as the ``X-CSRF-Token`` header (JavaScript reads it
  from the ``hub_csrf`` cookie: double submit). Anonymous form posts (login, resident page) are checked
  against the ``hub_csrf`` cookie the page set. Requests with ``Authorization: Bearer`` need no CSRF token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import wraps
from http import HTTPStatus
from typing import Literal
from urllib.parse import quote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from hub_protocol.secrets import read_secret
from hub_protocol.validation import ConfigError
from hub_server.accounts import audit
from hub_server.appkeys import DB_KEY
from hub_server.config import AuthConfig, HubConfig
from hub_server.store import accounts, login_failures
from hub_server.store.accounts import Role, User, utc_now
from hub_server.store.db import Database
from hub_server.store.engine import Connection

log = logging.getLogger(__name__)

SESSION_COOKIE = "hub_session"
CSRF_COOKIE = "hub_csrf"
KNOWN_COOKIE = "hub_known"
"""Set at each good login: this browser logged in as that user before, so others' failed logins do not slow it."""
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
TOKEN_PREFIX = "hubt_"  # noqa: S105 - marks tokens in logs and scanners
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_SIMPLE_TYPES = _FORM_TYPES | {"text/plain"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Principal:
    """An operator with a session, or an integration with a token."""

    kind: Literal["user", "token"]
    id: int
    username: str
    role: Role
    csrf_token: str | None = None  # sessions only
    session_token: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        return f"user:{self.username}" if self.kind == "user" else f"token:{self.id}"

    def allows(self, role: Role) -> bool:
        return self.role.allows(role)


PRINCIPAL_KEY = web.RequestKey("principal", Principal)
_NEW_CSRF_KEY = web.RequestKey("new_csrf", str)


class LoginRefused(Exception):
    def __init__(self, status: int, reason: str, retry_after: float | None = None) -> None:
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason)


class LoginLimiter:
    """Failed logins slow further attempts down; they never lock the real user out.

    Failures count per user name and per client address in a sliding window. The first ``per_user`` (or
    ``per_address``) cost nothing; after that each attempt waits a delay that doubles with every further
    failure (2 s, 4 s, 8 s ... up to ``max_delay_s``) from the latest one. A browser that logged in as the user
    before (``KNOWN_COOKIE``) counts on its own: an attacker's failures elsewhere do not slow it down.

    The failures are kept in the store (methods take its connection), so every hub instance on one database
    counts the same ones; the clock is wall time for the same reason. Keys are hashed with ``secret`` (the
    session key, which all instances share): names typed at the login form are not stored in clear.
    """

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_s: float,
        max_delay_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        secret: bytes = b"",
    ):
        self.per_user = per_user
        self.per_address = per_address
        self.window_s = window_s
        self.max_delay_s = max_delay_s
        self.clock = clock
        self._secret = secret

    def _key(self, kind: str, value: str) -> str:
        return hmac.new(self._secret, f"login-failure:{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _keys(self, username: str, address: str, known: bool) -> list[tuple[str, int]]:
        if known:
            return [(self._key("k", username), self.per_user)]
        return [(self._key("u", username), self.per_user), (self._key("a", address), self.per_address)]

    def retry_after(self, conn: Connection, username: str, address: str, known: bool = False) -> float | None:
        """Seconds to wait before the next attempt may be checked, else None."""
        now = self.clock()
        waits = []
        for key, free in self._keys(username, address, known):
            count, latest = login_failures.recent(conn, key, now - self.window_s)
            if count >= free and latest is not None:
                delay = min(self.max_delay_s, 2.0 ** (count - free + 1))
                waits.append(latest + delay - now)
        wait = max(waits, default=0.0)
        return wait if wait > 0 else None

    def failed(self, conn: Connection, username: str, address: str, known: bool = False) -> None:
        now = self.clock()
        keys = [key for key, _ in self._keys(username, address, known)]
        login_failures.record(conn, keys, now, forget_before=now - self.window_s)

    def succeeded(self, conn: Connection, username: str, known: bool = False) -> None:
        login_failures.forget(conn, self._key("k" if known else "u", username))


@dataclass
class AuthState:
    key: bytes
    config: AuthConfig
    secure_cookies: bool
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    limiter: LoginLimiter
    _touch_every: timedelta = field(default=timedelta(seconds=60))

    @classmethod
    def from_config(cls, config: HubConfig) -> AuthState:
        key = read_secret(config.http.session_key_file, "http.session_key_file").encode()
        if len(key) < 32:
            raise ConfigError("http.session_key_file", ["the session key needs at least 32 characters"])
        auth = config.auth
        limiter = LoginLimiter(
            auth.login_failures_per_user,
            auth.login_failures_per_address,
            auth.login_window_minutes * 60,
            auth.login_max_delay_s,
            secret=key,
        )
        proxies = tuple(ipaddress.ip_network(p, strict=False) for p in config.http.trusted_proxies)
        return cls(key, auth, config.http.behind_tls, proxies if config.http.behind_tls else (), limiter)

    def sign(self, token: str) -> str:
        mac = hmac.new(self.key, token.encode(), hashlib.sha256).digest()
        return f"{token}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def unsign(self, value: str) -> str | None:
        token, _, _sig = value.rpartition(".")
        if not token or len(value) > 200:
            return None
        return token if hmac.compare_digest(self.sign(token), value) else None

    def known_browser(self, username: str, now: float) -> str:
        """Cookie value saying "this browser logged in as ``username``" (signed, expiring; no name in clear)."""
        expires = int(now + self.config.known_browser_days * 86_400)
        return self.sign(f"kb-{_name_tag(self.key, username)}-{expires}")

    def is_known_browser(self, value: str | None, username: str, now: float) -> bool:
        token = self.unsign(value) if value else None
        if token is None:
            return False
        _, tag, expires = [*token.split("-"), "", ""][:3]
        return hmac.compare_digest(tag, _name_tag(self.key, username)) and expires.isdigit() and int(expires) > now


AUTH_KEY: web.AppKey[AuthState] = web.AppKey("auth")


def _name_tag(key: bytes, username: str) -> str:
    return hmac.new(key, b"known-browser:" + username.encode(), hashlib.sha256).hexdigest()[:32]


def current_principal(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL_KEY)


def _trusted(address: str, proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: web.Request) -> str:
    """The peer's address; only when the peer is a configured proxy, the last hop it adds to X-Forwarded-For
    that is not itself a configured proxy (anyone else can write any X-Forwarded-For they like)."""
    remote = request.remote or "unknown"
    proxies = request.app[AUTH_KEY].trusted_proxies
    if not proxies or not _trusted(remote, proxies):
        return remote
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    while hops and _trusted(hops[-1], proxies):
        hops.pop()
    return hops[-1][:100] if hops else remote


def _principal_from_session(db: Database, state: AuthState, token: str) -> Principal | None:
    conn = db.conn
    row = accounts.load_session(conn, token, timedelta(minutes=state.config.idle_minutes))
    if row is None:
        return None
    if row.last_seen_at <= utc_now() - state._touch_every:
        with db.write() as wconn:
            accounts.touch_session(wconn, token)
    return Principal("user", row.user.id, row.user.username, row.user.role, row.csrf_token, token)


def _principal_from_token(db: Database, token: str) -> Principal | None:
    found = accounts.find_token(db.conn, token)
    if found is None:
        return None
    if found.last_used_at is None or found.last_used_at <= utc_now() - timedelta(minutes=1):
        with db.write() as conn:
            accounts.mark_token_used(conn, found.id)
    return Principal("token", found.id, found.name, found.role)


class _Unauthenticated(Exception):
    pass


async def _authenticate(request: web.Request) -> Principal | None:
    db = request.app[DB_KEY]
    state = request.app[AUTH_KEY]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip().startswith(TOKEN_PREFIX):
            raise _Unauthenticated("Authorization must be 'Bearer hubt_...'")
        principal = await asyncio.to_thread(_principal_from_token, db, value.strip())
        if principal is None:
            raise _Unauthenticated("unknown or revoked API token")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        token = state.unsign(cookie)
        if token is not None:
            return await asyncio.to_thread(_principal_from_session, db, state, token)
    return None


async def _submitted_csrf(request: web.Request) -> str | None:
    if header := request.headers.get(CSRF_HEADER):
        return header
    if request.content_type in _FORM_TYPES:
        form = await request.post()  # cached by aiohttp: the handler reads it again for free
        field_value = form.get(CSRF_FIELD)
        return field_value if isinstance(field_value, str) else None
    return None


async def _csrf_ok(request: web.Request, principal: Principal | None) -> bool:
    if request.method in SAFE_METHODS or (principal is not None and principal.kind == "token"):
        return True
    if principal is not None:
        submitted = await _submitted_csrf(request)
        return submitted is not None and hmac.compare_digest(submitted, principal.csrf_token or "")
    # Anonymous: a cross-site page can send only "simple" bodies (forms, text, untyped) without a CORS preflight;
    # anything else already proves same-origin JavaScript.
    simple = request.content_type in _SIMPLE_TYPES or "Content-Type" not in request.headers
    if not simple:
        return True
    cookie = request.cookies.get(CSRF_COOKIE)
    submitted = await _submitted_csrf(request)
    return bool(cookie and submitted and hmac.compare_digest(cookie, submitted))


def problem_response(
    status: int, detail: str, problems: list[str] | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """The JSON problem body every API error has (the app's error middleware uses it too)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body = {"status": status, "title": title, "detail": detail, "problems": problems or []}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        principal = await _authenticate(request)
    except _Unauthenticated as exc:
        return problem_response(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="hub"'})
    if principal is not None:
        request[PRINCIPAL_KEY] = principal
    if request.method not in SAFE_METHODS and request.content_type in _FORM_TYPES:
        try:
            await request.post()  # cached by aiohttp for the CSRF check and the handler
        except (ValueError, LookupError, HttpProcessingError) as exc:  # no boundary, a broken header, a made-up charset
            reason = " ".join(str(getattr(exc, "message", "") or exc).split())
            return problem_response(400, "the form body cannot be read", [f"body: {reason}"])
    if not await _csrf_ok(request, principal):
        return problem_response(
            403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header or the {CSRF_FIELD} field"
        )
    response = await handler(request)
    if (new := request.get(_NEW_CSRF_KEY)) is not None and not response.prepared:
        _set_csrf_cookie(request, response, new)
    return response


def _set_csrf_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    state = request.app[AUTH_KEY]
    response.set_cookie(CSRF_COOKIE, value, httponly=False, samesite="Strict", secure=state.secure_cookies, path="/")


def csrf_token(request: web.Request) -> str:
    """The token a page puts in its forms (and JavaScript in ``X-CSRF-Token``)."""
    principal = current_principal(request)
    if principal is not None and principal.csrf_token:
        return principal.csrf_token
    pending: str | None = request.get(_NEW_CSRF_KEY)
    if pending is not None:
        return pending
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(cookie) <= 100 and cookie.replace("-", "").replace("_", "").isalnum():
        return cookie
    new = secrets.token_urlsafe(32)
    request[_NEW_CSRF_KEY] = new
    return new


def require_role(role: Role, *, login_path: str = "/login") -> Callable[[Handler], Handler]:
    """Handler decorator: 401 (API) or redirect to the login page (pages) without a principal, 403 below ``role``."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            check_role(request, role, login_path=login_path)
            return await handler(request)

        return wrapper

    return decorate


def check_role(request: web.Request, role: Role, *, login_path: str = "/login") -> Principal:
    principal = current_principal(request)
    if principal is None:
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(
                text="log in or send an API token", headers={"WWW-Authenticate": 'Bearer realm="hub"'}
            )
        raise web.HTTPFound(f"{login_path}?next={quote(request.path_qs, safe='/')}")
    if not principal.allows(role):
        raise web.HTTPForbidden(text=f"this needs the {role.value} role; you have {principal.role.value}")
    return principal


async def login(request: web.Request, response: web.StreamResponse, username: str, password: str) -> Principal:
    """Check the password, open a session and set its cookies on ``response``; raises ``LoginRefused``."""
    state = request.app[AUTH_KEY]
    db = request.app[DB_KEY]
    name = username.strip().lower()[:64]
    address = client_address(request)
    known = state.is_known_browser(request.cookies.get(KNOWN_COOKIE), name, time.time())
    wait = await db.read(state.limiter.retry_after, name, address, known)
    if wait is not None:
        raise LoginRefused(429, f"too many failed logins: try again in {int(wait) + 1} s", wait)
    user = await db.read(accounts.verify_login, name, password[:1024])
    if user is None:
        await db.transact(state.limiter.failed, name, address, known)
        log.warning("failed login for %r from %s%s", name, address, " (known browser)" if known else "")
        raise LoginRefused(401, "wrong user name or password")
    old = current_principal(request)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await asyncio.to_thread(_open_session, db, state, token, user, csrf, old, known)
    response.set_cookie(
        SESSION_COOKIE,
        state.sign(token),
        httponly=True,
        samesite="Strict",
        secure=state.secure_cookies,
        path="/",
        max_age=int(state.config.session_hours * 3600),
    )
    _set_csrf_cookie(request, response, csrf)
    response.set_cookie(
        KNOWN_COOKIE,
        state.known_browser(name, time.time()),
        httponly=True,
        samesite="Strict",
        secure=state.secure_cookies,
        path="/",
        max_age=int(state.config.known_browser_days * 86_400),
    )
    request.pop(_NEW_CSRF_KEY, None)
    principal = Principal("user", user.id, user.username, user.role, csrf, token)
    request[PRINCIPAL_KEY] = principal
    return principal


def _open_session(
    db: Database, state: AuthState, token: str, user: User, csrf: str, old: Principal | None, known: bool
) -> None:
    with db.write() as conn:
        state.limiter.succeeded(conn, user.username, known)
        if old is not None and old.session_token:
            accounts.delete_session(conn, old.session_token)
        accounts.purge_sessions(conn)
        accounts.create_session(conn, token, user, csrf, timedelta(hours=state.config.session_hours))
        audit.record(conn, f"user:{user.username}", "session.login", f"user:{user.username}")


async def logout(request: web.Request, response: web.StreamResponse) -> None:
    principal = current_principal(request)
    db = request.app[DB_KEY]
    if principal is not None and principal.session_token:

        def close(token: str) -> None:
            with db.write() as conn:
                accounts.delete_session(conn, token)
                audit.record(conn, principal.actor, "session.logout", f"user:{principal.username}")

        await asyncio.to_thread(close, principal.session_token)
        request.pop(PRINCIPAL_KEY, None)
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)
