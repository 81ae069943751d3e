"""Devices, health and flows through the API; the public open-data endpoint publishes protected counts only."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from hub_protocol.codec import encode
from hub_protocol.envelope import Availability, AvailabilityState, CameraState, Health
from hub_protocol.flows import (
    Direction,
    FlowCell,
    FlowWindow,
    ObjectClass,
    PolicyKind,
    PrivacyPolicy,
    WindowQuality,
)
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store import provisioning
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from hub_server.store.retention import roll_up_batch
from tests.hub.conftest import add_token

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
PREFIX = "cot"


def ingest(db: Database, site: str, device: str, channel: Channel, message: BaseModel) -> None:
    """Store one message the way the hub does: through the ingest's writer, not by hand."""
    core = IngestCore(db.location, PREFIX, IngestConfig())
    try:
        core.process([(device_topic(PREFIX, site, device, channel), encode(message), datetime.now(UTC).timestamp())])
    finally:
        core.close()


def insert_window(
    db: Database,
    device: str,
    start: datetime,
    cells: dict[tuple[str, str, str], int | None],
    *,
    policy: str = "threshold",
    site: str = "main-street",
    seq: int = 1,
) -> None:
    window = FlowWindow(
        device=device,
        boot="boot-1",
        seq=seq,
        window_start=start,
        window_seconds=900,
        cells=[
            FlowCell(line=line, direction=Direction(direction), object_class=ObjectClass(cls), count=count)
            for (line, direction, cls), count in cells.items()
        ],
        quality=WindowQuality(observed_fraction=0.98, mean_fps=7.5, dropped_frames=0),
        policy=PrivacyPolicy(kind=PolicyKind(policy), k=5 if policy == "threshold" else None),
    )
    ingest(db, site, device, Channel.FLOW, window)


def insert_device(db: Database, device: str, site: str = "main-street", online: bool = True) -> None:
    state = AvailabilityState.ONLINE if online else AvailabilityState.OFFLINE
    ingest(db, site, device, Channel.STATUS, Availability(device=device, boot="boot-1", state=state, graceful=True))
    health = Health(
        device=device,
        boot="boot-1",
        at=datetime.now(UTC) - timedelta(seconds=60),
        uptime_s=100,
        version="0.1.0",
        cpu_temp_c=51.5,
        load1=0.4,
        mem_used_fraction=0.3,
        disk_free_bytes=1_000_000,
        outbox_depth=3,
        outbox_oldest_age_s=12.0,
        dropped_total=0,
        camera_state=CameraState.OK,
        fps=7.5,
    )
    ingest(db, site, device, Channel.HEALTH, health)


@pytest.fixture
def viewer(db: Database) -> dict[str, str]:
    return {"Authorization": f"Bearer {add_token(db, Role.VIEWER)}"}


@pytest.fixture
def stored(db: Database) -> None:
    insert_device(db, "cam-1")
    insert_device(db, "cam-2", site="side-street", online=False)
    insert_window(db, "cam-1", T0, {("door", "in", "pedestrian"): 12, ("door", "out", "pedestrian"): None})
    insert_window(db, "cam-1", T0 + timedelta(minutes=15), {("door", "in", "cyclist"): 5}, seq=2)
    insert_window(db, "cam-2", T0, {("gate", "in", "pedestrian"): 3}, policy="none", site="side-street")


async def test_devices_list_and_detail(client: TestClient[Any, Any], viewer: dict[str, str], stored: None) -> None:
    devices = await (await client.get("/api/v1/devices", headers=viewer)).json()
    assert [(d["device"], d["online"]) for d in devices] == [("cam-1", True), ("cam-2", False)]
    only = await (await client.get("/api/v1/devices?site=side-street", headers=viewer)).json()
    assert [d["device"] for d in only] == ["cam-2"]
    assert (await client.get("/api/v1/devices/nope", headers=viewer)).status == 404
    assert (await client.get("/api/v1/devices/Not%20An%20Id", headers=viewer)).status == 404
    health = await (await client.get("/api/v1/devices/cam-1/health", headers=viewer)).json()
    assert [(h["camera_state"], h["outbox_depth"]) for h in health] == [("ok", 3)]


async def test_flows_filter_by_device_line_class_and_time(
    client: TestClient[Any, Any], viewer: dict[str, str], stored: None
) -> None:
    since = (T0 - timedelta(hours=1)).isoformat()
    until = (T0 + timedelta(hours=1)).isoformat()
    base = {"since": since, "until": until}
    everything = await (await client.get("/api/v1/flows", params=base, headers=viewer)).json()
    assert len(everything) == 4
    cyclists = await (
        await client.get("/api/v1/flows", params={**base, "object_class": "cyclist"}, headers=viewer)
    ).json()
    assert [(c["device"], c["count"]) for c in cyclists] == [("cam-1", 5)]
    first = await (
        await client.get(
            "/api/v1/flows",
            params={**base, "device": "cam-1", "line": "door", "until": (T0 + timedelta(minutes=1)).isoformat()},
            headers=viewer,
        )
    ).json()
    assert sorted((c["direction"], c["count"]) for c in first) == [("in", 12), ("out", None)]


