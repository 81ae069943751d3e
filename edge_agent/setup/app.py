"""The setup page's aiohttp application: login with the one-time code, the line editor, tally, validation.

Everything is served from this package (HTML here, ``static/setup.js`` and ``setup.css``); the CSP allows
nothing else. The page answers private network addresses only and only while a grant is open. The picture
is the learned background from ``BackgroundSource``, encoded on request and never written anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import Field

from edge_agent.lockers.kiosk.app import CSP, _same_origin  # the kiosk's policy and origin check, shared
from edge_agent.setup.access import Access
from edge_agent.setup.calibration import BackgroundSource, png_of
from edge_agent.setup.i18n import LANGUAGE_NAMES, LANGUAGES, TEXT, text
from edge_agent.setup.saving import LinesSaver
from edge_agent.setup.tally import Tally
from edge_agent.setup.validation import ValidationRefused, Validator
from hub_protocol.accuracy import MAX_VALIDATION_MINUTES
from hub_protocol.flows import Direction, ObjectClass
from hub_protocol.validation import ConfigError, Identifier, StrictModel, validate_data

log = logging.getLogger(__name__)

COOKIE = "setup_session"


@dataclass
class SetupParts:
    """What the page works with; ``saver`` is None when the agent runs without a config store."""

    access: Access
    tally: Tally
    validator: Validator
    background: BackgroundSource
    lines: Callable[[], list[dict[str, Any]]]
    saver: LinesSaver | None
    language: str = "nl"
    instance: str = field(default_factory=lambda: secrets.token_hex(4))
    """Changes with every start of the agent: the page reloads the lines when it sees a new one."""


PARTS: web.AppKey[SetupParts] = web.AppKey("setup_parts", SetupParts)


class LineIn(StrictModel):
    name: str = Field(max_length=64)
    points: list[float] = Field(min_length=4, max_length=4)


class LinesIn(StrictModel):
    lines: list[LineIn] = Field(min_length=1, max_length=16)


class StartIn(StrictModel):
    minutes: float = Field(gt=0, le=MAX_VALIDATION_MINUTES)


class TallyIn(StrictModel):
    line: Identifier
    direction: Direction
    object_class: ObjectClass
    count: int = Field(ge=0, le=100_000)


class FinishIn(StrictModel):
    tallies: list[TallyIn] = Field(max_length=512)


class LoginIn(StrictModel):
    code: str = Field(min_length=1, max_length=32)


def _local(remote: str | None) -> bool:
    """Loopback, private and link-local addresses: the technician's laptop or phone on the site's network."""
    try:
        address = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_private or address.is_link_local


def _language(request: web.Request) -> str:
    for candidate in (request.query.get("lang"), request.cookies.get("setup_lang")):
        if candidate in LANGUAGES:
            return str(candidate)
    return request.app[PARTS].language


def _page(lang: str, body: str, status: int = 200, strings: bool = False) -> web.Response:
    current = ' aria-current="true"'
    links = "".join(
        f'<li><a href="/setup?lang={code}" lang="{code}" hreflang="{code}"'
        + (current if code == lang else "")
        + f">{escape(name)}</a></li>"
        for code, name in LANGUAGE_NAMES.items()
    )
    data = ""
    if strings:
        # Read by setup.js; a JSON block is data, not script, so the CSP does not need to allow it.
        table = json.dumps({**TEXT["en"], **TEXT.get(lang, {})}).replace("<", "\\u003c")
        data = f'<script type="application/json" id="strings">{table}</script>\n'
    title = escape(text(lang, "title"))
    html = f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/setup/static/setup.css">
{data}<script src="/setup/static/setup.js" defer></script>
</head>
<body>
<header><span class="brand">{title}</span>
<nav aria-label="{escape(text(lang, "languages"))}"><ul>{links}</ul></nav></header>
<main id="main">
{body}
</main>
</body>
</html>
"""
    response = web.Response(text=html, content_type="text/html", status=status)
    response.set_cookie("setup_lang", lang, httponly=True, samesite="Strict", path="/setup")
    return response


def _login_form(lang: str, wrong: bool = False) -> str:
    def t(key: str) -> str:
        return escape(text(lang, key))

    notice = f'<div class="message error" role="alert">{t("login_wrong")}</div>' if wrong else ""
    return f"""<h1>{t("login_heading")}</h1>
{notice}
<form method="post" action="/setup/login?lang={lang}">
<p id="login-help">{t("login_help")}</p>
<label for="code">{t("code_label")}</label>
<input type="text" id="code" name="code" autocomplete="off" required maxlength="32" autofocus
 aria-describedby="login-help">
<div class="actions"><button type="submit" class="primary">{t("login")}</button></div>
</form>"""


