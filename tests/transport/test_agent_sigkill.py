"""The whole agent (``edge-agent run --simulate`` with lockers, as the demo runs it) killed with SIGKILL again and
again: every locker event reaches the hub exactly once, including those on the hop from the locker store to the
outbox, which is otherwise at least once."""

from __future__ import annotations

import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hub_protocol.codec import encode
from hub_protocol.commands import LockerSetService
from hub_protocol.tomlwrite import dumps
from hub_protocol.topics import Channel, device_topic
from hub_server.demo.world import demo_agent_sections
from tests.conftest import BrokerSetup, agent_config, wait_for
from tests.transport.helpers import start_ingest

pytestmark = pytest.mark.slow

ROUNDS = 20
EventKey = tuple[str, int, str, str]


def _hub_locker_events(db: Path) -> list[EventKey]:
    import json

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM events WHERE device = 'dev-a' AND channel = 'locker'").fetchall()
    out = []
    for (payload,) in rows:
        event = json.loads(payload)
        out.append((str(datetime.fromisoformat(event["at"])), event["compartment"], event["state"], event["cause"]))
    return out


def _device_transitions(state_dir: Path) -> list[EventKey]:
    with sqlite3.connect(state_dir / "lockers.sqlite3") as conn:
        rows = conn.execute("SELECT at, compartment, state, cause FROM transitions ORDER BY id").fetchall()
    return [(str(datetime.fromisoformat(at)), c, s, cause) for at, c, s, cause in rows]


def _pending_handoffs(state_dir: Path) -> int:
    with sqlite3.connect(state_dir / "lockers.sqlite3") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM pending_events").fetchone()[0])


class HubCommands:
    def __init__(self, setup: BrokerSetup) -> None:
        self.setup = setup
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-cmd", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(setup.hub_user, setup.hub_password)
        self.client.connect(setup.host, setup.port)
        self.client.loop_start()

    def service(self, compartment: int, in_service: bool) -> None:
        now = datetime.now(UTC)
        command = LockerSetService(
            id=f"svc-{secrets.token_hex(6)}",
            device="dev-a",
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            action="locker-service",
            compartment=compartment,
            in_service=in_service,
        )
        topic = device_topic(self.setup.prefix, self.setup.site, "dev-a", Channel.COMMAND)
        self.client.publish(topic, encode(command), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _start_agent(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    edge_agent = Path(sys.executable).with_name("edge-agent")
    return subprocess.Popen(
        [str(edge_agent), "run", "--simulate", "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_agent_with_lockers_sigkilled_20_times_delivers_every_locker_event_exactly_once(
    broker: BrokerSetup, tmp_path: Path
) -> None:
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    state_dir = tmp_path / "dev-a"
    sections: dict[str, Any] = demo_agent_sections("dev-a", state_dir, with_lockers=True, video=None)
    device = sections.pop("device")
    config = agent_config(broker, "dev-a", tmp_path, **sections)
    data = config.model_dump(mode="json")
    data["device"].update(device)
    config_path = tmp_path / "agent.toml"
    config_path.write_text(dumps(data))
    compartments = [c["number"] for c in sections["lockers"]["compartments"]]
    log = tmp_path / "agent.log"
    hub = HubCommands(broker)
    rng = random.Random(14)
    try:
        for round_ in range(ROUNDS):
            seen = len(_hub_locker_events(db))
            agent = _start_agent(config_path, log)
            try:
                # Recovery reports every compartment: wait until this boot's first event is at the hub.
                wait_for(
                    lambda s=seen: len(_hub_locker_events(db)) > s, 30, f"round {round_}: the agent's first events"
                )
                for _ in range(rng.randint(1, 4)):
                    hub.service(rng.choice(compartments), rng.random() < 0.5)
                time.sleep(rng.uniform(0.0, 1.0))
            finally:
                agent.send_signal(signal.SIGKILL)
                agent.wait(10)
        seen = len(_hub_locker_events(db))
        final = _start_agent(config_path, log)
        try:
            wait_for(lambda: len(_hub_locker_events(db)) > seen, 60, "the last agent's first events")
            expected_at_least = len(_device_transitions(state_dir))
            wait_for(lambda: len(_hub_locker_events(db)) >= expected_at_least, 60, "the last agent's delivery")
            wait_for(lambda: _pending_handoffs(state_dir) == 0, 30, "the locker store handed everything over")
            time.sleep(2.0)  # anything doubled would arrive now
            final.send_signal(signal.SIGTERM)
            assert final.wait(30) == 0
        finally:
            if final.poll() is None:
                final.kill()
                final.wait(10)
        sent = Counter(_device_transitions(state_dir))
        stored = Counter(_hub_locker_events(db))
        missing = sent - stored
        # Locker times are whole seconds: two recoveries in one second are two equal keys on the device too,
        # so an event is doubled when the hub holds it more often than the device recorded it.
        doubled = {k: n for k, n in stored.items() if n > sent[k]}
        extra = stored - sent
        print(
            f"\n[agent with lockers SIGKILL x{ROUNDS}] locker events: device={sum(sent.values())}, "
            f"hub={sum(stored.values())}, missing={sum(missing.values())}, doubled={len(doubled)}, "
            f"extra={sum(extra.values())}, hub duplicates ignored={ingest.stats().duplicates}"
        )
        assert not missing and not doubled and not extra
        assert sum(sent.values()) >= ROUNDS * len(compartments)  # every start reported every compartment
    finally:
        hub.close()
        ingest.stop()
