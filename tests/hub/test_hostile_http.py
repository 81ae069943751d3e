"""Hostile HTTP input against the whole real hub (API and pages): forms that cannot be parsed and times at the
ends of the calendar. Each gets a 4xx that says what is wrong, never a 500, and leaves the database as it was."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_server.api.registry import API_PREFIX, QueryDatetime
from hub_server.app import API_KEY, create_app
from hub_server.config import HubConfig
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from hub_server.store.engine import connect
from tests.hub.conftest import ClientFactory, add_token, add_user, login
from tests.hub.test_api_data import T0, insert_device, insert_window

MALFORMED_FORMS = [
    ("multipart/form-data; boundary=zz", b"\xff\xfe\x00 no boundary line at all"),
    ("multipart/form-data", b"--zz\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--zz--\r\n"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=x\r\n\r\n1"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nno header colon\r\n\r\n1\r\n--zz--\r\n"),
    ("application/x-www-form-urlencoded", b"\xff\xfe=\xc0\xaf&%zz=%&csrf_token=%00"),
    ("application/x-www-form-urlencoded; charset=utf-16", b"a=b"),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"a=b"),
    (
        "multipart/form-data; boundary=zz",
        b"--zz\r\nContent-Disposition: form-data; name=x\r\nContent-Type: text/plain; charset=no-such\r\n\r\n1\r\n--zz--\r\n",
    ),
]

HOSTILE_TIMES = [
    "0001-01-01T00:00:00Z",  # a day or a week before it overflows
    "0001-01-01T00:00:00+05:00",  # before year 1 once in UTC
    "9999-12-31T23:59:59-12:00",  # after year 9999 once in UTC
    "9999-12-31T23:59:59.999999Z",  # rounds up to year 10000 as a Unix time
]


def snapshot(location: Path | str) -> list[str]:
    """Every table's rows, sorted; sessions' and tokens' last-use times move on every request and are left out."""
    conn = connect(location)
    try:
        rows = list(conn.dump())
    finally:
        conn.close()
    return sorted(r for r in rows if "sessions" not in r[:40] and "api_tokens" not in r[:40])


@pytest.fixture
async def full_client(hub_config: HubConfig, db: Database, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    insert_device(db, "cam-1")
    insert_window(db, "cam-1", T0, {("door", "in", "pedestrian"): 12})
    app = create_app(hub_config, database=db, background=False, pages=True)
    return await aiohttp_client(app)


def _post_paths(app: web.Application) -> list[str]:
    paths = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        if route.method == "POST" and template:
            paths.append(re.sub(r"\{[^}]+\}", lambda m: "1" if "id" in m.group(0) else "cam-1", template))
    return sorted(set(paths))


async def test_a_form_that_cannot_be_parsed_gets_a_400_on_every_post_and_changes_nothing(
    full_client: TestClient[Any, Any], db: Database
) -> None:
    add_user(db, "ada", Role.ADMIN)
    token = add_token(db, Role.ADMIN)
    csrf = await login(full_client, "ada")
    paths = _post_paths(full_client.app)
    assert "/login" in paths and f"{API_PREFIX}/devices" in paths
    before = snapshot(db.location)
    failures = []
    for who, headers in (
        ("session", {"X-CSRF-Token": csrf}),
        ("session, token in the form", {}),
        ("token", {"Authorization": f"Bearer {token}"}),
    ):
        for path in paths:
            for content_type, body in MALFORMED_FORMS:
                response = await full_client.post(
                    path, data=body, headers={**headers, "Content-Type": content_type}, allow_redirects=False
                )
                text = await response.text()
                if response.status >= 500 or "Traceback" in text:
                    failures.append(f"{who} POST {path} {content_type} {body[:20]!r}: {response.status} {text[:80]}")
    full_client.session.cookie_jar.clear()
    for path in paths:
        for content_type, body in MALFORMED_FORMS:
            response = await full_client.post(path, data=body, headers={"Content-Type": content_type})
            if response.status >= 500:
                failures.append(f"anonymous POST {path} {content_type}: {response.status}")
    assert not failures, "\n".join(failures)
    assert snapshot(db.location) == before
    # The answer says what is wrong with the body.
    response = await full_client.post(
        "/login", data=MALFORMED_FORMS[0][1], headers={"Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert response.status == 400
    problem = await response.json()
    assert problem["detail"] == "the form body cannot be read" and problem["problems"][0].startswith("body: ")


async def test_times_at_the_ends_of_the_calendar_are_answered_never_a_500(
    full_client: TestClient[Any, Any], db: Database
) -> None:
    """Valid RFC 3339, so valid to the API's schema: the search is empty. until=0001-01-01T00:00:00Z overflowed
    the default start a day or a week before it, and a zone past year 9999 overflowed the audit log's UTC text."""
    headers = {"Authorization": f"Bearer {add_token(db, Role.ADMIN)}"}
    operations = [
        (op, name)
        for op in full_client.app[API_KEY].operations
        if op.method == "GET" and op.query is not None and "{" not in op.path
        for name, field in op.query.model_fields.items()
        if field.annotation in (QueryDatetime, QueryDatetime | None)
    ]
    assert {op.path for op, _ in operations} >= {"/flows", "/flows/totals", "/audit"}
    before = snapshot(db.location)
    failures = []
    for op, name in operations:
        for value in HOSTILE_TIMES:
            response = await full_client.get(API_PREFIX + op.path, params={name: value}, headers=headers)
            if response.status != 200 or not isinstance(await response.json(), list | dict):
                failures.append(f"GET {op.path}?{name}={value}: {response.status} {await response.text()}")
    assert not failures, "\n".join(failures)
    assert snapshot(db.location) == before
    # Still found between the ends, and a time without a zone is still refused naming the parameter.
    everything = {"since": "0001-01-01T00:00:00+05:00", "until": "9999-12-31T23:59:59-12:00"}
    assert len(await (await full_client.get(f"{API_PREFIX}/flows", params=everything, headers=headers)).json()) == 1
    response = await full_client.get(f"{API_PREFIX}/flows", params={"until": "2026-05-04T08:00:00"}, headers=headers)
    assert response.status == 400 and (await response.json())["problems"][0].startswith("query.until:")


async def test_the_flows_page_shows_today_for_a_day_at_the_ends_of_the_calendar(
    full_client: TestClient[Any, Any], db: Database
) -> None:
    """A week before 0001-01-07 or a day after 9999-12-31 overflowed: a 500 instead of the page."""
    add_user(db, "ada", Role.VIEWER)
    await login(full_client, "ada")
    today = re.search(
        r'name="day" type="date" value="([0-9-]+)"', await (await full_client.get("/dashboard/flows")).text()
    )
    assert today is not None
    for day in ("0001-01-01", "0001-01-07", "9999-12-31"):
        for extra in ("", "&device=cam-1"):
            response = await full_client.get(f"/dashboard/flows?day={day}{extra}")
            assert response.status == 200, f"{day}{extra}: {response.status}"
            assert f'name="day" type="date" value="{today.group(1)}"' in await response.text()
