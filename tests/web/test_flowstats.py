"""Flow windows into chart buckets: sums per slot, suppressed cells kept apart, quality weighted by time."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.reporter import FlowReporter
from hub_protocol.codec import encode
from hub_protocol.flows import FlowCell, FlowTotal, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.topics import Channel, device_topic
from hub_server.appkeys import DB_KEY
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store.db import Database
from hub_server.store.retention import roll_up_batch
from hub_server.web import flowstats
from hub_server.web.sources import HubSource

START = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


def window(
    device: str,
    start: datetime,
    counts: dict[tuple[str, str, str], int | None],
    observed: float = 1.0,
    policy: PrivacyPolicy | None = None,
    seq: int = 1,
) -> FlowWindow:
    cells = [FlowCell(line=line, direction=d, object_class=c, count=n) for (line, d, c), n in counts.items()]  # type: ignore[arg-type]
    return FlowWindow(
        device=device,
        boot="b1",
        seq=seq,
        window_start=start,
        window_seconds=900,
        cells=cells,
        quality=WindowQuality(observed_fraction=observed, mean_fps=10.0 if observed else 0.0, dropped_frames=3),
        policy=policy or PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=5),
    )


@pytest.fixture
def stored(tmp_path: Path) -> Callable[[list[FlowWindow]], HubSource]:
    """Windows stored by the real ingest writer into a real database; the pages' source reading them back."""

    def store(windows: list[FlowWindow]) -> HubSource:
        db = Database(tmp_path / "hub.sqlite3")
        core = IngestCore(db.location, "cot", IngestConfig())
        batch = [(device_topic("cot", "street", w.device, Channel.FLOW), encode(w), START.timestamp()) for w in windows]
        core.process(batch)
        core.close()
        app = web.Application()
        app[DB_KEY] = db
        return HubSource(app)

    return store


def test_windows_sum_into_hour_slots_and_suppressed_cells_are_counted_apart(
    stored: Callable[[list[FlowWindow]], HubSource],
) -> None:
    windows = [
        window(
            "dev-a",
            START + timedelta(minutes=0),
            {("door", "in", "pedestrian"): 7, ("door", "out", "pedestrian"): None},
            seq=1,
        ),
        window(
            "dev-a",
            START + timedelta(minutes=15),
            {("door", "in", "pedestrian"): 5, ("door", "out", "pedestrian"): 6},
            seq=2,
        ),
        window(
            "dev-a",
            START + timedelta(hours=2),
            {("door", "in", "pedestrian"): 9, ("door", "out", "pedestrian"): 0},
            seq=3,
        ),
        window(
            "dev-a",
            START - timedelta(minutes=15),
            {("door", "in", "pedestrian"): 100, ("door", "out", "pedestrian"): 0},
            seq=4,
        ),
    ]
    aggregate = stored(windows).flow_aggregate(START, timedelta(hours=1), 24)
    result = flowstats.assemble(aggregate, START, timedelta(hours=1), 24, UTC, "%H")
    assert result.labels[:3] == ["00", "01", "02"]
    door = result.lines["door"]
    assert door.series[("in", "pedestrian")][:3] == [12, None, 9]  # before the day: left out; no window: a gap
    assert door.series[("out", "pedestrian")][:3] == [6, None, 0]
    assert door.suppressed[("out", "pedestrian")] == 1
    q = result.quality
    assert (q.windows, q.cells, q.suppressed_cells, q.dropped_frames) == (3, 6, 1, 9)
    assert q.policies == {"threshold k=5"}


def test_quality_is_weighted_by_observed_time(stored: Callable[[list[FlowWindow]], HubSource]) -> None:
    windows = [
        window("dev-a", START, {("l", "in", "cyclist"): 5}, observed=1.0, seq=1),
        window("dev-a", START + timedelta(minutes=15), {("l", "in", "cyclist"): 0}, observed=0.0, seq=2),
        window("dev-b", START + timedelta(hours=10), {("l", "in", "cyclist"): 5}, seq=1),
    ]
    aggregate = stored(windows).flow_aggregate(START, timedelta(hours=1), 24)
    q = aggregate.quality
    assert q.observed_fraction == pytest.approx(2 / 3)
    assert q.mean_fps == pytest.approx(10.0)  # the blind window does not drag the frame rate down
    # By 11:00, dev-a owes 44 windows; dev-b, installed at 10:00, four, not forty-four.
    assert flowstats.expected_from_first(aggregate.first_windows, START + timedelta(hours=11)) == 44 + 4


