"""A small synchronous MQTT v5 client for the tests: connect, publish with QoS 1 and read the broker's verdict."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode


@dataclass
class Probe:
    host: str
    port: int
    username: str
    password: str
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    connect_reason: ReasonCode | None = None
    puback: dict[int, ReasonCode] = field(default_factory=dict)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    _acked: threading.Condition = field(default_factory=threading.Condition)
    client_id: str | None = None

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, client_id=self.client_id or f"probe-{id(self)}"
        )
        self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connect_reason = reason
        if reason.is_failure:
            self.disconnected.set()
        else:
            self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.disconnected.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, props: Properties) -> None:
        with self._acked:
            self.puback[mid] = reason
            self._acked.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, message.payload))

    def connect(self, timeout: float = 5.0) -> bool:
        """True when the broker accepted the credentials."""
        self.client.connect(self.host, self.port, keepalive=10)
        self.client.loop_start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self.connected.is_set() or self.disconnected.is_set():
                break
            deadline.wait(0.05)
        return self.connected.is_set() and not self.disconnected.is_set()

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            self._acked.wait_for(lambda: info.mid in self.puback, timeout=timeout)
        return self.puback[info.mid]

    def subscribe(self, topic: str) -> None:
        result, _ = self.client.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
