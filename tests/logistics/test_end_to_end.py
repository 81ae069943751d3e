"""The delivery life cycle end to end: the hub (create_app with its ingest and logistics loop) and the device
(real transport, locker bank on gpiozero mock pins) talk through a real mosquitto.

hub creates a delivery -> ReservationSet over MQTT -> the bank accepts the drop-off code -> locker events
back through the device's outbox and the hub's ingest -> ready -> the resident reveals the pickup code on
their page -> pickup on the device -> collected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.lockers.bank import LockerBank
from edge_agent.lockers.sim import prepare
from edge_agent.transport.service import Transport
from hub_protocol.lockers import CompartmentState
from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.fleet.alarms import ALARMS_KEY
from hub_server.logistics.service import LOGISTICS_KEY, DeliveryRequest, DeliveryStatus, LockerSpec
from hub_server.store import logistics as logistics_store
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, agent_config, write_secret
from tests.hub.conftest import ClientFactory, hub_config_data
from tests.lockers.conftest import CONFIG

DEVICE = "locker-e2e"


async def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_delivery_life_cycle_with_the_device(
    make_broker: Callable[..., BrokerSetup], tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    setup = make_broker(devices=(DEVICE,))

    # The hub, with its background tasks, on the broker.
    data = hub_config_data(
        tmp_path / "hub",
        mqtt={
            "host": setup.host,
            "port": setup.port,
            "prefix": setup.prefix,
            "username": setup.hub_user,
            "password_file": str(write_secret(tmp_path / "hub-mqtt.pw", setup.hub_password)),
        },
        ingest={"writer_process": False},
        logistics={"check_interval_s": 0.5},
    )
    config = HubConfig.model_validate(data)
    app = create_app(config, database=Database(config.store.location), pages=False)
    await aiohttp_client(app)  # starts the ingest, logistics, alarms and retention loops
    logistics = app[LOGISTICS_KEY]
    logistics.set_compartments(
        DEVICE,
        LockerSpec.model_validate(
            {
                "compartments": [
                    {"number": c["number"], "size": c["size"], "accessible": c.get("accessible", False)}
                    for c in CONFIG["compartments"]
                ]
            }
        ),
    )

    # The device: real transport and outbox, the bank on mock pins.
    agent = agent_config(
        setup,
        DEVICE,
        tmp_path,
        lockers=CONFIG,
        mqtt={"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "ack_timeout_s": 1.0},
    )
    assert agent.lockers is not None
    pins = MockFactory()
    doors, _ = prepare(pins, agent.lockers)
    transport = Transport(agent)
    bank = LockerBank(agent.lockers, transport.sink, Path(agent.device.state_dir), pin_factory=pins)
    doors.close_all()  # once the bank has claimed its pins
    for action, handler in bank.handlers().items():
        transport.router.register(action, handler)
    try:
        await asyncio.to_thread(transport.start)
        await asyncio.to_thread(bank.start)

        def states() -> dict[int, Any]:
            return {c.number: c.state for c in logistics.compartments(DEVICE)}

        await _until(lambda: states() == {1: CompartmentState.FREE, 2: CompartmentState.FREE}, "start-up reports")

        created = await asyncio.to_thread(
            logistics.create,
            DeliveryRequest(size="S", resident_name="Sam", resident_contact="sam@example.org"),
            "user:op-anna",
        )
        delivery, number = created.delivery.id, created.delivery.compartment
        assert number == 1
        await _until(lambda: states()[1] is CompartmentState.RESERVED, "the reservation on the device")

        # The courier at the keypad: the hub's drop-off code opens compartment 1.
        outcome = await asyncio.to_thread(bank.enter_code, created.dropoff_code)
        assert (outcome.result, outcome.compartment) == ("opened", 1)
        doors.set_door(1, closed=False)
        await asyncio.sleep(0.3)
        doors.set_door(1, closed=True)
        await _until(lambda: logistics.get(delivery).status is DeliveryStatus.READY, "ready for pickup")

        # The resident opens their page and reveals the code once; the device has its hash once the
        # pickup command is answered.
        token = created.resident_link.rsplit("/", 1)[1]
        view = logistics.resident_view(token)
        assert view is not None and view.code_available
        pickup_code = await asyncio.to_thread(logistics.reveal_pickup_code, token)
        assert pickup_code != created.dropoff_code

        def pickup_done() -> bool:
            rows = logistics_store.commands_for(logistics.db.conn, delivery)
            return any(r.purpose == "pickup" and r.result == "done" for r in rows)

        await _until(pickup_done, "the device's answer to the pickup code")
        wrong = await asyncio.to_thread(bank.enter_code, created.dropoff_code)
        assert wrong.result != "opened"  # the drop-off code was single-use
        outcome = await asyncio.to_thread(bank.enter_code, pickup_code)
        assert (outcome.result, outcome.compartment) == ("opened", 1)
        doors.set_door(1, closed=False)
        await asyncio.sleep(0.3)
        doors.set_door(1, closed=True)
        await _until(lambda: logistics.get(delivery).status is DeliveryStatus.COLLECTED, "collected")
        assert states()[1] is CompartmentState.FREE

        # Every command of this delivery reached the device and was carried out.
        rows = logistics_store.commands_for(logistics.db.conn, delivery)
        assert [(r.purpose, r.result) for r in rows] == [("dropoff", "done"), ("pickup", "done")]
        # A clean run: the device raised no alarm (no forced open, no door left open) on the way.
        assert app[ALARMS_KEY].poll_device_alarms() == 0 and app[ALARMS_KEY].list_alarms() == []

        # Someone forces compartment 2 open: the device's alarm reaches the hub's alarm list, an operator
        # acknowledges it, and it ends when the door is shut again.
        alarms = app[ALARMS_KEY]
        doors.set_door(2, closed=False)
        await _until(lambda: bool(alarms.list_alarms(active_only=True, kind="forced-open")), "the forced-open alarm")
        [forced] = alarms.list_alarms(active_only=True, kind="forced-open")
        assert (forced.device, forced.compartment, forced.source) == (DEVICE, 2, "device")
        assert alarms.acknowledge(forced.id, "user:op-anna").acknowledged_by == "user:op-anna"
        doors.set_door(2, closed=True)
        await _until(lambda: alarms.get(forced.id).ended_at is not None, "the alarm's end")
    finally:
        await asyncio.to_thread(bank.stop)
        await asyncio.to_thread(transport.stop)
