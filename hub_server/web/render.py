"""Page rendering: one Jinja2 environment with auto-escaping, the reader's language and safe headers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from hub_server.web import i18n
from hub_server.web.messages import MESSAGES

SECURITY_HEADERS = {
    # Inline SVG uses presentation attributes only, so neither inline script nor inline style is needed.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # resident links carry a token in the path: never leak it onwards
    "X-Frame-Options": "DENY",
}


def make_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hub_server.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the tests instead of rendering blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def language_links(request: web.Request, path: str | None = None) -> list[dict[str, str]]:
    """The current page in each language (``?lang=`` added to the query, everything else kept).

    A page rendered as the answer to a form post names the page to switch on instead (``path``): the
    post's own URL cannot be fetched with GET.
    """
    links = []
    for lang in i18n.LANGUAGES:
        query = {k: v for k, v in request.query.items() if k != "lang"} if path is None else {}
        query["lang"] = lang
        target = path or request.path
        links.append({"lang": lang, "name": i18n.LANGUAGE_NAMES[lang], "href": f"{target}?{urlencode(query)}"})
    return links


def render(
    env: jinja2.Environment,
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    zone: tzinfo,
    status: int = 200,
    no_store: bool = False,
) -> web.Response:
    lang = i18n.negotiate(request)
    now = datetime.now(UTC)

    def dt(value: datetime | None, seconds: bool = False) -> str:
        return i18n.format_datetime(value, lang, zone, seconds)

    def ago(value: datetime | None) -> str:
        if value is None:
            return i18n.translate(lang, "common.never")
        return i18n.format_age((now - value).total_seconds(), lang)

    def num(value: float | int | None, digits: int = 0) -> str:
        return i18n.format_number(value, lang, digits)

    full = {
        "lang": lang,
        "_": i18n.translator(lang),
        "lbl": lambda prefix, value: i18n.label(lang, prefix, str(value)),
        "opt": lambda key: i18n.translate(lang, key) if key in MESSAGES else "",
        "languages": language_links(request, None if request.method == "GET" else context.get("lang_path", "/")),
        "path": request.path,
        "now": now,
        "dt": dt,
        "ago": ago,
        "num": num,
        "age": lambda seconds: i18n.format_age(float(seconds), lang),
        **context,
    }
    body = env.get_template(template).render(full)
    response = web.Response(text=body, content_type="text/html", charset="utf-8", status=status)
    response.headers.update(SECURITY_HEADERS)
    if no_store:
        response.headers["Cache-Control"] = "no-store"
    i18n.remember_language(request, response)
    return response
