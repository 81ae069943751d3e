"""The setup page over HTTP: closed unless granted, one-time code, lines saved through the config store,
a live tally, and a validation that leaves the device only as protected totals."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient

from edge_agent.config import load_agent_config
from edge_agent.setup.access import MAX_FAILURES, close_setup, open_setup, parse_duration, read_grant
from edge_agent.setup.app import _local, create_setup_app
from edge_agent.setup.calibration import CalibrationBackground
from hub_protocol.accuracy import ValidationRecord
from hub_protocol.topics import Channel
from tests.setup.conftest import Rig, wait_picture

ClientMaker = Callable[..., Any]


async def signed_in(rig: Rig, aiohttp_client: ClientMaker) -> TestClient:  # type: ignore[type-arg]
    code = open_setup(rig.state_dir, 600)
    client: TestClient = await aiohttp_client(create_setup_app(rig.parts))  # type: ignore[type-arg]
    response = await client.post("/setup/login", data={"code": code}, allow_redirects=False)
    assert response.status == 303
    return client


async def test_closed_unless_granted_and_the_code_works_once(
    make_setup: Callable[..., Rig], aiohttp_client: ClientMaker
) -> None:
    rig = make_setup()
    client = await aiohttp_client(create_setup_app(rig.parts))
    closed = await client.get("/setup")
    assert closed.status == 404 and "closed" in await closed.text()
    code = open_setup(rig.state_dir, 600)
    assert code is not None and re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", code)
    assert code not in (rig.state_dir / "setup" / "access.json").read_text(), "only the code's hash is kept"
    form = await client.get("/setup")
    html = await form.text()
    assert form.status == 200 and '<label for="code">' in html
    assert "default-src 'none'" in form.headers["Content-Security-Policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external assets"
    assert (await client.get("/setup/api/state")).status == 401
    assert (await client.get("/setup/background.png")).status == 401
    assert (await client.post("/setup/login", data={"code": "wrong-guess"})).status == 403
    assert (await client.post("/setup/login", data={"code": code}, allow_redirects=False)).status == 303
    assert (await client.get("/setup/api/state")).status == 200
    other = await aiohttp_client(create_setup_app(rig.parts))
    assert (await other.post("/setup/login", data={"code": code})).status == 403, "a code works once"
    close_setup(rig.state_dir)
    assert (await client.get("/setup/api/state")).status == 404, "closing ends every session"


async def test_wrong_codes_close_the_page(make_setup: Callable[..., Rig], aiohttp_client: ClientMaker) -> None:
    rig = make_setup()
    code = open_setup(rig.state_dir, 600)
    client = await aiohttp_client(create_setup_app(rig.parts))
    for _ in range(MAX_FAILURES):
        assert (await client.post("/setup/login", data={"code": "aaaaa-aaaaa"})).status == 403
    assert (await client.post("/setup/login", data={"code": code})).status == 404
    grant = read_grant(rig.state_dir)
    assert grant is not None and grant.failures == MAX_FAILURES


def test_local_network_only_and_durations() -> None:
    for address in ("127.0.0.1", "192.168.1.20", "10.0.0.5", "172.16.3.4", "fe80::1", "::1", "::ffff:192.168.0.2"):
        assert _local(address), address
    for address in ("8.8.8.8", "2001:4860:4860::8888", "", None, "not-an-ip"):
        assert not _local(address), address
    assert parse_duration("30m") == 1800 and parse_duration("2h") == 7200 and parse_duration("90s") == 90
    for bad in ("0m", "5h", "30x", "", "-1m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


async def test_background_is_served_from_memory_and_lines_are_saved_like_a_push(
    make_setup: Callable[..., Rig], aiohttp_client: ClientMaker
) -> None:
    rig = make_setup()
    client = await signed_in(rig, aiohttp_client)
    wait_picture(rig.parts)
    state = await (await client.get("/setup/api/state")).json()
    assert state["size"] == {"width": 640, "height": 480} and state["can_save"]
    assert [ln["name"] for ln in state["lines"]] == ["entrance", "side"]
    png = await client.get("/setup/background.png")
    assert png.status == 200 and png.content_type == "image/png" and (await png.read())[:4] == b"\x89PNG"
    assert png.headers["Cache-Control"] == "no-store"

    bad = await client.post(
        "/setup/api/lines",
        json={"lines": [{"name": "a", "points": [1, 1, 1, 1]}, {"name": "a", "points": [0, 0, 9, 9]}]},
    )
    problems = (await bad.json())["problems"]
    assert bad.status == 422 and any("counting.lines[0].points" in p for p in problems), problems
    assert not rig.store.pushed.exists() and rig.restarts == []

    lines = [{"name": "door", "points": [540, 300, 100, 300]}]
    saved = await client.post("/setup/api/lines", json={"lines": lines})
    assert saved.status == 200, await saved.text()
    assert rig.store.in_trial() and rig.restarts == ["lines saved on the setup page"]
    pushed = load_agent_config(rig.store.active_path())
    assert pushed.counting is not None
    assert [(ln.name, ln.points) for ln in pushed.counting.lines] == [("door", [540.0, 300.0, 100.0, 300.0])]
    assert pushed.counting.source == "synthetic" and pushed.device.id == "dev-a"
    assert rig.store.last_good.read_bytes() == rig.installed.read_bytes(), "the roll-back target is kept"
    again = await client.post("/setup/api/lines", json={"lines": lines})
    assert again.status == 422 and "on trial" in (await again.json())["problems"][0]
    assert not list(rig.state_dir.rglob("*.png")), "the picture is never written"
    # Not healthy with the new lines: the config store goes back to the config the lines were drawn on.
    rig.store.rollback("not healthy in time")
    assert rig.store.active_path() == rig.installed and not rig.store.in_trial()


async def test_tally_and_validation_leave_as_protected_totals(
    make_setup: Callable[..., Rig], aiohttp_client: ClientMaker
) -> None:
    rig = make_setup(policy="threshold", k=3)
    client = await signed_in(rig, aiohttp_client)
    rig.parts.tally.add("entrance", "in", "pedestrian")  # before the validation: not part of it
    tally = await (await client.get("/setup/api/tally")).json()
    assert tally["lines"] == [{"line": "entrance", "in": 1, "out": 0}, {"line": "side", "in": 0, "out": 0}]

    assert (await client.post("/setup/api/validation/finish", json={"tallies": []})).status == 409
    started = await client.post("/setup/api/validation/start", json={"minutes": 5})
    assert started.status == 200
    assert (await client.post("/setup/api/validation/start", json={"minutes": 5})).status == 409
    for _ in range(24):
        rig.parts.tally.add("entrance", "in", "pedestrian")
    for _ in range(4):
        rig.parts.tally.add("entrance", "out", "pedestrian")
    rig.parts.tally.add("side", "in", "cyclist")
    taps = [
        {"line": "entrance", "direction": "in", "object_class": "pedestrian", "count": 25},
        {"line": "entrance", "direction": "out", "object_class": "pedestrian", "count": 4},
        {"line": "side", "direction": "in", "object_class": "cyclist", "count": 1},
    ]
    unknown = await client.post(
        "/setup/api/validation/finish",
        json={"tallies": [{"line": "nope", "direction": "in", "object_class": "cyclist", "count": 1}]},
    )
    assert unknown.status == 409
    bad = await client.post("/setup/api/validation/finish", json={"tallies": [{"line": "entrance"}]})
    assert bad.status == 422 and any("tallies[0].direction" in p for p in (await bad.json())["problems"])
    finished = await client.post("/setup/api/validation/finish", json={"tallies": taps})
    record = await finished.json()
    assert finished.status == 200, record

    (event,) = rig.sink.of(Channel.VALIDATION)
    assert isinstance(event, ValidationRecord)
    # Under threshold suppression no count leaves in a record (it would undo the flow windows' nulls), only
    # the overall error of the cells counted at least k times, to 5%: 1 of 29 (the single cyclist stays out).
    assert all(v.counted is None and v.tallied is None and v.error is None for v in event.lines)
    assert all(c.counted is None and c.tallied is None for c in event.cells)
    assert event.error == 0.05 and event.policy.kind.value == "threshold"
    assert event.started_at.second == 0 and 0 < event.minutes < 1
    wire = event.model_dump_json()
    assert "time" not in json.loads(wire) and "image" not in wire
    stored = json.loads((rig.state_dir / "validations.json").read_text())
    assert stored[-1]["seq"] == event.seq and stored[-1]["error"] == event.error
    listed = await (await client.get("/setup/api/validations")).json()
    assert listed == stored


async def test_page_speaks_three_languages(make_setup: Callable[..., Rig], aiohttp_client: ClientMaker) -> None:
    rig = make_setup()
    client = await signed_in(rig, aiohttp_client)
    for lang, heading in (("nl", "Tellijnen"), ("de", "Zähllinien"), ("en", "Counting lines")):
        html = await (await client.get(f"/setup?lang={lang}")).text()
        assert f'<html lang="{lang}">' in html and heading in html
        assert 'id="strings"' in html


def test_the_picture_is_encoded_in_memory_only() -> None:
    """Besides the calibration command, only the setup page's calibration view encodes an image, and it
    writes nothing: no imwrite, no file opened for writing."""
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "edge_agent" / "setup" / "calibration.py").read_text()
    assert source.count("imencode") == 1 and "imwrite" not in source and "open(" not in source
    assert "write_" not in source


async def test_no_picture_until_the_scene_settles(
    make_setup: Callable[..., Rig], aiohttp_client: ClientMaker, tmp_path: Path
) -> None:
    """A video in which someone walks in after 3 s and stands there until it ends: the real learner never
    confirms a stable background, so the page says the scene has not settled and serves
    no picture at all (it keeps learning, from the start of the file, until the page closes)."""
    rng = np.random.default_rng(1)
    street = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
    video = tmp_path / "lingering.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for i in range(90):
        frame = street.copy()
        if i >= 30:
            frame[40:100, 20:45] = (20, 20, 240)  # someone who walks in after 3 s and stays
        writer.write(frame)
    writer.release()
    rig = make_setup()
    assert isinstance(rig.parts.background, CalibrationBackground)
    counting = rig.parts.background.config.model_copy(update={"source": str(video)})
    rig.parts.background = CalibrationBackground(counting, 50, 30)
    try:
        client = await signed_in(rig, aiohttp_client)
        deadline = time.monotonic() + 60
        while rig.parts.background.state() == "learning" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        state = await (await client.get("/setup/api/state")).json()
        assert state["picture"] == "unsettled" and state["size"] is None
        png = await client.get("/setup/background.png")
        assert png.status == 503 and (await png.json()) == {"state": "unsettled"}
        page = await (await client.get("/setup?lang=en")).text()
        assert "has not settled yet" in page  # the message the page shows for that state (its text table)
    finally:
        rig.parts.background.close()
