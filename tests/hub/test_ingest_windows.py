"""Flow windows whose start cannot be true are refused from serving and totals, counted, and acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub_protocol.codec import decode, encode
from hub_protocol.envelope import Ack
from hub_protocol.flows import FlowCell, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store.db import Database

PREFIX, SITE = "cot", "test-street"
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _window(seq: int, start: datetime) -> tuple[str, bytes, float]:
    window = FlowWindow(
        device="dev-a",
        boot="b1",
        seq=seq,
        window_start=start,
        window_seconds=900,
        cells=[FlowCell(line="door", direction="in", object_class="pedestrian", count=9)],
        quality=WindowQuality(observed_fraction=1.0, mean_fps=8.0, dropped_frames=0),
        policy=PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=5),
    )
    return device_topic(PREFIX, SITE, "dev-a", Channel.FLOW), encode(window), NOW.timestamp()


def test_windows_from_the_future_or_the_far_past_are_refused_and_counted(tmp_path: Path) -> None:
    Database(tmp_path / "hub.sqlite3")
    core = IngestCore(
        tmp_path / "hub.sqlite3", PREFIX, IngestConfig(flow_max_age_days=30), clock=lambda: NOW.timestamp()
    )
    starts = {
        1: NOW - timedelta(minutes=30),  # an ordinary window
        2: datetime(9999, 12, 31, tzinfo=UTC),  # the forged one of the hostile test
        3: NOW + timedelta(minutes=31),  # more than one window ahead of the hub's clock
        4: NOW + timedelta(minutes=10),  # within one window: a device clock a little fast
        5: datetime(1970, 1, 1, 0, 15, tzinfo=UTC),  # a Pi without a clock battery
        6: NOW - timedelta(days=31),  # older than flow_max_age_days
    }
    result = core.process([_window(seq, start) for seq, start in starts.items()])
    stored = {row[0] for row in core.conn.execute("SELECT seq FROM flow_windows")}
    assert stored == {1, 4}
    refused = core.conn.execute(
        "SELECT count, last_reason FROM invalid_messages WHERE device = 'dev-a' AND kind = 'window-time'"
    ).fetchone()
    assert refused[0] == 4 and "hub's clock" in refused[1]
    # Acknowledged all the same: the device must not resend a window its broken clock dated.
    [ack] = [decode(Channel.ACK, payload) for _, payload in result.acks]
    assert isinstance(ack, Ack) and ack.upto == 6