def _editor(lang: str, until: float | None, can_save: bool) -> str:
    def t(key: str, **values: object) -> str:
        return escape(text(lang, key, **values))

    closes = t("closes", at=datetime.fromtimestamp(until).strftime("%H:%M")) if until else ""
    saving = "" if can_save else f'<p class="message error">{t("no_saving")}</p>'
    minutes = f'min="0.1" max="{MAX_VALIDATION_MINUTES:g}" step="0.1" value="10"'
    return f"""<h1>{t("title")}</h1>
<p>{closes}</p>
<section aria-labelledby="lines-h">
<h2 id="lines-h">{t("lines_heading")}</h2>
<p id="lines-help">{t("lines_help")}</p>
<p id="picture-state" role="status" aria-live="polite">{t("picture_learning")}</p>
<div class="stage" id="stage">
<img id="picture" alt="{t("picture_alt")}" hidden>
<svg id="overlay" role="group" aria-label="{t("overlay_label")}" aria-describedby="lines-help"
 xmlns="http://www.w3.org/2000/svg"></svg>
</div>
{saving}
<div class="actions">
<button type="button" id="add-line">{t("add")}</button>
<button type="button" id="save-lines" class="primary"{"" if can_save else " disabled"}>{t("save")}</button>
</div>
<div id="save-status" role="status" aria-live="polite"></div>
<div id="line-list"></div>
</section>
<section aria-labelledby="tally-h">
<h2 id="tally-h">{t("tally_heading")}</h2>
<table id="tally"><caption>{t("tally_caption")}</caption>
<thead><tr><th scope="col">{t("line")}</th><th scope="col">{t("in")}</th><th scope="col">{t("out")}</th></tr></thead>
<tbody></tbody></table>
</section>
<section aria-labelledby="validation-h">
<h2 id="validation-h">{t("validation_heading")}</h2>
<p>{t("validation_help")}</p>
<div id="validation-setup" class="actions">
<label for="minutes">{t("minutes")}</label>
<input type="number" id="minutes" {minutes}>
<button type="button" id="start-validation" class="primary">{t("start")}</button>
</div>
<div id="validation-run" hidden>
<p id="remaining" role="timer" aria-live="off"></p>
<div id="tap-grid" class="tap-grid"></div>
<div class="actions">
<button type="button" id="finish-validation" class="primary">{t("finish")}</button>
<button type="button" id="cancel-validation">{t("cancel")}</button>
</div>
</div>
<div id="validation-result" role="status" aria-live="polite"></div>
</section>"""


def _parts(request: web.Request) -> SetupParts:
    return request.app[PARTS]


async def index(request: web.Request) -> web.Response:
    lang = _language(request)
    parts = _parts(request)
    until, signed_in = await _admit(request)
    if not signed_in:
        return _page(lang, _login_form(lang))
    return _page(lang, _editor(lang, until, parts.saver is not None), strings=True)


async def login(request: web.Request) -> web.Response:
    lang = _language(request)
    parts = _parts(request)
    as_json = request.content_type == "application/json"
    try:
        code = (
            LoginIn.model_validate(await request.json()).code
            if as_json
            else str((await request.post()).get("code", ""))
        )
    except ValueError:
        code = ""
    token = await asyncio.to_thread(parts.access.login, code[:32]) if code else None
    if token is None:
        if as_json:
            return web.json_response({"error": text("en", "login_wrong")}, status=403)
        return _page(lang, _login_form(lang, wrong=True), status=403)
    if as_json:
        response = web.json_response({"ok": True})
    else:
        response = web.Response(status=303, headers={"Location": f"/setup?lang={lang}"})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/setup")
    return response


def _encode_png(parts: SetupParts) -> bytes | None:
    image = parts.background.picture()
    return None if image is None else png_of(image)


async def picture(request: web.Request) -> web.Response:
    png = await asyncio.to_thread(_encode_png, _parts(request))
    if png is None:
        return web.json_response({"state": _parts(request).background.state()}, status=503)
    return web.Response(body=png, content_type="image/png")


async def state(request: web.Request) -> web.Response:
    parts = _parts(request)
    image = parts.background.picture()
    size = None if image is None else {"width": int(image.shape[1]), "height": int(image.shape[0])}
    return web.json_response(
        {
            "picture": parts.background.state(),
            "size": size,
            "lines": parts.lines(),
            "can_save": parts.saver is not None,
            "validation": parts.validator.status(),
            "until": (await _admit(request))[0],
            "instance": parts.instance,
        }
    )


