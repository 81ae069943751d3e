"""Hub ingest throughput against a bare paho subscriber, on the same private broker in the same run.

    python bench/ingest.py [--events N] [--devices D] [--rounds R]

Devices publish N flow windows (8 cells each, the bulk of real traffic) at QoS 1 while two persistent
sessions are away: a bare paho subscriber (counts messages, nothing else) and the hub's ingest. Each then
connects and drains its queue; the rate is messages from the first received to the last received (bare)
or the last durably stored (hub: validated, de-duplicated, committed with synchronous=FULL, acknowledged).
The broker queues without limit for this run only. Rounds alternate bare and hub; the best round of each
counts. The last line is JSON with ``hub_events_per_s`` and ``bare_subscriber_events_per_s``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub_protocol.codec import encode  # noqa: E402
from hub_protocol.flows import FlowWindow  # noqa: E402
from hub_protocol.topics import Channel, device_acl, device_topic, hub_acl  # noqa: E402
from hub_server.config import HubMqttConfig, IngestConfig  # noqa: E402
from hub_server.fleet.broker import PrivateBroker  # noqa: E402
from hub_server.ingest.mqtt import device_subscriptions  # noqa: E402
from hub_server.ingest.service import Ingest  # noqa: E402
from hub_server.store.db import Database  # noqa: E402

PREFIX, SITE = "cot", "bench-street"


class BenchBroker(PrivateBroker):
    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text().replace("max_queued_messages 1000", "max_queued_messages 0")
        self.config_path.write_text(text.replace("autosave_interval 1", "autosave_interval 600"))


def flow_payloads(device: str, boot: str, count: int, offset: int) -> list[bytes]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cells = [
        {"line": f"line-{i}", "direction": d, "object_class": c, "count": 7 + i}
        for i in range(2)
        for d in ("in", "out")
        for c in ("pedestrian", "cyclist")
    ]
    out = []
    for seq in range(offset + 1, offset + count + 1):
        window = FlowWindow(
            device=device,
            boot=boot,
            seq=seq,
            window_start=start + timedelta(minutes=seq),
            window_seconds=60,
            cells=cells,  # type: ignore[arg-type]
            quality={"observed_fraction": 1.0, "mean_fps": 9.5, "dropped_frames": 0},  # type: ignore[arg-type]
            policy={"kind": "threshold", "k": 5},  # type: ignore[arg-type]
        )
        out.append(encode(window))
    return out


def client(client_id: str, user: str, password: str, clean: bool) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    c.username_pw_set(user, password)
    return c


def ensure_session(broker: PrivateBroker, client_id: str, password: str) -> None:
    """Create a persistent session with the hub's subscriptions, then leave it so the broker queues for it."""
    c = client(client_id, "hub", password, clean=False)
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    c.subscribe([(t, 1) for t in device_subscriptions(PREFIX)])
    assert done.wait(10), "no SUBACK"
    c.disconnect()
    c.loop_stop()


def publish_all(broker: PrivateBroker, passwords: dict[str, str], payloads: dict[str, list[bytes]]) -> float:
    started = time.perf_counter()
    threads = []

    def run(device: str) -> None:
        c = client(f"{device}-pub", device, passwords[device], clean=True)
        c.max_inflight_messages_set(500)
        c.connect(broker.host, broker.port)
        c.loop_start()
        topic = device_topic(PREFIX, SITE, device, Channel.FLOW)
        info = None
        for payload in payloads[device]:
            info = c.publish(topic, payload, qos=1)
        if info is not None:
            info.wait_for_publish(300)
        c.disconnect()
        c.loop_stop()

    for device in payloads:
        t = threading.Thread(target=run, args=(device,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return time.perf_counter() - started


def drain_bare(broker: PrivateBroker, password: str, expected: int) -> float:
    count = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal count, first, last
        if count == 0:
            first = time.perf_counter()
        count += 1
        if count == expected:
            last = time.perf_counter()
            done.set()

    c = client("bare-sub", "hub", password, clean=False)
    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.loop_start()
    if not done.wait(600):
        raise SystemExit(f"bare subscriber got {count} of {expected}")
    c.disconnect()
    c.loop_stop()
    return expected / (last - first)


def drain_hub(broker: PrivateBroker, password: str, db_path: Path, expected: int) -> tuple[float, Ingest]:
    config = HubMqttConfig(host=broker.host, port=broker.port, prefix=PREFIX, password_file="unused")
    ingest = Ingest(db_path, config, IngestConfig(client_id="hub-ingest"), password=password)
    ingest.start()
    deadline = time.monotonic() + 600
    while ingest.stats().stored < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"hub stored {ingest.stats().stored} of {expected}")
        time.sleep(0.002)
    stored_at = time.time()
    conn = sqlite3.connect(db_path)
    first = conn.execute("SELECT MIN(received_at) FROM events").fetchone()[0]
    conn.close()
    return expected / (stored_at - first), ingest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="events per round (default 60,000)")
    parser.add_argument("--devices", type=int, default=4, help="publishing devices (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bare + hub (default 3)")
    args = parser.parse_args()
    devices = [f"bench-{i}" for i in range(args.devices)]
    per_device = args.events // len(devices)
    expected = per_device * len(devices)
    hub_password = secrets.token_urlsafe(18)
    passwords = {d: secrets.token_urlsafe(18) for d in devices}
    acl = hub_acl(PREFIX, "hub")
    for d in devices:
        acl += device_acl(PREFIX, SITE, d)
    bare_rates: list[float] = []
    hub_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        broker = BenchBroker(folder / "broker", {"hub": hub_password, **passwords}, acl)
        broker.start()
        try:
            boot = secrets.token_hex(8)
            for round_ in range(args.rounds):
                db_path = folder / f"hub-{round_}.sqlite3"
                Database(db_path)
                ensure_session(broker, "bare-sub", hub_password)
                ensure_session(broker, "hub-ingest", hub_password)
                payloads = {d: flow_payloads(d, boot, per_device, round_ * per_device) for d in devices}
                took = publish_all(broker, passwords, payloads)
                print(f"round {round_ + 1}: published {expected} flow windows in {took:.1f} s", flush=True)
                bare = drain_bare(broker, hub_password, expected)
                hub, ingest = drain_hub(broker, hub_password, db_path, expected)
                stats = ingest.stats()
                ingest.stop()
                for leftover in folder.glob(f"hub-{round_}.sqlite3*"):
                    leftover.unlink()  # its unwritten pages would otherwise compete with the next round's syncs
                bare_rates.append(bare)
                hub_rates.append(hub)
                print(
                    f"round {round_ + 1}: bare subscriber {bare:,.0f} msg/s, hub ingest {hub:,.0f} events/s stored"
                    f" ({hub / bare:.0%}); hub stats {stats}",
                    flush=True,
                )
        finally:
            broker.stop()
    best_bare, best_hub = max(bare_rates), max(hub_rates)
    print(
        json.dumps(
            {
                "events_per_round": expected,
                "hub_events_per_s": round(best_hub),
                "bare_subscriber_events_per_s": round(best_bare),
                "hub_to_bare_ratio": round(best_hub / best_bare, 3),
                "target_ratio": 0.8,
                "target_hub_events_per_s": 6000,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
