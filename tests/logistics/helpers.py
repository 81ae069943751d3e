"""Real-broker helpers for the logistics tests: the hub's command publisher and a device that listens."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub_protocol.codec import decode, encode
from hub_protocol.commands import CommandBase
from hub_protocol.topics import Channel, device_topic
from tests.conftest import BrokerSetup


def connect(setup: BrokerSetup, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{time.monotonic_ns()}")
    client.username_pw_set(user, password)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if rc == 0 else None
    client.connect(setup.host, setup.port)
    client.loop_start()
    assert connected.wait(5), f"{user} could not connect to the test broker"
    return client


class MqttCommandPublisher:
    """What the hub's MQTT client does for logistics: QoS 1 on the device's cmd topic; raises when down."""

    def __init__(self, setup: BrokerSetup) -> None:
        self.setup = setup
        self.client = connect(setup, setup.hub_user, setup.hub_password)

    def publish_command(self, command: CommandBase) -> None:
        topic = device_topic(self.setup.prefix, self.setup.site, command.device, Channel.COMMAND)
        info = self.client.publish(topic, encode(command), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class DeviceListener:
    """A device's subscription to its own cmd topic, decoding every command it receives."""

    def __init__(self, setup: BrokerSetup, device: str) -> None:
        self.commands: list[Any] = []
        self._lock = threading.Lock()
        self.client = connect(setup, device, setup.device_passwords[device])
        subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
        self.client.on_message = self._on_message
        self.client.subscribe(device_topic(setup.prefix, setup.site, device, Channel.COMMAND), qos=1)
        assert subscribed.wait(5)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.commands.append(decode(Channel.COMMAND, bytes(msg.payload)))

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.commands) >= count:
                    return list(self.commands)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} commands, got {len(self.commands)}: {self.commands}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Clock:
    """A hand-moved clock for expiry tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)
