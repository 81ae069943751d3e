"""Languages: every text exists in all three, placeholders agree, and the choice follows query, cookie, browser."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hub_server.web import i18n
from hub_server.web.messages import MESSAGES

TEMPLATES = Path(i18n.__file__).parent / "templates"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_message_in_every_language_with_the_same_placeholders(key: str) -> None:
    texts = MESSAGES[key]
    assert set(texts) == set(i18n.LANGUAGES)
    assert all(t.strip() for t in texts.values()), key
    assert _fields(texts["nl"]) == _fields(texts["en"]) == _fields(texts["de"]), key


def test_every_key_the_templates_use_exists() -> None:
    used: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"_\('([a-z_.-]+)'", path.read_text()))
    # "_('dir.' + value)" builds the key from an enum value: the prefix must have entries.
    missing = sorted(
        k for k in used if k not in MESSAGES and not (k.endswith(".") and any(m.startswith(k) for m in MESSAGES))
    )
    assert not missing, missing
    assert len(used) > 100  # the pattern really finds the template's texts


def test_accept_language_ranked_by_quality_then_order() -> None:
    assert i18n.parse_accept_language("de-DE,de;q=0.9,en;q=0.8") == ["de", "de", "en"]
    assert i18n.parse_accept_language("en;q=0.2, nl;q=0.9, fr") == ["fr", "nl", "en"]
    assert i18n.parse_accept_language("nl;q=0, de;q=bogus, en") == ["en"]
    assert i18n.parse_accept_language("") == []


def _request(path: str, headers: dict[str, str] | None = None) -> web.Request:
    return make_mocked_request("GET", path, headers=headers or {})


def test_query_beats_cookie_beats_browser_beats_default() -> None:
    assert i18n.negotiate(_request("/x", {"Accept-Language": "fr, de;q=0.5"})) == "de"
    assert i18n.negotiate(_request("/x", {"Accept-Language": "fr"})) == i18n.DEFAULT_LANGUAGE
    assert i18n.negotiate(_request("/x", {"Cookie": "lang=en", "Accept-Language": "de"})) == "en"
    assert i18n.negotiate(_request("/x?lang=de", {"Cookie": "lang=en"})) == "de"
    assert i18n.negotiate(_request("/x?lang=xx", {"Cookie": "lang=en"})) == "en"  # unknown choice ignored
    assert i18n.negotiate(_request("/x", {"Cookie": "lang=<script>"})) == i18n.DEFAULT_LANGUAGE


def test_explicit_choice_is_remembered_in_a_cookie() -> None:
    response = web.Response()
    i18n.remember_language(_request("/x?lang=de"), response)
    cookie = response.cookies["lang"]
    assert cookie.value == "de"
    assert cookie["samesite"] == "Lax"
    unchanged = web.Response()
    i18n.remember_language(_request("/x"), unchanged)
    assert "lang" not in unchanged.cookies


def test_numbers_and_times_per_language() -> None:
    assert i18n.format_number(12345.5, "en", 1) == "12,345.5"
    assert i18n.format_number(12345.5, "nl", 1) == "12.345,5"
    assert i18n.format_number(None, "de") == "–"
    moment = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # Amsterdam switches to summer time this night
    assert i18n.format_datetime(moment, "nl", ZoneInfo("Europe/Amsterdam")) == "29-03-2026 01:30"
    assert i18n.format_datetime(None, "de", ZoneInfo("UTC")) == "nie"
    assert i18n.format_age(30, "en") == "30 s ago"
    assert i18n.format_age(7200, "de") == "vor 2 Std."


def test_unknown_key_and_unknown_enum_value_show_themselves() -> None:
    assert i18n.translate("nl", "no.such.key") == "no.such.key"
    assert i18n.label("de", "alarm", "door-left-open") == "Tür offen gelassen"
    assert i18n.label("de", "alarm", "brand-new-kind") == "brand-new-kind"


def test_every_contract_value_the_pages_show_has_a_label() -> None:
    from hub_protocol.alarms import AlarmKind
    from hub_protocol.envelope import CameraState
    from hub_protocol.flows import Direction, ObjectClass
    from hub_protocol.lockers import CompartmentSize, CompartmentState
    from hub_server.logistics.service import DeliveryStatus
    from hub_server.store.accounts import Role

    for prefix, enum in (
        ("alarm", AlarmKind),
        ("camera", CameraState),
        ("dir", Direction),
        ("class", ObjectClass),
        ("comp", CompartmentState),
        ("size", CompartmentSize),
        ("delivery", DeliveryStatus),
        ("role", Role),
    ):
        for member in enum:
            assert f"{prefix}.{member.value}" in MESSAGES, f"{prefix}.{member.value}"
