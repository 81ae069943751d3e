"""A code used while the broker is down: the events wait in the outbox and reach the hub after reconnect.

Real mosquitto, the real transport (outbox, MQTT link, command router) and the bank on mock pins; the test
plays the hub: it sends the reservation as a command, stores what arrives and acknowledges it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.lockers.bank import LockerBank
from edge_agent.lockers.sim import prepare
from edge_agent.transport.service import Transport
from hub_protocol.codec import encode
from hub_protocol.commands import CodeHash, ReservationSet
from hub_protocol.envelope import Ack
from hub_protocol.topics import SEQUENCED_CHANNELS, Channel, device_topic
from tests.conftest import BrokerSetup, agent_config, wait_for
from tests.lockers.conftest import CONFIG

DEVICE = "locker-hub-1"


class FakeHub:
    """Stores every event it receives and acknowledges the contiguous prefix, like the hub's ingest."""

    def __init__(self, setup: BrokerSetup) -> None:
        self.setup = setup
        self.events: dict[tuple[str, int], dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fake-hub")
        self.client.username_pw_set(setup.hub_user, setup.hub_password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(setup.host, setup.port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(f"{self.setup.prefix}/v1/+/{DEVICE}/+", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        channel = Channel(message.topic.rsplit("/", 1)[1])
        if channel not in SEQUENCED_CHANNELS:
            return
        body = json.loads(message.payload)
        with self.lock:
            self.events[(body["boot"], body["seq"])] = {"channel": channel, **body}
            seqs = sorted(s for b, s in self.events if b == body["boot"])
            upto = 0
            for s in seqs:
                if s != upto + 1:
                    break
                upto = s
        ack = encode(Ack(boot=body["boot"], upto=upto))
        client.publish(device_topic(self.setup.prefix, self.setup.site, DEVICE, Channel.ACK), ack, qos=1)

    def locker_causes(self) -> list[str]:
        with self.lock:
            ordered = [self.events[k] for k in sorted(self.events)]
        return [e["cause"] for e in ordered if e["channel"] is Channel.LOCKER]

    def command(self, model: Any) -> None:
        topic = device_topic(self.setup.prefix, self.setup.site, DEVICE, Channel.COMMAND)
        self.client.publish(topic, encode(model), qos=1).wait_for_publish(5)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.slow
def test_code_used_offline_is_reported_after_reconnect(make_broker: Callable[..., BrokerSetup], tmp_path: Path) -> None:
    setup = make_broker(devices=(DEVICE,))
    config = agent_config(
        setup,
        DEVICE,
        tmp_path,
        lockers=CONFIG,
        mqtt={"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "ack_timeout_s": 1.0},
    )
    assert config.lockers is not None
    pins = MockFactory()
    doors, _ = prepare(pins, config.lockers)
    transport = Transport(config)
    bank = LockerBank(config.lockers, transport.sink, Path(config.device.state_dir), pin_factory=pins)
    for action, handler in bank.handlers().items():
        transport.router.register(action, handler)
    doors.close_all()
    hub = FakeHub(setup)
    try:
        transport.start()
        bank.start()
        wait_for(lambda: hub.locker_causes().count("recovered") == 2, 10, "the start-up reports")

        now = datetime.now(UTC)
        hub.command(
            ReservationSet(
                action="reservation-set",
                id="cmd-reserve-1",
                device=DEVICE,
                issued_at=now,
                expires_at=now + timedelta(minutes=10),
                operator="op-anna",
                compartment=1,
                reservation="parcel-1",
                purpose="dropoff",
                code=CodeHash.for_code("48291305", now + timedelta(days=3)),
            )
        )
        wait_for(lambda: "reservation-dropoff" in hub.locker_causes(), 10, "the reservation")

        setup.broker.stop()  # the network is gone; the locker must keep working
        outcome = bank.enter_code("48291305")
        assert outcome.result == "opened" and outcome.compartment == 1
        doors.set_door(1, closed=False)
        doors.set_door(1, closed=True)
        assert transport.outbox.stats().depth >= 3
        assert "dropoff" not in hub.locker_causes()

        setup.broker.start()
        wait_for(lambda: "dropoff" in hub.locker_causes(), 20, "the offline events after reconnect")
        causes = hub.locker_causes()
        assert causes[causes.index("reservation-dropoff") :] == [
            "reservation-dropoff",
            "unlock-dropoff",
            "door-opened",
            "dropoff",
        ]
        results = [e for e in hub.events.values() if e["channel"] is Channel.RESULT]
        assert [(r["command_id"], r["status"]) for r in results] == [("cmd-reserve-1", "done")]
        wait_for(lambda: transport.outbox.stats().depth == 0, 20, "the hub's acks to empty the outbox")
    finally:
        bank.stop()
        transport.stop()
        hub.stop()
