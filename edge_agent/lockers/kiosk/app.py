"""The kiosk's aiohttp application: a code form, the outcome, and the door's progress.

Server-rendered HTML that works without JavaScript; ``kiosk.js`` only adds the on-screen keypad and a live
door status. No external assets: CSS and JS come from this package, and the CSP allows nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from html import escape
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from edge_agent.lockers.kiosk.i18n import LANGUAGE_NAMES, LANGUAGES, text
from edge_agent.lockers.machine import CodeOutcome, CompartmentView

log = logging.getLogger(__name__)

MAX_INPUT = 32
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class KioskBank(Protocol):
    """What the kiosk uses of ``LockerBank``."""

    def enter_code(self, code: str) -> CodeOutcome: ...
    def view(self, number: int) -> CompartmentView | None: ...
    def history_since(self, number: int, since: datetime) -> list[dict[str, Any]]: ...
    def now(self) -> datetime: ...


BANK: web.AppKey[KioskBank] = web.AppKey("bank", KioskBank)
DEFAULT_LANGUAGE: web.AppKey[str] = web.AppKey("default_language", str)


def _static(name: str) -> bytes:
    return resources.files("edge_agent.lockers.kiosk").joinpath("static", name).read_bytes()


def _language(request: web.Request) -> str:
    for candidate in (request.query.get("lang"), request.cookies.get("lang")):
        if candidate in LANGUAGES:
            return str(candidate)
    return request.app[DEFAULT_LANGUAGE]


def _page(lang: str, title: str, body: str, status: int = 200) -> web.Response:
    current = ' aria-current="true"'
    links = "".join(
        f'<li><a href="/?lang={code}" lang="{code}" hreflang="{code}"'
        + (current if code == lang else "")
        + f">{escape(name)}</a></li>"
        for code, name in LANGUAGE_NAMES.items()
    )
    html = f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {escape(text(lang, "title"))}</title>
<link rel="stylesheet" href="/static/kiosk.css">
<script src="/static/kiosk.js" defer></script>
</head>
<body>
<header><span class="brand">{escape(text(lang, "title"))}</span>
<nav aria-label="{escape(text(lang, "languages"))}"><ul>{links}</ul></nav></header>
<main id="main">
{body}
</main>
</body>
</html>
"""
    response = web.Response(text=html, content_type="text/html", status=status)
    response.set_cookie("lang", lang, httponly=True, samesite="Strict")
    return response


def _form(lang: str, message: str = "", error: bool = True) -> str:

    def t(key: str) -> str:
        return escape(text(lang, key))

    notice = ""
    if message:
        role = "alert" if error else "status"
        notice = f'<div class="message {"error" if error else "ok"}" role="{role}">{message}</div>'
    keys = "".join(f'<button type="button" data-key="{k}">{k}</button>' for k in "123456789")
    keys += (
        f'<button type="button" data-key="clear">{t("clear")}</button>'
        '<button type="button" data-key="0">0</button>'
        f'<button type="button" data-key="back" aria-label="{t("delete")}">⌫</button>'
    )
    return f"""<h1>{t("enter_heading")}</h1>
{notice}
<form method="post" action="/?lang={lang}">
<p id="help">{t("enter_help")}</p>
<label for="code">{t("code_label")}</label>
<input type="text" id="code" name="code" inputmode="numeric" pattern="[0-9]*" maxlength="12" minlength="6"
 autocomplete="off" required autofocus aria-describedby="help">
<div class="keys" id="keys" hidden>{keys}</div>
<div class="actions"><button type="submit" class="primary">{t("open")}</button></div>
</form>"""


async def index(request: web.Request) -> web.Response:
    lang = _language(request)
    return _page(lang, text(lang, "enter_heading"), _form(lang))


def _outcome_message(lang: str, outcome: CodeOutcome) -> str:
    if outcome.result == "wrong":
        message = text(lang, "wrong")
        if outcome.attempts_left is not None:
            message += " " + text(lang, "attempts_left", n=outcome.attempts_left)
        return escape(message)
    if outcome.result == "locked-out":
        return escape(text(lang, "locked_out", s=round(outcome.retry_after_s or 0)))
    key = {
        "expired": "expired",
        "used": "used",
        "not-ready": "not_ready",
        "out-of-service": "out_of_service",
        "busy": "busy",
    }.get(outcome.result, "problem")
    return escape(text(lang, key))


