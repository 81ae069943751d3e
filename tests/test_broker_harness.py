"""The real-broker harness itself: authentication on, anonymous off, and each device confined to its topics."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from hub_protocol.topics import Channel, device_topic
from tests.conftest import BrokerSetup


def _connect(setup: BrokerSetup, user: str | None, password: str | None) -> tuple[mqtt.Client, int]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
    if user is not None:
        client.username_pw_set(user, password)
    done = threading.Event()
    result: list[int] = []

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: mqtt.ReasonCode, props: object) -> None:
        result.append(rc.value)
        done.set()

    client.on_connect = on_connect
    client.connect(setup.host, setup.port)
    client.loop_start()
    assert done.wait(5), "no CONNACK from broker"
    return client, result[0]


def test_anonymous_and_wrong_password_are_refused(broker: BrokerSetup) -> None:
    client, rc = _connect(broker, None, None)
    client.loop_stop()
    assert rc != 0
    client, rc = _connect(broker, "dev-a", "not-the-password")
    client.loop_stop()
    assert rc != 0


def test_device_reads_only_its_own_commands_and_cannot_write_others(broker: BrokerSetup) -> None:
    hub, rc = _connect(broker, broker.hub_user, broker.hub_password)
    assert rc == 0
    dev_a, rc = _connect(broker, "dev-a", broker.device_passwords["dev-a"])
    assert rc == 0
    at_hub: list[str] = []
    received: list[str] = []
    hub.on_message = lambda c, u, msg: at_hub.append(msg.topic)
    hub.subscribe(f"{broker.prefix}/v1/#", qos=1)
    dev_a.on_message = lambda c, u, msg: received.append(msg.topic)
    dev_a.subscribe(f"{broker.prefix}/v1/#", qos=1)  # the ACL narrows this to its own cmd and ack
    time.sleep(0.3)
    own = device_topic(broker.prefix, broker.site, "dev-a", Channel.HEALTH)
    foreign = device_topic(broker.prefix, broker.site, "dev-b", Channel.HEALTH)
    dev_a.publish(foreign, b"spoof", qos=1).wait_for_publish(5)
    dev_a.publish(own, b"mine", qos=1).wait_for_publish(5)
    hub.publish(device_topic(broker.prefix, broker.site, "dev-b", Channel.COMMAND), b"x", qos=1)
    hub.publish(device_topic(broker.prefix, broker.site, "dev-a", Channel.COMMAND), b"y", qos=1)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(received) < 1:
        time.sleep(0.05)
    time.sleep(0.3)
    for c in (hub, dev_a):
        c.loop_stop()
        c.disconnect()
    assert own in at_hub
    assert foreign not in at_hub, "broker let dev-a publish on dev-b's topic"
    cmd_b = device_topic(broker.prefix, broker.site, "dev-b", Channel.COMMAND)
    cmd_a = device_topic(broker.prefix, broker.site, "dev-a", Channel.COMMAND)
    assert received.count(cmd_a) == 1, "dev-a did not receive its own command"
    assert cmd_b not in received, "dev-a received dev-b's command"


def test_device_credentials_cannot_take_over_another_clients_session(broker: BrokerSetup) -> None:
    """A device naming the hub's or another device's client id gets its own session; nobody is pushed off."""
    from tests.hub.mqtt_probe import Probe

    hub = Probe(broker.host, broker.port, broker.hub_user, broker.hub_password, client_id="hub-ingest")
    victim = Probe(broker.host, broker.device_port, "dev-b", broker.device_passwords["dev-b"], client_id="dev-b")
    assert hub.connect() and victim.connect()
    hub.subscribe(f"{broker.prefix}/v1/#")
    attackers = [
        Probe(broker.host, broker.device_port, "dev-a", broker.device_passwords["dev-a"], client_id=name)
        for name in ("hub-ingest", "dev-b")
    ]
    try:
        for attacker in attackers:
            attacker.connect()
        time.sleep(0.5)
        assert not hub.disconnected.is_set(), "a device's credentials pushed the hub's session off the broker"
        assert not victim.disconnected.is_set(), "a device's credentials pushed another device off the broker"
        # Both victims still work: dev-b's message reaches the hub.
        own = device_topic(broker.prefix, broker.site, "dev-b", Channel.HEALTH)
        assert not victim.publish(own, b"still here").is_failure
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (own, b"still here") not in hub.messages:
            time.sleep(0.05)
        assert (own, b"still here") in hub.messages
    finally:
        for client in (hub, victim, *attackers):
            client.close()
