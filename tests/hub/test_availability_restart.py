"""After a broker restart a device counts as online only once it says so on a fresh connection: the retained
"online" of a connection the restart closed is not believed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hub_protocol.codec import encode
from hub_protocol.envelope import Availability, AvailabilityState
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest.live import LiveRegistry
from hub_server.ingest.service import Ingest
from hub_server.ingest.writer import SYS_INTERVAL_S
from hub_server.store.db import Database
from tests.conftest import BrokerSetup, wait_for, wait_until
from tests.hub.mqtt_probe import Probe
from tests.transport.helpers import hub_mqtt


def _announce(broker: BrokerSetup, device: str) -> Probe:
    probe = Probe(broker.host, broker.device_port, device, broker.device_passwords[device], client_id=device)
    topic = device_topic(broker.prefix, broker.site, device, Channel.STATUS)
    will = Availability(device=device, boot="b1", state=AvailabilityState.OFFLINE)
    probe.client.will_set(topic, encode(will), qos=1, retain=True)
    assert probe.connect(), probe.connect_reason
    online = Availability(device=device, boot="b1", state=AvailabilityState.ONLINE)
    probe.client.publish(topic, encode(online), qos=1, retain=True).wait_for_publish(5)
    return probe


@pytest.mark.timeout(120)
def test_after_a_broker_restart_only_devices_that_came_back_are_online(broker: BrokerSetup, tmp_path: Path) -> None:
    live = LiveRegistry()
    Database(tmp_path / "hub.sqlite3")
    settings = IngestConfig(writer_process=False)
    ingest = Ingest(tmp_path / "hub.sqlite3", hub_mqtt(broker), settings, live=live, password=broker.hub_password)
    ingest.start()
    # Retained statuses are not believed (that is the point), so the devices announce themselves only once the
    # hub listens, as a device that connects after the hub does.
    assert ingest.mqtt is not None and ingest.mqtt.wait_connected(20), "the hub did not connect"
    time.sleep(0.5)  # its subscription is sent on connect; let the broker take it before the devices speak
    probes = [_announce(broker, "dev-a"), _announce(broker, "dev-b")]
    try:

        def online(device: str) -> bool | None:
            state = live.get(device)
            return state.online if state is not None else None

        wait_for(lambda: online("dev-a") and online("dev-b"), 30, "both devices online")
        # Let the broker save the retained "online" messages, and let the devices' last words age past the
        # broker's uptime granularity; then a power cut: no will fires, the retained "online" stays.
        time.sleep(SYS_INTERVAL_S + 1.5)
        for probe in probes:
            probe.client.loop_stop()
        broker.broker.kill()
        broker.broker.start()
        assert ingest.mqtt is not None
        wait_for(lambda: not ingest.mqtt.connected if ingest.mqtt else True, 5, "the hub to notice")
        assert ingest.mqtt.wait_connected(20), "the hub did not reconnect"
        # dev-a comes back on a fresh connection; dev-b does not.
        probes.append(_announce(broker, "dev-a"))
        assert wait_until(lambda: online("dev-a") is True, 10), "dev-a announced itself live"
        assert wait_until(lambda: online("dev-b") is False, 10), "dev-b shown online from a stale retained status"
        time.sleep(1.0)
        assert online("dev-b") is False and online("dev-a") is True
        row = ingest_reason(tmp_path / "hub.sqlite3", "dev-b")
        assert row == (0, "broker-restart")
    finally:
        for probe in probes:
            probe.client.loop_stop()
        ingest.stop()


def ingest_reason(db_path: Path, device: str) -> tuple[int, str]:
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        online, reason = conn.execute(
            "SELECT online, offline_reason FROM devices WHERE device = ?", (device,)
        ).fetchone()
    finally:
        conn.close()
    return int(online), str(reason)