def test_line_totals_become_the_whole_line_series_only_beside_published_cells(
    stored: Callable[[list[FlowWindow]], HubSource],
) -> None:
    # A total beside a hidden cell (as the threshold rule before issue 13 sent it) would give that cell away
    # (8 - 6 = 2): it is left out. A total of cells all published is their sum and is used.
    base = window("dev-a", START, {("door", "in", "pedestrian"): 6, ("door", "out", "pedestrian"): None}, seq=1)
    beside_hidden = base.model_copy(update={"totals": [FlowTotal(line="door", count=8)]})
    complete = window("dev-a", START + timedelta(minutes=15), {("door", "in", "pedestrian"): 7}, seq=2)
    complete = complete.model_copy(update={"totals": [FlowTotal(line="door", count=7)]})
    aggregate = stored([beside_hidden, complete]).flow_aggregate(START, timedelta(hours=1), 24)
    day = flowstats.assemble(aggregate, START, timedelta(hours=1), 24, UTC, "%H")
    assert day.lines["door"].series[flowstats.ALL][0] == 7
    assert day.lines["door"].series[("in", "pedestrian")][0] == 13


def test_sums_keep_suppressed_cells_out_and_totals_beside_them_too(
    stored: Callable[[list[FlowWindow]], HubSource],
) -> None:
    plain = window("dev-a", START, {("door", "in", "pedestrian"): 6, ("door", "out", "cyclist"): None}, seq=1)
    with_total = window(
        "dev-a",
        START + timedelta(minutes=15),
        {("door", "in", "pedestrian"): 5, ("door", "out", "cyclist"): None},
        seq=2,
    ).model_copy(update={"totals": [FlowTotal(line="door", count=7)]})
    other = window("dev-b", START, {("gate", "in", "cyclist"): 3}, policy=PrivacyPolicy(kind=PolicyKind.NONE), seq=1)
    source = stored([plain, with_total, other])
    sums = source.flow_sums(START, START + timedelta(days=1))
    assert sums.cells == {("dev-a", "door", "in", "pedestrian"): 11, ("dev-b", "gate", "in", "cyclist"): 3}
    # dev-a: the first window sent no total (its published cells: 6), the second a total of 7 beside a hidden
    # cell, which would give it away (7 - 5 = 2): its published cells (5) count instead.
    assert sums.lines == {("dev-a", "door"): 11, ("dev-b", "gate"): 3}
    assert sums.device_total("dev-a") == 11
    assert sums.latest["dev-a"] == START + timedelta(minutes=15)
    tables = flowstats.line_tables(sums, "dev-a")
    assert [(t.line, t.cells, t.total) for t in tables] == [("door", [("in", "pedestrian", 11)], 11)]
    assert source.flow_sums(START, START + timedelta(days=1), "dev-b").lines == {("dev-b", "gate"): 3}


def test_dp_windows_and_their_day_correction_add_up_where_they_belong(
    stored: Callable[[list[FlowWindow]], HubSource], tmp_path: Path
) -> None:
    """What a dp device publishes (noisy counts, some negative, and the day's correction after midnight) goes
    through the ingest unchanged: hourly sums leave the correction out, the day's sum includes it, and only
    what pages show is clipped at zero."""
    sink = MemorySink()
    reporter = FlowReporter(sink, PrivacyConfig(), ["door"], tmp_path / "dev", now=START, rng=random.Random(3))
    for i in range(12):
        reporter.add_crossing("door", "in", "pedestrian", START + timedelta(minutes=20 * i))
    reporter.note_frames(3000, 0, 300.0, START + timedelta(minutes=5))
    reporter.tick(START + timedelta(hours=12))
    reporter.tick(START + timedelta(days=1, minutes=1))
    published = sink.of(Channel.FLOW)
    for seq, w in enumerate(published, start=1):
        w.seq, w.device, w.boot = seq, "dev-a", "b1"
    correction = next(w for w in published if w.window_seconds == 86_400)
    windows = [w for w in published if w.window_seconds == 900]
    assert len(windows) == 96 and any(c.count is not None and c.count < 0 for w in windows for c in w.cells)

    def line_total(ws: list[FlowWindow]) -> int:
        return sum(c.count or 0 for w in ws for c in w.cells)

    source = stored(published)
    hourly = source.flow_aggregate(START, timedelta(hours=1), 24)
    assert sum(c.count or 0 for c in hourly.cells) == line_total(windows)
    assert hourly.quality.windows == 96
    daily = source.flow_aggregate(START, timedelta(days=1), 1)
    assert sum(c.count or 0 for c in daily.cells) == line_total(windows) + line_total([correction])
    # The day's quality is unchanged by the correction window, which describes the day it covers.
    assert hourly.quality.observed_fraction == pytest.approx(300 / 86_400, rel=1e-3)
    assert daily.quality.observed_fraction == pytest.approx(300 / 86_400, abs=5e-5)  # 4 decimals on the wire
    shown = flowstats.assemble(hourly, START, timedelta(hours=1), 24, UTC, "%H")
    assert all(v is None or v >= 0 for s in shown.lines["door"].series.values() for v in s)

    db = Database(tmp_path / "hub.sqlite3")
    with db.write() as conn:
        while roll_up_batch(conn):
            pass
        sums = dict(
            conn.execute(
                "SELECT resolution, SUM(count) FROM flow_rollups WHERE direction != '*' AND object_class != '*'"
                " GROUP BY resolution"
            ).fetchall()
        )
    assert sums == {"hour": line_total(windows), "day": line_total(windows) + line_total([correction])}