async def tally(request: web.Request) -> web.Response:
    parts = _parts(request)
    counts = parts.tally.snapshot()
    rows = []
    for line in parts.lines():
        name = line["name"]
        row = {"line": name}
        for direction in ("in", "out"):
            row[direction] = sum(n for (ln, d, _), n in counts.items() if ln == name and d == direction)
        rows.append(row)
    return web.json_response({"lines": rows, "validation": parts.validator.status(), "instance": parts.instance})


def _problems(exc: ConfigError) -> web.Response:
    return web.json_response({"problems": exc.problems}, status=422)


async def _body(request: web.Request, model: type[StrictModel]) -> Any:
    try:
        data = await request.json()
    except ValueError:
        raise ConfigError("body", ["the body must be a JSON object"]) from None
    return validate_data(model, data, "body")


async def save_lines(request: web.Request) -> web.Response:
    parts = _parts(request)
    if parts.saver is None:
        return web.json_response({"problems": [text("en", "no_saving")]}, status=409)
    try:
        body: LinesIn = await _body(request, LinesIn)
        lines = [line.model_dump() for line in body.lines]
        outcome = await asyncio.to_thread(parts.saver.save, lines)
    except ConfigError as exc:
        return _problems(exc)
    return web.json_response({"outcome": outcome})


async def start_validation(request: web.Request) -> web.Response:
    try:
        body: StartIn = await _body(request, StartIn)
        run = _parts(request).validator.start(body.minutes)
    except ConfigError as exc:
        return _problems(exc)
    except ValidationRefused as exc:
        return web.json_response({"problems": [str(exc)]}, status=409)
    return web.json_response({"started_at": run.started_at.isoformat(), "planned_minutes": run.planned_minutes})


async def finish_validation(request: web.Request) -> web.Response:
    parts = _parts(request)
    try:
        body: FinishIn = await _body(request, FinishIn)
        tallied: dict[tuple[str, str, str], int] = {}
        for item in body.tallies:
            key = (item.line, item.direction.value, item.object_class.value)
            tallied[key] = tallied.get(key, 0) + item.count
        record = await asyncio.to_thread(parts.validator.finish, tallied)
    except ConfigError as exc:
        return _problems(exc)
    except ValidationRefused as exc:
        return web.json_response({"problems": [str(exc)]}, status=409)
    return web.json_response(record)


async def cancel_validation(request: web.Request) -> web.Response:
    _parts(request).validator.cancel()
    return web.json_response({"ok": True})


async def records(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_parts(request).validator.records))


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    types = {"setup.css": "text/css", "setup.js": "text/javascript"}
    if name not in types:
        raise web.HTTPNotFound()
    body = resources.files("edge_agent.setup").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=types[name], headers={"Cache-Control": "max-age=300"})


_OPEN = {("GET", "/setup"), ("POST", "/setup/login")}


async def _admit(request: web.Request) -> tuple[float | None, bool]:
    """Until when the page is open (None: closed) and whether the request has a session: the grant file is
    read off the event loop."""
    return await asyncio.to_thread(_parts(request).access.admission, request.cookies.get(COOKIE))


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Local network only, open grant only, a session for everything but the login, same-origin writes."""
    lang = _language(request)
    try:
        until, signed_in = await _admit(request) if _local(request.remote) else (None, False)
        if not _local(request.remote):
            response: web.StreamResponse = web.Response(text=text(lang, "forbidden"), status=403)
        elif until is None:
            response = _page(lang, f"<h1>{escape(text(lang, 'closed'))}</h1>", status=404)
        elif request.method == "POST" and not _same_origin(request):
            response = web.json_response({"error": "cross-origin requests are refused"}, status=403)
        elif (
            (request.method, request.path) not in _OPEN
            and not request.path.startswith("/setup/static/")
            and not signed_in
        ):
            response = web.json_response({"error": "log in with the setup code first"}, status=401)
        else:
            response = await handler(request)
    except web.HTTPException as exc:  # 404 and 405 of the router: no redirects are raised here
        response = web.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        log.exception("setup request failed")
        response = web.json_response({"error": text(lang, "problem")}, status=503)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def create_setup_app(parts: SetupParts) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[PARTS] = parts
    app.router.add_get("/setup", index)
    app.router.add_post("/setup/login", login)
    app.router.add_get("/setup/background.png", picture)
    app.router.add_get("/setup/api/state", state)
    app.router.add_get("/setup/api/tally", tally)
    app.router.add_post("/setup/api/lines", save_lines)
    app.router.add_post("/setup/api/validation/start", start_validation)
    app.router.add_post("/setup/api/validation/finish", finish_validation)
    app.router.add_post("/setup/api/validation/cancel", cancel_validation)
    app.router.add_get("/setup/api/validations", records)
    app.router.add_get("/setup/static/{name}", static_file)
    return app


def lines_of(config_lines: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": ln.name, "points": list(ln.points)} for ln in config_lines]
