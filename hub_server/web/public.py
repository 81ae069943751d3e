"""Pages without an operator account: login, the resident's parcel page, the public sensor register."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from hub_server.web import flowstats
from hub_server.web.context import CSRF_FIELD, get_web
from hub_server.web.model import Parcel, Refusal

TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _safe_next(value: str) -> str:
    """Only a path on this site: never an absolute URL or a protocol-relative one (open redirect)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value and "\n" not in value:
        return value
    return "/dashboard"


async def login_form(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    if await wb.auth.operator(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next", "")))
    context = {"next": _safe_next(request.query.get("next", "")), "error": None, "username": ""}
    context["csrf"] = await wb.auth.csrf_token(request)
    return wb.page(request, "login.html", context, no_store=True)


async def login_submit(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    form = await request.post()
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    target = _safe_next(str(form.get("next", "")))
    if not await wb.auth.check_csrf(request, str(form.get(CSRF_FIELD, ""))):
        result: Any = Refusal("error.forbidden")
    elif not username or not password:
        result = Refusal("login.missing")
    else:
        redirect = web.Response(status=303, headers={"Location": target})
        result = await wb.auth.login(request, redirect, username, password)
        if not isinstance(result, Refusal):
            return redirect
    context = {"next": target, "error": result, "username": username, "csrf": await wb.auth.csrf_token(request)}
    context["lang_path"] = "/login"
    return wb.page(
        request, "login.html", context, status=401 if result.key != "error.forbidden" else 403, no_store=True
    )


async def logout(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    form = await request.post()
    redirect = web.Response(status=303, headers={"Location": "/login"})
    if await wb.auth.check_csrf(request, str(form.get(CSRF_FIELD, ""))):
        await wb.auth.logout(request, redirect)
    return redirect


async def _parcel_page(
    request: web.Request,
    found: Parcel | None,
    token: str,
    *,
    notice: str = "",
    error: Refusal | None = None,
    code: str | None = None,
    status: int = 200,
) -> web.Response:
    wb = get_web(request)
    context = {"parcel": found, "token": token, "notice": notice, "error": error, "code": code}
    context["csrf"] = await wb.auth.csrf_token(request)
    context["lang_path"] = f"/r/{token}"
    return wb.page(request, "parcel.html", context, status=status, no_store=True)


async def parcel(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    token = request.match_info["token"]
    found = await asyncio.to_thread(wb.source.parcel, token) if TOKEN.fullmatch(token) else None
    if found is None:
        return wb.page(request, "parcel_missing.html", {}, status=404, no_store=True)
    return await _parcel_page(request, found, token, notice=request.query.get("done", ""))


async def parcel_extend(request: web.Request) -> web.StreamResponse:
    """No account and no session: the unguessable token in the path is the credential (and the CSRF guard,
    since another site cannot know it)."""
    wb = get_web(request)
    token = request.match_info["token"]
    if not TOKEN.fullmatch(token) or await asyncio.to_thread(wb.source.parcel, token) is None:
        return wb.page(request, "parcel_missing.html", {}, status=404, no_store=True)
    refusal = await asyncio.to_thread(wb.source.extend_parcel, token)
    if refusal is None:
        raise web.HTTPSeeOther(f"/r/{token}?done=extended")
    return await _parcel_page(
        request, await asyncio.to_thread(wb.source.parcel, token), token, error=refusal, status=409
    )


async def parcel_code(request: web.Request) -> web.StreamResponse:
    """Reveal the pickup code on an explicit press, not on page load: link previews must not use it up."""
    wb = get_web(request)
    token = request.match_info["token"]
    found = await asyncio.to_thread(wb.source.parcel, token) if TOKEN.fullmatch(token) else None
    if found is None:
        return wb.page(request, "parcel_missing.html", {}, status=404, no_store=True)
    code = await asyncio.to_thread(wb.source.reveal_code, token)
    if isinstance(code, Refusal):
        return await _parcel_page(request, found, token, error=code, status=409)
    # Read again: revealing the code changes what the page offers.
    return await _parcel_page(request, await asyncio.to_thread(wb.source.parcel, token), token, code=code)


async def sensors(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    entries = sorted(await asyncio.to_thread(wb.source.register), key=lambda e: (e.site, e.device))
    now = datetime.now(UTC)
    # Public: a window published without protection (policy `none`) is never shown here, as in the open API;
    # two page loads a window apart would otherwise give its raw counts.
    sums = await asyncio.to_thread(wb.source.flow_sums, now - timedelta(hours=24), now, protected_only=True)
    per_device = {e.device: flowstats.line_tables(sums, e.device) for e in entries}
    latest = sums.latest
    status = {d.device: d for d in await asyncio.to_thread(wb.source.devices)}
    context = {
        "entries": entries,
        "latest": latest,
        "lines": per_device,
        "status": status,
        "today": now.date(),
        "validations": await asyncio.to_thread(wb.source.validations),
    }
    return wb.page(request, "sensors.html", context)


async def sensors_json(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    entries = sorted(await asyncio.to_thread(wb.source.register), key=lambda e: (e.site, e.device))
    body = {
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "count": len(entries),
        "sensors": [e.model_dump(mode="json") for e in entries],
    }
    response = web.json_response(body)
    response.headers["Access-Control-Allow-Origin"] = "*"  # public data, meant for the city's register
    response.headers["Content-Disposition"] = 'inline; filename="sensors.json"'
    return response


async def home(request: web.Request) -> web.StreamResponse:
    """The hub's address on its own leads to what everyone may see; operators log in from there."""
    raise web.HTTPSeeOther("/sensors")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/r/{token}", parcel)
    app.router.add_post("/r/{token}/extend", parcel_extend)
    app.router.add_post("/r/{token}/code", parcel_code)
    app.router.add_get("/sensors", sensors)
    app.router.add_get("/sensors.json", sensors_json)
