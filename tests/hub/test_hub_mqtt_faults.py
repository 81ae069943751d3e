"""The hub's MQTT client against a real Mosquitto: a callback that raises once does not silence the client."""

from __future__ import annotations

import logging
import threading

import pytest

from hub_protocol.topics import Channel, device_topic
from hub_server.ingest.mqtt import HubMqtt
from tests.conftest import BrokerSetup, wait_for
from tests.hub.mqtt_probe import Probe
from tests.transport.helpers import hub_mqtt


@pytest.mark.timeout(60)
def test_a_message_handler_that_raises_once_does_not_end_the_hub_client(
    broker: BrokerSetup, caplog: pytest.LogCaptureFixture
) -> None:
    """paho re-raises a callback's exception out of its loop: unguarded, the first failure ended the thread."""
    health_topic = device_topic(broker.prefix, broker.site, "dev-a", Channel.HEALTH)
    received: list[bytes] = []  # the broker's uptime arrives too
    raised = threading.Event()

    def handler(topic: str, payload: bytes) -> None:
        if payload == b"bad" and not raised.is_set():
            raised.set()
            raise RuntimeError("a bug in the handler")
        if topic == health_topic:
            received.append(payload)

    hub = HubMqtt(hub_mqtt(broker), broker.hub_password, "hub-guard-test", handler)
    device = Probe(broker.host, broker.port, "dev-a", broker.device_passwords["dev-a"])
    try:
        hub.start()
        assert hub.wait_connected(10), "hub did not connect"
        assert device.connect()
        with caplog.at_level(logging.ERROR, logger="hub_server.ingest.mqtt"):
            assert not device.publish(health_topic, b"bad").is_failure
            wait_for(raised.is_set, 10, "the failing message")
            for n in range(5):
                assert not device.publish(health_topic, f"good-{n}".encode()).is_failure
            wait_for(lambda: len(received) == 5, 10, "the later messages at the same hub client")
        assert received == [f"good-{n}".encode() for n in range(5)]
        assert hub.connected
        failures = [r for r in caplog.records if r.exc_info is not None]
        assert len(failures) == 1
        assert health_topic in failures[0].getMessage()  # says which message failed
    finally:
        device.close()
        hub.stop()


@pytest.mark.timeout(60)
def test_a_connection_listener_that_raises_does_not_end_the_hub_client(broker: BrokerSetup) -> None:
    health_topic = device_topic(broker.prefix, broker.site, "dev-a", Channel.HEALTH)
    received: list[bytes] = []
    told: list[bool] = []

    def on_connection(up: bool) -> None:
        told.append(up)
        raise RuntimeError("a bug in the listener")

    def handler(topic: str, payload: bytes) -> None:
        if topic == health_topic:
            received.append(payload)

    hub = HubMqtt(hub_mqtt(broker), broker.hub_password, "hub-guard-test", handler, on_connection=on_connection)
    device = Probe(broker.host, broker.port, "dev-a", broker.device_passwords["dev-a"])
    try:
        hub.start()
        assert hub.wait_connected(10), "hub did not connect"
        assert device.connect()
        assert not device.publish(health_topic, b"after").is_failure
        wait_for(lambda: received == [b"after"], 10, "a message after the listener failed")
        assert told == [True] and hub.connected
    finally:
        device.close()
        hub.stop()


@pytest.mark.timeout(60)
def test_connected_means_subscribed_so_a_message_sent_at_once_reaches_the_hub(broker: BrokerSetup) -> None:
    # Connected used to be set when the subscriptions were only queued: a device sending at that moment
    # passed the hub by (its outbox sends again, but the hub's readiness must mean it listens).
    health_topic = device_topic(broker.prefix, broker.site, "dev-a", Channel.HEALTH)
    received: list[bytes] = []
    device = Probe(broker.host, broker.port, "dev-a", broker.device_passwords["dev-a"])
    assert device.connect()
    for attempt in range(5):
        hub = HubMqtt(
            hub_mqtt(broker),
            broker.hub_password,
            f"hub-ready-test-{attempt}",
            lambda topic, payload: received.append(payload) if topic == health_topic else None,
        )
        try:
            hub.start()
            assert hub.wait_connected(10), "hub did not connect"
            message = f"at once {attempt}".encode()
            assert not device.publish(health_topic, message).is_failure
            wait_for(lambda m=message: m in received, 10, f"the message sent as the hub connected ({attempt})")
        finally:
            hub.stop()
    device.close()