def _same_origin(request: web.Request) -> bool:
    """Refuse posts from other sites' pages (the kiosk browser may have visited one)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser form post from another page (curl, tests, the demo)
    return origin != "null" and urlsplit(origin).netloc == request.host


async def submit(request: web.Request) -> web.Response:
    lang = _language(request)
    if not _same_origin(request):
        return _page(lang, text(lang, "problem"), _form(lang, escape(text(lang, "problem"))), status=403)
    form = await request.post()
    code = str(form.get("code", "")).strip()
    if not code or len(code) > MAX_INPUT:
        return _page(lang, text(lang, "enter_heading"), _form(lang, escape(text(lang, "bad_input"))), status=400)
    bank = request.app[BANK]
    since = bank.now()
    outcome = await asyncio.get_running_loop().run_in_executor(None, bank.enter_code, code)
    if outcome.result != "opened" or outcome.compartment is None:
        return _page(lang, text(lang, "enter_heading"), _form(lang, _outcome_message(lang, outcome)))
    n = outcome.compartment
    purpose = outcome.purpose.value if outcome.purpose is not None else "pickup"
    status_url = f"/status/{n}?since={quote(since.isoformat())}&lang={lang}"
    body = f"""<h1>{escape(text(lang, "opened_heading", n=n))}</h1>
<div class="message ok" role="status">
<p>{escape(text(lang, "opened_find", n=n))}</p>
<p>{escape(text(lang, "do_" + purpose))}</p>
<p>{escape(text(lang, "close_door"))}</p>
</div>
<p class="status" id="door-status" aria-live="polite" data-status-url="{escape(status_url)}"
 data-home="/?lang={lang}">{escape(text(lang, "waiting"))}</p>
<div class="actions"><a class="button" href="/?lang={lang}">{escape(text(lang, "start_again"))}</a></div>"""
    return _page(lang, text(lang, "opened_heading", n=n), body)


async def submit_json(request: web.Request) -> web.Response:
    """``{"code": "..."}`` -> what happened, for touchscreen front ends of other kinds (and the demo)."""
    if not _same_origin(request):
        return web.json_response({"error": "cross-origin requests are refused"}, status=403)
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": 'the body must be JSON like {"code": "12345678"}'}, status=400)
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_INPUT or set(body) != {"code"}:
        return web.json_response({"error": "give exactly one field, code: 6 to 12 digits as a string"}, status=400)
    bank = request.app[BANK]
    outcome = await asyncio.get_running_loop().run_in_executor(None, bank.enter_code, code)
    return web.json_response(
        {
            "result": outcome.result,
            "compartment": outcome.compartment,
            "purpose": None if outcome.purpose is None else outcome.purpose.value,
            "attempts_left": outcome.attempts_left,
            "retry_after_s": outcome.retry_after_s,
        }
    )


async def status(request: web.Request) -> web.Response:
    lang = _language(request)
    bank = request.app[BANK]
    try:
        number = int(request.match_info["number"])
        since = datetime.fromisoformat(request.query["since"])
        if since.tzinfo is None:
            raise ValueError("since needs a time zone")
    except (KeyError, ValueError):
        return web.json_response({"error": "give a compartment number and ?since=<ISO time with zone>"}, status=400)
    # SQLite reads, polled every second by each open page: never on the event loop.
    view = await asyncio.to_thread(bank.view, number)
    if view is None:
        return web.json_response({"error": f"there is no compartment {number}"}, status=404)
    causes = [str(h["cause"]) for h in await asyncio.to_thread(bank.history_since, number, since)]
    if "not-opened" in causes:
        phase = "not-opened"
    elif view.door_open:
        phase = "open"
    elif "door-opened" in causes and not view.opening:
        phase = "closed"
    else:
        phase = "waiting"
    key = {"not-opened": "not_opened", "open": "door_open", "closed": "door_closed", "waiting": "waiting"}[phase]
    return web.json_response({"phase": phase, "text": text(lang, key)}, headers={"Cache-Control": "no-store"})


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    types = {"kiosk.css": "text/css", "kiosk.js": "text/javascript"}
    if name not in types:
        raise web.HTTPNotFound()
    return web.Response(body=_static(name), content_type=types[name], headers={"Cache-Control": "max-age=300"})


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Security headers on everything; a plain page instead of a traceback for anything unexpected."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPNotFound:
        lang = _language(request)
        response = _page(lang, text(lang, "not_found"), f"<h1>{escape(text(lang, 'not_found'))}</h1>", status=404)
    except web.HTTPMethodNotAllowed:
        response = web.Response(text="method not allowed", status=405)
    except Exception:
        log.exception("kiosk request failed")
        lang = _language(request)
        response = _page(lang, text(lang, "problem"), _form(lang, escape(text(lang, "problem"))), status=503)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_kiosk_app(bank: KioskBank, language: str = "nl") -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=4096)
    app[BANK] = bank
    app[DEFAULT_LANGUAGE] = language
    app.router.add_get("/", index)
    app.router.add_post("/", submit)
    app.router.add_post("/api/code", submit_json)
    app.router.add_get("/status/{number}", status)
    app.router.add_get("/static/{name}", static_file)
    return app
