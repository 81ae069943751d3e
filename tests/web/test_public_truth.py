"""What the public sees is what the rules promise: no counts of a device that publishes without protection
(policy `none`) on /sensors, /sensors.json or the open API, and every register entry states the hub's own
retention settings, whatever the device sent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_protocol.flows import PolicyKind, PrivacyPolicy
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import Channel
from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.store import provisioning
from hub_server.store.db import Database
from tests.hub.conftest import ClientFactory
from tests.hub.test_api_data import ingest, insert_window


def entry(device: str, policy: PolicyKind) -> RegisterEntry:
    if policy is PolicyKind.DP:
        protection = PrivacyPolicy(kind=policy, epsilon=0.5, max_crossings=2, daily_budget=96, day_share=0.3)
    else:
        protection = PrivacyPolicy(kind=policy, k=5 if policy is PolicyKind.THRESHOLD else None)
    return RegisterEntry(
        device=device,
        site="main-street",
        sensor_type="optical sensor (camera), on-device counting",
        measures=["pedestrians crossing a line"],
        purpose="Plan the pavement",
        legal_ground="public task",
        organisation="Field lab",
        contact="lab@example.org",
        leaves_device=["counts per window"],
        never_leaves=["camera images"],
        privacy=protection,
        retention="deleted after 1 day",  # what an older device config said: free text, and wrong
        active_until=date.today() + timedelta(days=30),
        location="Main Street, Amsterdam",
    )


@pytest.fixture
def hub(hub_config: HubConfig) -> HubConfig:
    return hub_config.model_copy(
        update={
            "retention": hub_config.retention.model_copy(update={"raw_days": 30, "hourly_days": 400}),
            "logistics": hub_config.logistics.model_copy(update={"personal_data_days": 9}),
        }
    )


@pytest.fixture
async def public(hub: HubConfig, db: Database, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    with db.write() as conn:
        for device in ("cam-open", "cam-raw", "cam-dp"):
            provisioning.add(conn, device, "main-street", device, "test")
    ingest(db, "main-street", "cam-open", Channel.REGISTER, entry("cam-open", PolicyKind.THRESHOLD))
    ingest(db, "main-street", "cam-raw", Channel.REGISTER, entry("cam-raw", PolicyKind.NONE))
    ingest(db, "main-street", "cam-dp", Channel.REGISTER, entry("cam-dp", PolicyKind.DP))
    insert_window(db, "cam-open", start, {("frontdoor", "in", "pedestrian"): 12})
    insert_window(db, "cam-raw", start, {("backyard", "in", "pedestrian"): 7}, policy="none")
    # A device whose register says threshold but which sent one window without protection (a policy change).
    insert_window(db, "cam-open", start, {("sidegate", "in", "pedestrian"): 4}, policy="none", seq=2)
    app: web.Application = create_app(hub, database=db, background=False)
    return await aiohttp_client(app)


async def test_sensors_page_shows_protected_counts_only(public: TestClient[Any, Any]) -> None:
    text = await (await public.get("/sensors?lang=en")).text()
    raw = text[text.index('id="sensor-cam-raw"') :]
    raw = raw[: raw.index("</article>")]
    assert "counts are not published" in raw
    assert "backyard" not in text and "<table" not in raw
    opened = text[text.index('id="sensor-cam-open"') :]
    opened = opened[: opened.index("</article>")]
    assert "frontdoor" in opened and "12" in opened  # protected counts are still shown
    assert "sidegate" not in opened  # the window is left out by its own policy, not by the register's


async def test_exports_and_open_api_leave_unprotected_counts_out(public: TestClient[Any, Any]) -> None:
    exported = await (await public.get("/sensors.json")).text()
    assert (
        "backyard" not in exported and "sidegate" not in exported and "cam-raw" in exported
    )  # the entry is public, its counts are not
    flows = await (await public.get("/api/v1/open/flows")).json()  # the last 24 hours
    assert {c["device"] for c in flows} == {"cam-open"}


async def test_register_retention_is_the_hubs(public: TestClient[Any, Any], hub: HubConfig) -> None:
    body = await (await public.get("/sensors.json")).json()
    statements = {s["device"]: s["retention"] for s in body["sensors"]}
    api = await (await public.get("/api/v1/open/register")).json()
    page = await (await public.get("/sensors?lang=en")).text()
    assert set(statements) == {"cam-open", "cam-raw", "cam-dp"}
    for statement in [*statements.values(), *(e["retention"] for e in api)]:
        assert "deleted after 1 day" not in statement
        # The numbers the hub's retention enforces, from its config.
        assert f"{hub.retention.raw_days} days as received" in statement
        assert f"hourly totals {hub.retention.hourly_days} days" in statement
        assert f"{hub.logistics.personal_data_days} days after" in statement
    assert "deleted after 1 day" not in page and "30 days as received" in page


async def test_dp_text_states_the_per_person_cap(public: TestClient[Any, Any]) -> None:
    """epsilon is per crossing: the page must say how many crossings of one person count, and what a window
    costs that person, or "epsilon 0.5" would read as a per-person guarantee it is not."""
    text = await (await public.get("/sensors?lang=en")).text()
    dp = text[text.index('id="sensor-cam-dp"') :]
    dp = dp[: dp.index("</article>")]
    assert "at most 2 crossings to a window" in dp
    assert "ε = 0.5 per crossing counted, 1 per window, at most 96" in dp
