"""Several hub instances sharing the ingest on one PostgreSQL store: every event stored once, acknowledged by
whichever instance received it, with the watermark that counts everything any instance stored."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from edge_agent.events import build_event
from hub_protocol.codec import decode, encode
from hub_protocol.topics import Channel, device_topic
from hub_server.config import HubConfig, IngestConfig
from hub_server.ingest.service import Ingest, IngestCore
from hub_server.ingest.writer import SHARED_CHECK_S
from hub_server.store.db import Database
from hub_server.store.engine import connect
from tests import postgres
from tests.conftest import BrokerSetup
from tests.hub.conftest import hub_config_data
from tests.transport.helpers import alarm_fields, hub_mqtt
from tests.transport.test_ingest_core import Clock

PREFIX, SITE = "cot", "test-street"


def _event(device: str, boot: str, seq: int) -> tuple[str, bytes, float]:
    model = build_event(Channel.ALARM, device, boot, seq, alarm_fields(seq))
    return device_topic(PREFIX, SITE, device, Channel.ALARM), encode(model), 1.0


def _acks(result: Any) -> dict[tuple[str, str], int]:
    acks = {}
    for topic, payload in result.acks:
        ack = decode(Channel.ACK, payload)
        acks[(topic.split("/")[-2], ack.boot)] = ack.upto
    return acks


@pytest.fixture
def url() -> str:
    postgres.require()
    location = postgres.fresh_database()
    Database(location)
    return location


def _instances(url: str, clock: Clock, count: int = 2) -> list[IngestCore]:
    settings = IngestConfig(shared_group="hub-ingest", offline_after_s=60)
    return [IngestCore(url, PREFIX, settings, clock=clock) for _ in range(count)]


def test_instances_splitting_one_devices_messages_store_each_once_and_ack_what_either_stored(url: str) -> None:
    a, b = _instances(url, Clock())
    # The broker gives each message to one instance; a resent copy may reach the other.
    assert _acks(a.process([_event("dev-a", "b1", 1), _event("dev-a", "b1", 3)])) == {("dev-a", "b1"): 1}
    assert _acks(b.process([_event("dev-a", "b1", 2)])) == {("dev-a", "b1"): 3}  # b knows of a's 1 and 3
    assert _acks(a.process([_event("dev-a", "b1", 2), _event("dev-a", "b1", 4)])) == {("dev-a", "b1"): 4}
    assert a.counters.duplicates == 1  # b stored 2: a's copy is a duplicate, acknowledged again
    rows = a.conn.execute("SELECT seq FROM events WHERE device = 'dev-a' ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]


def test_concurrent_instances_lose_and_double_nothing(url: str) -> None:
    """Three instances, four devices, every event sent once and a third of them again (a device that missed
    its ack), in random splits, processed at the same time: at the far end each event once, and the last ack
    each device gets covers everything."""
    rng = random.Random(7)
    sent = [_event(f"dev-{d}", "b1", seq) for d in "abcd" for seq in range(1, 61)]
    copies = sent + rng.sample(sent, len(sent) // 3)
    rng.shuffle(copies)
    shares: list[list[tuple[str, bytes, float]]] = [[], [], []]
    for message in copies:
        shares[rng.randrange(3)].append(message)
    final: dict[tuple[str, str], int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    stored_by: list[int] = []

    def run(messages: list[tuple[str, bytes, float]]) -> None:
        try:
            core = _instances(url, Clock(), 1)[0]  # in its thread: a connection stays in the thread that made it
            for i in range(0, len(messages), 7):
                acks = _acks(core.process(messages[i : i + 7]))
                with lock:
                    for key, upto in acks.items():
                        final[key] = max(final.get(key, 0), upto)
            stored_by.append(core.counters.stored)
            core.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    conn = connect(url)
    stored = conn.execute("SELECT device, seq FROM events ORDER BY device, seq").fetchall()
    assert sorted((r[0], r[1]) for r in stored) == sorted({(f"dev-{d}", s) for d in "abcd" for s in range(1, 61)})
    assert final == {(f"dev-{d}", "b1"): 60 for d in "abcd"}
    assert sum(stored_by) == 240  # each stored by exactly one instance
    marks = conn.execute("SELECT device, upto, max_seq FROM boot_watermarks ORDER BY device").fetchall()
    assert [tuple(r) for r in marks] == [(f"dev-{d}", 60, 60) for d in "abcd"]


def test_one_instance_checks_for_silence_and_another_takes_over_when_it_dies(url: str) -> None:
    clock = Clock()
    a, b = _instances(url, clock)
    a.process([_event("dev-a", "b1", 1)])
    b.process([_event("dev-b", "b1", 1)])
    clock.now += 120  # both devices silent for longer than offline_after_s
    first, second = a.tick(), b.tick()
    marked = [note for result in (first, second) for note in result.notes if note[0] == "silent"]
    assert sorted(n[2] for n in marked) == ["dev-a", "dev-b"]  # once each, by the one that leads
    assert bool(first.notes) != bool(second.notes)
    leader, other = (a, b) if first.notes else (b, a)
    other.process([_event("dev-a", "b1", 2)])  # dev-a talks again, to the other instance
    leader.close()  # the leader dies: its session lock goes with its connection
    clock.now += 120
    marked_now: list[str] = []
    for _ in range(50):  # the server lets the lock go once it has seen the connection close
        marked_now = [n[2] for n in other.tick().notes if n[0] == "silent"]
        if marked_now:
            break
        clock.now += SHARED_CHECK_S
        time.sleep(0.1)
    assert marked_now == ["dev-a"]
    online = other.conn.execute("SELECT device, online FROM devices ORDER BY device").fetchall()
    assert [tuple(r) for r in online] == [("dev-a", 0), ("dev-b", 0)]


@pytest.mark.timeout(120)
def test_two_hubs_on_one_broker_share_a_devices_messages_and_it_gets_every_ack(url: str, broker: BrokerSetup) -> None:
    """Through a real Mosquitto: a shared subscription splits the device's messages between the two hubs
    (the ACL admits the hub's $share filters), and the device's last ack covers all of them."""
    ingests = [
        Ingest(
            url,
            hub_mqtt(broker),
            IngestConfig(writer_process=False, shared_group="hub-ingest"),
            password=broker.hub_password,
        )
        for _ in range(2)
    ]
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dev-a", protocol=mqtt.MQTTv311)
    device.username_pw_set("dev-a", broker.device_passwords["dev-a"])
    acked = {"upto": 0}
    done = threading.Event()

    def on_ack(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        acked["upto"] = max(acked["upto"], decode(Channel.ACK, message.payload).upto)
        if acked["upto"] == 40:
            done.set()

    device.on_message = on_ack
    try:
        for ingest in ingests:
            ingest.start()
            assert ingest.mqtt is not None and ingest.mqtt.wait_connected(20), "a hub did not connect"
        device.connect(broker.host, broker.device_port)
        device.subscribe(device_topic(broker.prefix, broker.site, "dev-a", Channel.ACK), qos=1)
        device.loop_start()
        topic = device_topic(broker.prefix, broker.site, "dev-a", Channel.ALARM)
        for seq in range(1, 41):
            device.publish(topic, encode(build_event(Channel.ALARM, "dev-a", "b1", seq, alarm_fields(seq))), qos=1)
        assert done.wait(60), f"acknowledged up to {acked['upto']} of 40"
        received = [ingest.stats().received for ingest in ingests]
        assert all(r > 0 for r in received), f"one hub got nothing: {received}"
        conn = connect(url)
        rows = conn.execute("SELECT seq FROM events WHERE device = 'dev-a' ORDER BY seq").fetchall()
        assert [r[0] for r in rows] == list(range(1, 41))
    finally:
        device.loop_stop()
        device.disconnect()
        for ingest in ingests:
            ingest.stop()


@pytest.mark.parametrize(
    ("store", "provisioning", "reason"),
    [
        ({"path": "/tmp/hub.sqlite3"}, None, "ingest.shared_group needs store.url"),
        ({"url": "postgresql://hub@db/hub"}, {"agent_mqtt_host": "hub.example"}, '"dynsec"'),
    ],
)
def test_sharing_the_ingest_is_refused_where_instances_could_not_share(
    tmp_path: Path, store: dict[str, str], provisioning: dict[str, str] | None, reason: str
) -> None:
    data = hub_config_data(tmp_path / "hub", ingest={"shared_group": "hub-ingest"})
    data["store"] = store
    if provisioning is not None:
        data["provisioning"] = provisioning
    with pytest.raises(ValidationError, match=reason):
        HubConfig.model_validate(data)


def test_a_full_reload_reads_one_state_while_another_instance_stores_new_boots(url: str) -> None:
    """An instance starting (or checking) reads every device's watermarks and the events above them; another
    instance storing a new boot between those two reads must not leave events above a watermark it never saw."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def store_new_boots() -> None:
        try:
            core = _instances(url, Clock(), 1)[0]
            boot = 0
            while not stop.is_set():
                boot += 1
                core.process([_event("dev-a", f"b{boot}", 1), _event("dev-a", f"b{boot}", 3)])
            core.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=store_new_boots)
    writer.start()
    try:
        deadline = time.monotonic() + 6.0
        loads = 0
        while time.monotonic() < deadline:
            core = _instances(url, Clock(), 1)[0]  # the constructor reads every device's state
            loads += 1
            core.close()
    finally:
        stop.set()
        writer.join()
    assert not errors
    assert loads > 5
