"""A command counts as sent only once the broker acknowledged it (PUBACK), not once it left the hub's socket."""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub_protocol.codec import decode
from hub_protocol.commands import ReloadConfig
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest import service as ingest_module
from hub_server.ingest.service import Ingest
from hub_server.store import provisioning
from hub_server.store.db import Database
from tests.conftest import BrokerSetup
from tests.transport.helpers import hub_mqtt


def _command(n: int) -> ReloadConfig:
    now = datetime.now(UTC)
    return ReloadConfig(
        id=f"cmd-{n}", device="dev-a", issued_at=now, expires_at=now + timedelta(minutes=5), action="reload-config"
    )


@pytest.mark.timeout(90)
def test_a_command_to_a_stopped_broker_is_not_reported_sent(
    broker: BrokerSetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "COMMAND_CONFIRM_S", 1.0)
    db = Database(tmp_path / "hub.sqlite3")
    with db.write() as conn:
        provisioning.add(conn, "dev-a", broker.site, "dev-a", "test")
    received: list[str] = []
    arrived = threading.Event()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-a", protocol=mqtt.MQTTv311)
    device.username_pw_set("dev-a", broker.device_passwords["dev-a"])

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(decode(Channel.COMMAND, message.payload).id)
        arrived.set()

    device.on_message = on_message
    device.connect(broker.host, broker.device_port)
    device.subscribe(device_topic(broker.prefix, broker.site, "dev-a", Channel.COMMAND), qos=1)
    device.loop_start()
    ingest = Ingest(db.location, hub_mqtt(broker), IngestConfig(writer_process=False), password=broker.hub_password)
    ingest.start()
    assert broker.broker.process is not None
    pid = broker.broker.process.pid
    try:
        assert ingest.mqtt is not None and ingest.mqtt.wait_connected(20), "the hub did not connect"
        ingest.publish_command(_command(1))  # acknowledged: returns
        assert arrived.wait(10) and received == ["cmd-1"]
        os.kill(pid, signal.SIGSTOP)  # the broker hangs: the hub's connection still looks up
        try:
            assert ingest.mqtt.connected
            with pytest.raises(RuntimeError, match="did not acknowledge"):
                ingest.publish_command(_command(2))
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        ingest.stop()
        device.loop_stop()
        device.disconnect()
