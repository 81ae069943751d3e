"""A config pushed by the hub through the real broker: accepted, applied after a restart, confirmed to the hub."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.deploy.service import ServiceLifecycle
from edge_agent.transport.service import Transport
from hub_protocol.codec import decode, encode
from hub_protocol.commands import PushConfig
from hub_protocol.envelope import CommandResult, ResultStatus
from hub_protocol.topics import Channel, device_topic
from tests.conftest import BrokerSetup
from tests.deploy.conftest import write_agent_config


class Hub:
    """The hub's side, reduced to what this test needs: publish a command, collect results."""

    def __init__(self, setup: BrokerSetup) -> None:
        self.setup = setup
        self.results: list[CommandResult] = []
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-test", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(setup.hub_user, setup.hub_password)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(setup.host, setup.port)
        self.client.loop_start()
        self.client.subscribe(device_topic(setup.prefix, setup.site, "dev-a", Channel.RESULT), qos=1)
        assert subscribed.wait(5)

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        result = decode(Channel.RESULT, message.payload)
        with self.changed:
            self.results.append(result)
            self.changed.notify_all()

    def send(self, command: PushConfig) -> None:
        topic = device_topic(self.setup.prefix, self.setup.site, command.device, Channel.COMMAND)
        self.client.publish(topic, encode(command), qos=1).wait_for_publish(5)

    def wait_result(self, predicate: Callable[[CommandResult], bool], timeout: float = 15) -> CommandResult:
        with self.changed:
            assert self.changed.wait_for(lambda: any(predicate(r) for r in self.results), timeout), self.results
            return next(r for r in self.results if predicate(r))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_agent_once(
    lifecycle: ServiceLifecycle,
    until: Callable[[], bool],
    on_connected: Callable[[], None] | None = None,
    timeout: float = 15,
) -> int:
    """A stand-in for ``edge-agent run``: the transport, the config handlers and a main loop."""
    config = lifecycle.load_config()
    transport = Transport(config)
    for action, handler in lifecycle.handlers(lambda: config).items():
        transport.router.register(action, handler)
    transport.start()
    lifecycle.report(transport.sink)
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    try:
        if on_connected is not None:
            assert transport.link.wait_connected(10)
            threading.Event().wait(0.5)  # its subscriptions follow the connection
            on_connected()
        while datetime.now(UTC) < deadline:
            if lifecycle.tick(healthy=transport.link.connected, sink=transport.sink) or until():
                break
            threading.Event().wait(0.1)
        # Give the link a moment to deliver the last result before the goodbye.
        threading.Event().wait(0.5)
    finally:
        transport.stop()
    return lifecycle.exit_code


@pytest.mark.slow
def test_pushed_config_is_applied_and_confirmed(tmp_path: Path, make_broker: Callable[..., BrokerSetup]) -> None:
    setup = make_broker(devices=("dev-a",))
    installed = write_agent_config(
        tmp_path, host=setup.host, port=setup.port, password=setup.device_passwords["dev-a"], site=setup.site
    )
    hub = Hub(setup)
    try:
        now = datetime.now(UTC)
        push = PushConfig(
            id="push-7",
            device="dev-a",
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            action="push-config",
            config_toml=installed.read_text().replace("prefix = ", "keepalive_s = 45\nprefix = "),
        )
        first = ServiceLifecycle(installed)
        # The agent asks systemd for a restart.
        assert run_agent_once(first, until=lambda: False, on_connected=lambda: hub.send(push)) == 75
        accepted = hub.wait_result(lambda r: r.command_id == "push-7")
        assert accepted.status is ResultStatus.DONE and "restarting with it" in accepted.detail

        second = ServiceLifecycle(installed)
        exit_code = run_agent_once(second, until=lambda: len(hub.results) >= 2)
        assert exit_code == 0
        assert second.store.active_path() == second.store.pushed and not second.store.in_trial()
        confirmed = hub.wait_result(lambda r: r.command_id == "push-7" and "healthy" in r.detail)
        assert confirmed.status is ResultStatus.DONE
        assert ServiceLifecycle(installed).load_config().mqtt.keepalive_s == 45
    finally:
        hub.close()
