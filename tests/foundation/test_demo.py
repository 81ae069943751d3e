"""The field lab in a box, run as a newcomer would, with an eavesdropper on the broker.

The eavesdropper uses the hub's credentials, which may read every topic of the contract; devices cannot
publish anywhere else (their ACL), so this sees everything that leaves the simulated devices.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from hub_protocol.codec import ProtocolError, decode
from hub_protocol.topics import Channel, parse_topic
from hub_server.fleet.broker import free_port

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM6", b"RIFF")
FORBIDDEN_KEYS = re.compile(r'"(track|track_id|tracks|trajectory|bbox|box|position|x|y|frame|image|crossed_at)"')
pytestmark = pytest.mark.slow


def _eavesdrop(state: Path, stop: threading.Event, seen: list[tuple[str, bytes]]) -> None:
    hub_toml = state / "hub.toml"
    while not hub_toml.exists() and not stop.is_set():
        time.sleep(0.2)
    config = tomllib.loads(hub_toml.read_text())
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="eavesdropper")
    client.username_pw_set("hub", Path(config["mqtt"]["password_file"]).read_text().strip())
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
    client.on_message = lambda c, u, msg: seen.append((msg.topic, msg.payload))
    client.connect("127.0.0.1", config["mqtt"]["port"])
    client.loop_start()
    stop.wait()
    client.loop_stop()
    client.disconnect()


def test_demo_runs_devices_online_and_only_aggregates_leave_them(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    seen: list[tuple[str, bytes]] = []
    stop = threading.Event()
    spy = threading.Thread(target=_eavesdrop, args=(state, stop, seen), daemon=True)
    spy.start()
    port = free_port()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hub_server.cli",
                "demo",
                "--seconds",
                "75",
                "--port",
                str(port),
                "--state-dir",
                str(state),
            ],
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        stop.set()
        spy.join(10)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    # The state folder is its user's alone: databases, logs and secrets 0600 (the technician's agent.toml and
    # ca.pem are written 0644 on purpose, inside folders nobody else may enter).
    assert state.stat().st_mode & 0o777 == 0o700
    exposed = [
        f"{p.relative_to(state)} {p.stat().st_mode & 0o777:o}"
        for p in state.rglob("*")
        if p.is_file() and p.stat().st_mode & 0o077 and p.name not in {"agent.toml", "ca.pem"}
    ]
    assert not exposed, exposed
    assert any(p.suffix == ".sqlite3" for p in state.rglob("*"))
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["errors"] == []
    assert len(summary["devices_online"]) >= 2
    assert summary["flow_windows"] >= 1
    assert summary["locker_events"] >= 1
    assert f"http://127.0.0.1:{port}/" in result.stdout
    assert "Operator login: operator / " in result.stdout

    channels: set[Channel] = set()
    for topic, payload in seen:
        parts = parse_topic("cot", topic)
        assert parts is not None, f"message outside the contract's topic tree: {topic}"
        channels.add(parts.channel)
        try:
            decode(parts.channel, payload)
        except ProtocolError as exc:
            pytest.fail(f"{topic}: payload breaks the contract: {exc.reason}")
        assert not any(payload.startswith(m) for m in IMAGE_MAGIC), f"{topic} carries image data"
        assert len(payload) < 16_384, f"{topic}: {len(payload)} bytes is not an aggregate"
        assert not FORBIDDEN_KEYS.search(payload.decode()), f"{topic} carries per-object data: {payload[:200]!r}"
    assert {Channel.FLOW, Channel.LOCKER, Channel.STATUS, Channel.REGISTER, Channel.HEALTH} <= channels
