"""The deliveries, lockers and alarms API through aiohttp's test client: roles, validation, audit, 404/409."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_server.accounts import audit
from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.fleet.alarms import ALARMS_KEY
from hub_server.logistics.service import LOGISTICS_KEY
from hub_server.store.accounts import Role
from hub_server.store.db import Database
from tests.hub.conftest import ClientFactory, add_token, hub_config_data

BANK = {
    "compartments": [
        {"number": 1, "size": "S"},
        {"number": 2, "size": "M", "accessible": True},
        {"number": 3, "size": "L"},
    ]
}


@pytest.fixture
async def setup(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> tuple[TestClient[Any, Any], web.Application, dict[Role, dict[str, str]]]:
    config = HubConfig.model_validate(hub_config_data(tmp_path / "hub"))
    db = Database(config.store.location)
    app = create_app(config, database=db, background=False, pages=False)
    client = await aiohttp_client(app)
    headers = {role: {"Authorization": f"Bearer {add_token(db, role, role.value)}"} for role in Role}
    return client, app, headers


def _free(app: web.Application, device: str, numbers: range) -> None:
    for n in numbers:
        app[LOGISTICS_KEY].on_event(
            LockerEvent(
                device=device,
                boot="b1",
                seq=n,
                at=datetime.now(UTC),
                compartment=n,
                state=CompartmentState.FREE,
                previous=None,
                cause="recovered",
                door_open=False,
            )
        )


async def test_locker_setup_and_delivery_flow(setup: Any) -> None:
    client, app, headers = setup
    response = await client.put("/api/v1/lockers/dev-a", json=BANK, headers=headers[Role.OPERATOR])
    assert response.status == 403  # describing a bank is for admins
    response = await client.put("/api/v1/lockers/dev-a", json=BANK, headers=headers[Role.ADMIN])
    assert response.status == 200, await response.text()
    _free(app, "dev-a", range(1, 4))

    response = await client.get("/api/v1/lockers/dev-a", headers=headers[Role.VIEWER])
    locker = await response.json()
    assert [(c["number"], c["size"], c["state"]) for c in locker["compartments"]] == [
        (1, "S", "free"),
        (2, "M", "free"),
        (3, "L", "free"),
    ]

    request = {"size": "M", "resident_name": "Sam", "resident_contact": "sam@example.org"}
    response = await client.post("/api/v1/deliveries", json=request, headers=headers[Role.VIEWER])
    assert response.status == 403
    response = await client.post("/api/v1/deliveries", json=request, headers=headers[Role.OPERATOR])
    assert response.status == 201, await response.text()
    created = await response.json()
    assert len(created["dropoff_code"]) == 8 and "pickup_code" not in created
    delivery = created["delivery"]["id"]
    assert created["delivery"]["compartment"] == 2  # smallest fitting first, even if it is an accessible one

    response = await client.get(f"/api/v1/deliveries/{delivery}", headers=headers[Role.OPERATOR])
    assert (await response.json())["status"] == "awaiting-dropoff"
    response = await client.get("/api/v1/deliveries?status=awaiting-dropoff", headers=headers[Role.OPERATOR])
    assert [d["id"] for d in await response.json()] == [delivery]

    token = created["resident_link"].rsplit("/", 1)[1]
    response = await client.get(f"/api/v1/resident/{token}")  # public: the link is the key
    view = await response.json()
    assert response.status == 200 and view["status"] == "awaiting-dropoff" and "resident_contact" not in view
    assert (await client.get("/api/v1/resident/" + "x" * 43)).status == 404

    response = await client.post(f"/api/v1/deliveries/{delivery}/extend", headers=headers[Role.OPERATOR])
    assert response.status == 409 and "ready" in (await response.json())["detail"]
    response = await client.post(f"/api/v1/deliveries/{delivery}/return-code", headers=headers[Role.OPERATOR])
    assert response.status == 409
    response = await client.post(f"/api/v1/deliveries/{delivery}/cancel", headers=headers[Role.OPERATOR])
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    assert (await client.post(f"/api/v1/deliveries/{delivery}/cancel", headers=headers[Role.OPERATOR])).status == 409
    assert (await client.get("/api/v1/deliveries/d-nope", headers=headers[Role.OPERATOR])).status == 404

    actions = [e.action for e in audit.query(app[LOGISTICS_KEY].db.conn, target=f"delivery:{delivery}")]
    assert actions == ["delivery.cancel", "delivery.create"]
    entries = audit.query(app[LOGISTICS_KEY].db.conn, action="delivery.create")
    assert "Sam" not in str(entries[0].detail) and entries[0].actor.startswith("token:")


async def test_bad_input_gets_a_reason(setup: Any) -> None:
    client, _, headers = setup
    operator = headers[Role.OPERATOR]
    response = await client.post("/api/v1/deliveries", json={"size": "XL", "resident_name": "A"}, headers=operator)
    assert response.status == 422
    problems = (await response.json())["problems"]
    assert any("size" in p for p in problems), problems
    response = await client.post(
        "/api/v1/deliveries", json={"size": "S", "resident_name": "A", "extra": 1}, headers=operator
    )
    assert response.status == 422
    response = await client.post("/api/v1/deliveries", json={"size": "S", "resident_name": "A"}, headers=operator)
    assert response.status == 409 and "no free compartment" in (await response.json())["detail"]
    response = await client.put(
        "/api/v1/lockers/dev-a",
        json={"compartments": [{"number": 1, "size": "S"}, {"number": 1, "size": "M"}]},
        headers=headers[Role.ADMIN],
    )
    assert response.status == 409 and "twice" in (await response.json())["detail"]
    assert (await client.get("/api/v1/lockers/Bad_Id", headers=operator)).status == 404  # no such path
    assert (await client.get("/api/v1/lockers/dev-z", headers=operator)).status == 404
    assert (await client.get("/api/v1/alarms?limit=0", headers=operator)).status == 400
    assert (await client.get("/api/v1/deliveries")).status == 401


async def test_remote_open_and_service_are_audited(setup: Any) -> None:
    client, app, headers = setup
    await client.put("/api/v1/lockers/dev-a", json=BANK, headers=headers[Role.ADMIN])
    response = await client.post("/api/v1/lockers/dev-a/compartments/2/open", headers=headers[Role.OPERATOR])
    assert response.status == 202, await response.text()
    body = await response.json()
    assert body["device"] == "dev-a" and body["result"] is None and body["sent_at"] is None  # no broker here
    response = await client.post(
        "/api/v1/lockers/dev-a/compartments/2/service", json={"in_service": False}, headers=headers[Role.OPERATOR]
    )
    assert response.status == 202
    assert (
        await client.post("/api/v1/lockers/dev-a/compartments/9/open", headers=headers[Role.OPERATOR])
    ).status == 404
    entries = audit.query(app[LOGISTICS_KEY].db.conn, action="locker.")
    assert [(e.action, e.target) for e in entries] == [
        ("locker.service", "locker:dev-a/2"),
        ("locker.remote-open", "locker:dev-a/2"),
        ("locker.configure", "locker:dev-a"),
    ]
    assert entries[1].detail["command"] == body["command"]


async def test_alarms_list_and_ack(setup: Any) -> None:
    client, app, headers = setup
    alarm = app[ALARMS_KEY].raise_alarm("dev-a", "forced-open", datetime.now(UTC), compartment=2, source="device")
    response = await client.get("/api/v1/alarms?active_only=true", headers=headers[Role.VIEWER])
    [listed] = await response.json()
    assert listed["id"] == alarm.id and listed["kind"] == "forced-open" and listed["acknowledged_by"] is None
    assert listed["active"] is True
    assert (await client.post(f"/api/v1/alarms/{alarm.id}/ack", headers=headers[Role.VIEWER])).status == 403
    response = await client.post(f"/api/v1/alarms/{alarm.id}/ack", headers=headers[Role.OPERATOR])
    assert response.status == 200 and (await response.json())["acknowledged_by"].startswith("token:")
    assert (await client.post("/api/v1/alarms/999/ack", headers=headers[Role.OPERATOR])).status == 404
    response = await client.get("/api/v1/alarms?unacknowledged=true", headers=headers[Role.VIEWER])
    assert await response.json() == []
    assert [e.action for e in audit.query(app[ALARMS_KEY].db.conn, target=f"alarm:{alarm.id}")] == ["alarm.ack"]


def test_webhook_settings_are_checked_when_the_app_is_built(tmp_path: Path) -> None:
    from hub_protocol.validation import ConfigError
    from hub_server.logistics.notifications import NOTIFIER_KEY
    from tests.conftest import write_secret

    def build(**logistics: str) -> web.Application:
        config = HubConfig.model_validate(hub_config_data(tmp_path / "hub", logistics=logistics))
        return create_app(config, database=Database(config.store.location), background=False, pages=False)

    assert build()[NOTIFIER_KEY] is None
    key = write_secret(tmp_path / "webhook.key", "a-shared-key-for-signing")
    app = build(webhook_url="https://notify.example.org/hub", webhook_secret_file=str(key))
    notifier = app[NOTIFIER_KEY]
    assert notifier is not None and notifier.key == b"a-shared-key-for-signing"
    with pytest.raises(ConfigError, match="webhook_secret_file"):
        build(webhook_url="https://notify.example.org/hub", webhook_secret_file=str(tmp_path / "missing"))