def test_rolling_up_changes_nothing_the_charts_show(
    stored: Callable[[list[FlowWindow]], HubSource], tmp_path: Path
) -> None:
    """The charts read rolled-up hours from the roll-ups and the rest from the windows: the same sums, cells,
    suppressed cells and quality before, during and after a roll-up, and a late window still counts."""
    sink = MemorySink()
    reporter = FlowReporter(sink, PrivacyConfig(), ["door"], tmp_path / "dev", now=START, rng=random.Random(5))
    for i in range(30):
        reporter.add_crossing("door", "in", "pedestrian", START + timedelta(minutes=17 * i))
    reporter.note_frames(3000, 0, 300.0, START + timedelta(minutes=5))
    reporter.tick(START + timedelta(hours=12))
    reporter.tick(START + timedelta(days=1, minutes=1))
    published = sink.of(Channel.FLOW)  # dp windows and the day's correction (a day-long window)
    for seq, w in enumerate(published, start=1):
        w.seq, w.device, w.boot = seq, "dev-a", "b1"
    threshold = [
        window(
            "dev-b",
            START + timedelta(minutes=15 * i),
            {("gate", "in", "cyclist"): None if i % 3 == 0 else 5 + i % 4, ("gate", "out", "cyclist"): 6},
            observed=0.5 + (i % 2) / 2,
            seq=i + 1,
        ).model_copy(update={"totals": [FlowTotal(line="gate", count=11 + i % 4)] if i % 3 else []})
        for i in range(40)
    ]
    source = stored(published + threshold)
    db = source.app[DB_KEY]

    def charts() -> list[flowstats.FlowAggregate]:
        return [
            source.flow_aggregate(start, step, slots, device)
            for device in (None, "dev-a", "dev-b")
            for start, step, slots in ((START, timedelta(hours=1), 24), (START, timedelta(days=1), 2))
        ]

    def same(found: list[flowstats.FlowAggregate], expected: list[flowstats.FlowAggregate]) -> None:
        for got, want in zip(found, expected, strict=True):
            assert (got.cells, got.lines, got.first_windows) == (want.cells, want.lines, want.first_windows)
            g, w = got.quality, want.quality
            assert (g.windows, g.dropped_frames, g.policies) == (w.windows, w.dropped_frames, w.policies)
            assert (g.observed_seconds, g.window_seconds, g.fps_weighted) == pytest.approx(
                (w.observed_seconds, w.window_seconds, w.fps_weighted)
            )

    before = charts()
    assert before[0].cells and before[0].lines and before[0].quality.windows == 96 + 40
    with db.write() as conn:
        assert roll_up_batch(conn, 70) == 70  # part of them: the rest are read from the windows
    same(charts(), before)
    with db.write() as conn:
        while roll_up_batch(conn):
            pass
    same(charts(), before)
    late = window("dev-b", START + timedelta(hours=3, minutes=5), {("gate", "in", "cyclist"): 9}, seq=99)
    core = IngestCore(db.location, "cot", IngestConfig())
    core.process([(device_topic("cot", "street", "dev-b", Channel.FLOW), encode(late), START.timestamp())])
    core.close()
    after = source.flow_aggregate(START, timedelta(hours=1), 24, "dev-b")
    cell = {(c.slot, c.direction): c for c in after.cells if c.line == "gate"}
    was = {(c.slot, c.direction): c for c in before[4].cells if c.line == "gate"}
    assert cell[(3, "in")].count == (was[(3, "in")].count or 0) + 9
    assert after.quality.windows == before[4].quality.windows + 1
