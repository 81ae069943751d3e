"""Languages of the web pages: Dutch, German and English; chosen by ``?lang=``, then a cookie, then the browser."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Final

from aiohttp import web

from hub_server.web.messages import MESSAGES

LANGUAGES: Final = ("nl", "de", "en")
LANGUAGE_NAMES: Final = {"nl": "Nederlands", "de": "Deutsch", "en": "English"}
DEFAULT_LANGUAGE: Final = "nl"
COOKIE: Final = "lang"
COOKIE_MAX_AGE: Final = 365 * 24 * 3600

Translator = Callable[..., str]


def parse_accept_language(header: str) -> list[str]:
    """Primary language tags of an Accept-Language header, best first (q=0 dropped, malformed parts skipped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag:
            continue
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, index, tag.split("-")[0]))
    return [tag for _, _, tag in sorted(ranked)]


def requested_language(request: web.Request) -> str | None:
    """The language asked for explicitly in the query string, if it is one we have."""
    lang = request.query.get("lang", "").lower()
    return lang if lang in LANGUAGES else None


def negotiate(request: web.Request) -> str:
    explicit = requested_language(request)
    if explicit:
        return explicit
    cookie = request.cookies.get(COOKIE, "")
    if cookie in LANGUAGES:
        return cookie
    for tag in parse_accept_language(request.headers.get("Accept-Language", "")):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def remember_language(request: web.Request, response: web.StreamResponse) -> None:
    """Persist an explicit ``?lang=`` choice so every later page keeps it."""
    explicit = requested_language(request)
    if explicit and request.cookies.get(COOKIE) != explicit:
        response.set_cookie(COOKIE, explicit, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax", path="/")


def translate(lang: str, key: str, **values: object) -> str:
    """The message ``key`` in ``lang``; an unknown key shows itself so a gap is visible, never a crash."""
    texts = MESSAGES.get(key)
    if texts is None:
        return key
    text = texts.get(lang) or texts["en"]
    return text.format(**values) if values else text


def label(lang: str, prefix: str, value: str) -> str:
    """An enum value in the reader's language; a value without a translation shows as itself."""
    key = f"{prefix}.{value}"
    return translate(lang, key) if key in MESSAGES else value


def translator(lang: str) -> Translator:
    def _(key: str, **values: object) -> str:
        return translate(lang, key, **values)

    return _


def format_datetime(value: datetime | None, lang: str, zone: tzinfo, seconds: bool = False) -> str:
    """Local wall-clock time, numeric so it reads the same in every language (day-month-year order)."""
    if value is None:
        return translate(lang, "common.never")
    local = value.astimezone(zone)
    pattern = "%d-%m-%Y %H:%M:%S" if seconds else "%d-%m-%Y %H:%M"
    return local.strftime(pattern)


def format_age(seconds: float, lang: str) -> str:
    """A short 'how long ago' in the reader's language."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return translate(lang, "age.seconds", n=int(seconds))
    if seconds < 90 * 60:
        return translate(lang, "age.minutes", n=round(seconds / 60))
    if seconds < 36 * 3600:
        return translate(lang, "age.hours", n=round(seconds / 3600))
    return translate(lang, "age.days", n=round(seconds / 86400))


def format_number(value: float | int | None, lang: str, digits: int = 0) -> str:
    """Thousands and decimal separators as each language writes them."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    if lang in ("nl", "de"):
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text
