"""What the flows page's data costs: a week of four devices, read from the roll-ups against reading every window.

    python bench/flow_chart.py [--days D] [--devices N] [--repeats R]

Stores one-minute windows (two lines, eight cells, one line's published total, one suppressed cell in ten
windows) through the real ingest writer, rolls them up as the hub's retention does every few minutes, then
adds five more minutes of windows that are not rolled up yet. Times the page's two reads (today in hours,
the week in days) for all devices and for one, median of R runs: from the roll-ups, and the baseline in the
same run, the same database with nothing rolled up, which reads every window's cells as the page did before.
Both must give the same sums. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub_protocol.codec import encode  # noqa: E402
from hub_protocol.flows import FlowWindow  # noqa: E402
from hub_protocol.topics import Channel, device_topic  # noqa: E402
from hub_server.config import IngestConfig  # noqa: E402
from hub_server.ingest.writer import IngestCore  # noqa: E402
from hub_server.store.db import Database  # noqa: E402
from hub_server.store.flow_summaries import SlotSums, slot_sums  # noqa: E402
from hub_server.store.retention import roll_up_batch  # noqa: E402

END = datetime(2026, 3, 9, tzinfo=UTC)  # a Monday, midnight UTC: the page's day and week slots are whole hours


def window(device: str, seq: int, start: datetime) -> bytes:
    cells = [
        {
            "line": f"line-{i}",
            "direction": d,
            "object_class": c,
            "count": None
            if (seq % 10 == 0 and i == 1 and d == "out" and c == "cyclist")
            else [0, 5, 6, 7][(seq + i) % 4],
        }
        for i in range(2)
        for d in ("in", "out")
        for c in ("pedestrian", "cyclist")
    ]
    line_0 = sum(c["count"] or 0 for c in cells if c["line"] == "line-0")
    totals = [{"line": "line-0", "direction": None, "object_class": None, "count": line_0}]  # line-1: cells only
    return encode(
        FlowWindow(
            device=device,
            boot="b1",
            seq=seq,
            window_start=start,
            window_seconds=60,
            cells=cells,  # type: ignore[arg-type]
            totals=totals,  # type: ignore[arg-type]
            quality={"observed_fraction": 1.0, "mean_fps": 9.5, "dropped_frames": 0},  # type: ignore[arg-type]
            policy={"kind": "threshold", "k": 5},  # type: ignore[arg-type]
        )
    )


def store(db: Database, devices: list[str], first: datetime, minutes: int, seq0: int) -> None:
    core = IngestCore(db.location, "cot", IngestConfig(), clock=lambda: (END + timedelta(minutes=10)).timestamp())
    batch = []
    for device in devices:
        for m in range(minutes):
            start = first + timedelta(minutes=m)
            topic = device_topic("cot", "street", device, Channel.FLOW)
            batch.append((topic, window(device, seq0 + m, start), start.timestamp() + 60))
            if len(batch) >= 2000:
                core.process(batch)
                batch = []
    core.process(batch)
    core.close()


def roll_up(db: Database, leave: int = 0) -> None:
    """What the hub's retention does every few minutes (hub_server.records.retention.Retention.roll_up), oldest
    windows first; ``leave`` newest windows are left as if they arrived after it."""
    with db.write() as conn:
        todo = conn.execute("SELECT COUNT(*) FROM flow_windows").fetchone()[0] - leave
        while todo > 0:
            todo -= roll_up_batch(conn, min(2000, todo))


def page_reads(db: Database, device: str | None) -> list[SlotSums]:
    day = END - timedelta(days=1)
    return [
        slot_sums(db.conn, day, timedelta(hours=1), 24, device),
        slot_sums(db.conn, END - timedelta(days=7), timedelta(days=1), 7, device),
    ]


def timed(db: Database, device: str | None, repeats: int) -> tuple[float, list[SlotSums]]:
    result = page_reads(db, device)  # warm the cache, as a page read after another
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        page_reads(db, device)
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    devices = [f"dev-{i}" for i in range(args.devices)]
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "hub.sqlite3")
        minutes = args.days * 1440 - 5
        store(db, devices, END - timedelta(days=args.days), minutes, 1)
        store(db, devices, END - timedelta(minutes=5), 5, minutes + 1)
        unrolled = 5 * len(devices)  # the last five minutes arrived since the last roll-up
        roll_up(db, unrolled)
        figures: dict[str, float] = {}
        for label, device in (("all", None), ("one", devices[0])):
            figures[f"rollups_{label}_ms"], fast = timed(db, device, args.repeats)
            with db.write() as conn:  # the baseline: nothing rolled up, every window read
                conn.execute("DELETE FROM flow_rolled")
                conn.execute("DELETE FROM flow_rollups")
                conn.execute("DELETE FROM flow_quality_rollups")
            figures[f"baseline_{label}_ms"], slow = timed(db, device, args.repeats)
            if fast != slow:
                print(f"MISMATCH for {label}: the roll-ups and the windows disagree")
                return 1
            roll_up(db, unrolled)  # as before, for the next round
        for label in ("all", "one"):
            ratio = figures[f"baseline_{label}_ms"] / figures[f"rollups_{label}_ms"]
            print(
                f"{'all devices' if label == 'all' else 'one device'}: roll-ups {figures[f'rollups_{label}_ms']:.1f} ms, "
                f"every window {figures[f'baseline_{label}_ms']:.1f} ms ({ratio:.0f}x)"
            )
        print(json.dumps({"days": args.days, "devices": args.devices, **{k: round(v, 2) for k, v in figures.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
