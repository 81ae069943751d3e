"""The hub's MQTT client: a persistent session that receives every device channel and publishes acks/commands.

A persistent session (fixed client id, clean_session false) lets the broker queue device messages while the
hub restarts; whatever the broker cannot keep, the devices send again because the hub never acknowledged it.

Faults: every paho callback is guarded. paho re-raises a callback's exception out of its loop, which ends the
network thread while the client still looks connected: the hub would then hear nothing until restarted. A
failed callback is logged (with the topic, for a message) and the thread goes on; the message is simply
not acknowledged, so its device sends it again.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub_protocol import PROTOCOL_VERSION
from hub_protocol.guard import guarded
from hub_protocol.topics import DEVICE_CHANNELS, Channel
from hub_server.config import HubMqttConfig

log = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]

_STATUS_SUFFIX = f"/{Channel.STATUS.value}"


BROKER_UPTIME_TOPIC = "$SYS/broker/uptime"
"""Mosquitto's seconds since start ("42 seconds", retained, every sys_interval): tells the ingest when the
broker last restarted, which closed every device's connection."""


def device_subscriptions(prefix: str, shared_group: str | None = None) -> list[str]:
    """One filter per device channel, so the hub never receives its own ``cmd`` and ``ack`` messages.

    With ``shared_group``, instances split the messages (``$share/<group>/...``: the broker gives each message
    to one of them). Registers stay a plain subscription on every instance: MQTT gives retained messages only
    to plain subscriptions, and each instance storing the same latest register changes nothing.
    """
    filters = [f"{prefix}/v{PROTOCOL_VERSION}/+/+/{channel.value}" for channel in sorted(DEVICE_CHANNELS)]
    if shared_group is None:
        return filters
    return [f if f.endswith(f"/{Channel.REGISTER.value}") else f"$share/{shared_group}/{f}" for f in filters]


class HubMqtt:
    def __init__(
        self,
        config: HubMqttConfig,
        password: str,
        client_id: str,
        on_message: MessageCallback,
        *,
        on_connection: Callable[[bool], None] | None = None,
        shared_group: str | None = None,
    ) -> None:
        self.config = config
        self._shared_group = shared_group
        self._on_message_cb = on_message
        self._on_connection = on_connection
        self._connected = threading.Event()
        self._stopping = False
        if shared_group is not None:
            # Each instance its own id (one id would make the broker drop the other), and a clean session: when
            # an instance dies, the broker stops giving it messages at once; what it held unacknowledged, the
            # devices send again (they keep every event until acknowledged).
            client_id = f"{client_id}-{secrets.token_hex(4)}"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=shared_group is not None,
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(config.username, password)
        if config.tls:
            client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None)
        client.reconnect_delay_set(1, 8)  # one client: no herd to spread, come back fast
        client.max_inflight_messages_set(1000)
        client.on_connect = guarded(self._on_connect, "hub MQTT on_connect", log)
        client.on_disconnect = guarded(self._on_disconnect, "hub MQTT on_disconnect", log)
        client.on_message = guarded(self._on_message, "hub MQTT on_message", log)
        client.on_subscribe = guarded(self._on_subscribe, "hub MQTT on_subscribe", log)
        self._subscribe_mid: int | None = None
        self.client = client

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, confirm_s: float | None = None
    ) -> bool:
        """Thread-safe; False when not connected (the message is not queued).

        With ``confirm_s`` (QoS 1) it waits that long for the broker's PUBACK and is True only once it came: a
        message written to a socket the broker no longer reads (a hung broker, a dead link not yet noticed) is
        not sent. It blocks: never call it on the event loop or from paho's own thread.
        """
        if not self._connected.is_set():
            return False
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        if confirm_s is None:
            return True
        try:
            info.wait_for_publish(confirm_s)
        except (RuntimeError, ValueError):  # paho: the publish failed or its queue was full
            return False
        return info.is_published()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            log.error("broker refused the hub's connection: %s", rc)
            return
        # Subscribing again also makes the broker re-send retained register messages (status ones are ignored).
        # The broker's uptime first, so the ingest knows of a broker restart before any device message.
        _, self._subscribe_mid = client.subscribe(
            [
                (BROKER_UPTIME_TOPIC, 0),
                *((topic, 1) for topic in device_subscriptions(self.config.prefix, self._shared_group)),
            ]
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        # Connected means listening: until the broker has the subscriptions, what devices send passes the hub by.
        if mid != self._subscribe_mid:
            return
        self._connected.set()
        log.info("hub connected to %s:%d", self.config.host, self.config.port)
        if self._on_connection:
            self._on_connection(True)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._stopping:
            log.warning("hub lost the broker connection (%s); reconnecting", rc)
        if self._on_connection:
            self._on_connection(False)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # the broker checks UTF-8, but a bad topic must not end this thread
            topic = bytes(message._topic).decode("utf-8", errors="replace")
        if message.retain and topic.endswith(_STATUS_SUFFIX):
            # A retained status is the last word of a connection that may be long gone (a broker restart keeps
            # "online" without firing the will): availability comes from what devices say live, never this.
            return
        try:
            self._on_message_cb(topic, bytes(message.payload))
        except Exception:
            # Caught here rather than only by the guard, to name the message: never acknowledged, it comes again.
            log.exception("handling a message on %s (%d bytes) failed; the thread goes on", topic, len(message.payload))
