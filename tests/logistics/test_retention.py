"""Retention: flow windows rolled up to hourly and daily totals once, suppressed parts kept visible as lower
bounds, raw windows deleted after raw_days, hourly after hourly_days, residents' data after its days."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub_protocol.codec import encode
from hub_protocol.flows import FlowCell, FlowTotal, FlowWindow, PrivacyPolicy, WindowQuality
from hub_protocol.topics import Channel, device_topic
from hub_server.config import HubConfig, IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.records.retention import Retention
from hub_server.store import logistics as logistics_store
from hub_server.store import retention as store
from hub_server.store.db import Database
from tests.logistics.helpers import Clock

SITE, DEVICE = "test-street", "dev-a"
DAY0 = datetime(2026, 1, 5, tzinfo=UTC)


def _config(tmp_path: Path, **retention: int) -> HubConfig:
    return HubConfig.model_validate(
        {
            "mqtt": {"password_file": str(tmp_path / "mqtt-password")},
            "http": {"session_key_file": str(tmp_path / "session-key")},
            "store": {"path": str(tmp_path / "hub.sqlite3")},
            "retention": {"raw_days": 30, "hourly_days": 90, **retention},
            "logistics": {"personal_data_days": 14},
        }
    )


class Flows:
    """Stores flow windows through the ingest's own writer."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.core = IngestCore(db.location, "cot", IngestConfig(), clock=lambda: clock().timestamp())
        self.seq = 0

    def window(
        self,
        start: datetime,
        counts: dict[str, int | None],
        observed: float = 1.0,
        cells: list[FlowCell] | None = None,
        totals: list[FlowTotal] | None = None,
    ) -> None:
        self.seq += 1
        cells = cells or [
            FlowCell(line=line, direction="in", object_class="pedestrian", count=count)
            for line, count in counts.items()
        ]
        window = FlowWindow(
            device=DEVICE,
            boot="b1",
            seq=self.seq,
            window_start=start,
            window_seconds=900,
            cells=cells,
            totals=totals or [],
            quality=WindowQuality(observed_fraction=observed, mean_fps=5, dropped_frames=0),
            policy=PrivacyPolicy(kind="threshold", k=5),
        )
        topic = device_topic("cot", SITE, DEVICE, Channel.FLOW)
        self.core.process([(topic, encode(window), start.timestamp() + 900)])


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Retention, Flows, Clock]:
    config = _config(tmp_path)
    db = Database(config.store.location)
    clock = Clock(DAY0 + timedelta(hours=12))
    return Retention(db, config, clock=clock), Flows(db, clock), clock


def test_hourly_and_daily_totals_with_suppressed_parts(setup: tuple[Retention, Flows, Clock]) -> None:
    retention, flows, _ = setup
    nine = DAY0 + timedelta(hours=9)
    flows.window(nine, {"door": 12, "gate": 7})
    flows.window(nine + timedelta(minutes=15), {"door": None, "gate": 6})  # door suppressed (below k)
    flows.window(nine + timedelta(minutes=30), {"door": 20, "gate": 5}, observed=0.5)
    flows.window(nine + timedelta(hours=1), {"door": 9, "gate": 8})
    assert retention.roll_up() == 4
    assert retention.roll_up() == 0  # each window once

    hourly = {(r.bucket_start.hour, r.line): r for r in store.rollups(retention.db.conn, "hour")}
    door9 = hourly[(9, "door")]
    assert (door9.count, door9.cells, door9.suppressed_cells, door9.lower_bound) == (32, 3, 1, True)
    gate9 = hourly[(9, "gate")]
    assert (gate9.count, gate9.suppressed_cells, gate9.lower_bound) == (18, 0, False)
    assert gate9.observed_seconds == pytest.approx(900 + 900 + 450)
    assert hourly[(10, "door")].count == 9 and not hourly[(10, "door")].lower_bound

    daily = {r.line: r for r in store.rollups(retention.db.conn, "day")}
    assert (daily["door"].count, daily["door"].suppressed_cells) == (41, 1)  # still a lower bound for the day
    assert (daily["gate"].count, daily["gate"].lower_bound) == (26, False)
    assert daily["door"].bucket_start == DAY0


def test_a_total_sent_beside_suppressed_cells_is_rolled_up_as_suppressed(setup: tuple[Retention, Flows, Clock]) -> None:
    retention, flows, _ = setup
    # Two suppressed cells with a line total beside them (as the threshold rule before issue 13 sent it): added
    # up and published it would give the hidden cells away, so it counts as suppressed; a total whose cells
    # were all published is their sum and counts.
    flows.window(
        DAY0,
        {},
        cells=[
            FlowCell(line="door", direction="in", object_class="pedestrian", count=None),
            FlowCell(line="door", direction="out", object_class="pedestrian", count=None),
        ],
        totals=[FlowTotal(line="door", count=7), FlowTotal(line="door", object_class="pedestrian", count=7)],
    )
    flows.window(
        DAY0 + timedelta(minutes=15),
        {},
        cells=[
            FlowCell(line="door", direction="in", object_class="pedestrian", count=6),
            FlowCell(line="door", direction="out", object_class="pedestrian", count=0),
        ],
        totals=[FlowTotal(line="door", count=6), FlowTotal(line="door", object_class="pedestrian", count=6)],
    )
    retention.roll_up()
    rows = {(r.direction, r.object_class): r for r in store.rollups(retention.db.conn, "hour")}
    line_total = rows[("*", "*")]
    assert (line_total.count, line_total.suppressed_cells, line_total.lower_bound) == (6, 1, True)  # at least 6
    inbound = rows[("in", "pedestrian")]
    assert (inbound.count, inbound.suppressed_cells, inbound.lower_bound) == (6, 1, True)  # at least 6
    assert (rows[("*", "pedestrian")].count, rows[("*", "pedestrian")].lower_bound) == (6, True)