async def test_flows_as_csv(client: TestClient[Any, Any], viewer: dict[str, str], stored: None) -> None:
    params = {"since": T0.isoformat(), "until": (T0 + timedelta(minutes=1)).isoformat(), "format": "csv"}
    response = await client.get("/api/v1/flows", params=params, headers=viewer)
    assert response.status == 200
    assert response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    counts = sorted((r["device"], r["direction"], r["count"]) for r in rows)
    assert counts == [("cam-1", "in", "12"), ("cam-1", "out", ""), ("cam-2", "in", "3")]


@pytest.mark.parametrize(
    "query",
    [
        "object_class=dog",
        "since=2026-05-04T08:00:00",  # no time zone
        "since=0.5",  # not read as a Unix time
        "limit=0",
        "format=xml",
        "device=CAM",
        "line=a&line=b",
    ],
)
async def test_flows_reject_bad_filters(client: TestClient[Any, Any], viewer: dict[str, str], query: str) -> None:
    response = await client.get(f"/api/v1/flows?{query}", headers=viewer)
    assert response.status == 400
    assert (await response.json())["problems"]


async def test_an_empty_time_range_has_no_cells(
    client: TestClient[Any, Any], viewer: dict[str, str], stored: None
) -> None:
    params = {"since": (T0 + timedelta(hours=1)).isoformat(), "until": T0.isoformat()}
    response = await client.get("/api/v1/flows", params=params, headers=viewer)
    assert response.status == 200
    assert await response.json() == []


async def test_flows_need_a_login(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/v1/flows")).status == 401


async def test_open_data_is_public_and_only_protected(client: TestClient[Any, Any], stored: None) -> None:
    params = {"since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
    response = await client.get("/api/v1/open/flows", params=params)
    assert response.status == 200
    cells = await response.json()
    assert {c["device"] for c in cells} == {"cam-1"}  # cam-2 published without protection
    assert {c["policy"] for c in cells} == {"threshold"}
    assert any(c["count"] is None for c in cells)  # suppressed stays suppressed
    text = await (await client.get("/api/v1/open/flows", params={**params, "format": "csv"})).text()
    assert text.splitlines()[0].startswith("window_start,window_seconds,site,device,line")
    assert len(text.splitlines()) == 1 + len(cells)
    assert "boot" not in text and "seq" not in text.splitlines()[0]


async def test_hourly_totals_mark_lower_bounds_and_open_data_keeps_protected_only(
    client: TestClient[Any, Any], viewer: dict[str, str], db: Database, stored: None
) -> None:
    with db.write() as conn:
        assert roll_up_batch(conn) == 3
    params = {"resolution": "hour", "since": T0.isoformat(), "until": (T0 + timedelta(hours=1)).isoformat()}
    totals = await (await client.get("/api/v1/flows/totals", params=params, headers=viewer)).json()
    door_in = [t for t in totals if (t["device"], t["direction"], t["object_class"]) == ("cam-1", "in", "pedestrian")]
    assert [(t["count"], t["lower_bound"]) for t in door_in] == [(12, False)]
    door_out = [t for t in totals if (t["device"], t["direction"]) == ("cam-1", "out")]
    assert [(t["count"], t["lower_bound"]) for t in door_out] == [(0, True)]  # suppressed: "at least 0"
    public = await (await client.get("/api/v1/open/flows/totals", params=params)).json()
    assert {t["device"] for t in public} == {"cam-1"}
    text = await (await client.get("/api/v1/open/flows/totals", params={**params, "format": "csv"})).text()
    assert text.splitlines()[0].startswith("bucket_start,resolution,site,device,line")
    assert len(text.splitlines()) == 1 + len(public)


def register_entry(device: str, site: str) -> RegisterEntry:
    return RegisterEntry(
        device=device,
        site=site,
        sensor_type="optical sensor (camera), on-device counting",
        measures=["pedestrians and cyclists crossing a line"],
        purpose="Know how busy the street is",
        legal_ground="public task",
        organisation="Neighbourhood association",
        contact="sensors@example.org",
        leaves_device=["counts per 15 minutes"],
        never_leaves=["images", "tracks"],
        privacy=PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=5),
        retention="90 days, then hourly totals",
        active_until=date(2027, 12, 31),
        location="Main Street, near number 10",
    )


async def test_open_register_lists_active_devices_only(client: TestClient[Any, Any], db: Database) -> None:
    ingest(db, "main-street", "cam-1", Channel.REGISTER, register_entry("cam-1", "main-street"))
    ingest(db, "main-street", "cam-old", Channel.REGISTER, register_entry("cam-old", "main-street"))
    with db.write() as conn:
        provisioning.add(conn, "cam-old", "main-street", "cam-old", "test")
        provisioning.revoke(conn, "cam-old")
    response = await client.get("/api/v1/open/register")
    assert response.status == 200
    entries = await response.json()
    assert [(e["device"], e["never_leaves"]) for e in entries] == [("cam-1", ["images", "tracks"])]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