def test_late_window_is_added_without_recounting(setup: tuple[Retention, Flows, Clock]) -> None:
    retention, flows, _ = setup
    flows.window(DAY0, {"door": 10})
    retention.roll_up()
    flows.window(DAY0 + timedelta(minutes=15), {"door": 5})  # arrives after a device was offline
    retention.roll_up()
    [hour] = store.rollups(retention.db.conn, "hour", line="door")
    assert (hour.count, hour.cells) == (15, 2)


def test_purge_deletes_old_raw_windows_but_keeps_their_totals(setup: tuple[Retention, Flows, Clock]) -> None:
    retention, flows, clock = setup
    flows.window(DAY0, {"door": 10})
    flows.window(DAY0 + timedelta(days=20), {"door": 6})
    clock.now = DAY0 + timedelta(days=30, hours=1)
    report = retention.purge()
    assert (report.rolled_windows, report.deleted_windows, report.deleted_cells) == (2, 1, 1)
    assert report.deleted_events == 1  # the stored payload copy went too (it was acknowledged)
    conn = retention.db.conn
    assert conn.execute("SELECT count(*) FROM flow_windows").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM flow_cells").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM events WHERE channel = 'flow'").fetchone()[0] == 1
    assert sum(r.count for r in store.rollups(conn, "day")) == 16
    assert sum(r.count for r in store.rollups(conn, "hour")) == 16

    clock.now = DAY0 + timedelta(days=91)
    report = retention.purge()
    assert report.deleted_hourly == 1 and report.deleted_windows == 1
    assert [r.count for r in store.rollups(conn, "hour")] == [6]
    assert sorted(r.count for r in store.rollups(conn, "day")) == [6, 10]  # daily totals stay


def test_purge_erases_residents_data_after_its_days(setup: tuple[Retention, Flows, Clock]) -> None:
    retention, _, clock = setup
    with retention.db.write() as conn:
        logistics_store.upsert_compartment(conn, DEVICE, 1, "S", False)
        logistics_store.insert_delivery(
            conn,
            {
                "id": "d-1",
                "kind": "delivery",
                "device": DEVICE,
                "compartment": 1,
                "size": "S",
                "status": "collected",
                "created_at": DAY0,
                "dropoff_expires_at": DAY0,
                "finished_at": DAY0 + timedelta(days=1),
                "resident_name": "Noor",
                "resident_contact": "noor@example.org",
                "token_hash": "a" * 64,
            },
        )
    clock.now = DAY0 + timedelta(days=14)
    assert retention.purge().personal_data_erased == 0
    clock.now = DAY0 + timedelta(days=15)
    assert retention.purge().personal_data_erased == 1
    row = logistics_store.delivery(retention.db.conn, "d-1")
    assert row is not None and row.resident_name is None and row.resident_contact is None


def test_daily_schedule(setup: tuple[Retention, Flows, Clock]) -> None:
    retention, _, _ = setup
    three = DAY0.replace(hour=3)
    assert retention.next_run(DAY0.replace(hour=2, minute=59)) == three
    assert retention.next_run(three) == three + timedelta(days=1)


def test_purge_command(tmp_path: Path) -> None:
    config = _config(tmp_path)
    db = Database(config.store.location)
    flows = Flows(db, Clock(datetime.now(UTC) - timedelta(days=40)))
    flows.window(datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=40), {"door": 8})
    (tmp_path / "hub.toml").write_text(
        f"""
[mqtt]
password_file = "{tmp_path / "mqtt-password"}"
[http]
session_key_file = "{tmp_path / "session-key"}"
[store]
path = "{config.store.path}"
[retention]
raw_days = 30
"""
    )
    done = subprocess.run(
        [sys.executable, "-m", "hub_server.cli", "purge", "--config", str(tmp_path / "hub.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "deleted windows: 1" in done.stdout and "rolled windows: 1" in done.stdout
    assert db.conn.execute("SELECT count(*) FROM flow_windows").fetchone()[0] == 0
    assert [r.count for r in store.rollups(db.conn, "day")] == [8]


async def test_background_loop_purges_at_start_then_rolls_up(setup: tuple[Retention, Flows, Clock]) -> None:
    import asyncio

    retention, flows, _ = setup
    flows.window(DAY0 - timedelta(days=40), {"door": 9})  # older than raw_days: goes at the first purge
    task = asyncio.create_task(retention.run(roll_every_s=0.05))
    try:
        for _ in range(250):
            if store.last_run(retention.db.conn) is not None:
                break
            await asyncio.sleep(0.02)
        assert store.last_run(retention.db.conn) is not None  # no run recorded yet: purge at once
        conn = retention.db.conn
        assert conn.execute("SELECT count(*) FROM flow_windows").fetchone()[0] == 0
        flows.window(DAY0 + timedelta(hours=11), {"door": 5})
        for _ in range(250):
            if store.rollups(conn, "hour", since=DAY0 + timedelta(hours=11)):
                break
            await asyncio.sleep(0.02)
        [row] = store.rollups(conn, "hour", since=DAY0 + timedelta(hours=11))
        assert row.count == 5
        assert conn.execute("SELECT count(*) FROM retention_runs").fetchone()[0] == 1  # the daily purge is not due
    finally:
        task.cancel()
