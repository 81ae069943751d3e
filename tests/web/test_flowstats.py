"""Flow windows into chart buckets: sums per slot, suppressed cells kept apart, quality weighted by time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from hub_protocol.codec import encode
from hub_protocol.flows import FlowCell, FlowTotal, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.topics import Channel, device_topic
from hub_server.appkeys import DB_KEY
from hub_server.config import IngestConfig
from hub_server.ingest import IngestCore
from hub_server.store.db import Database
from hub_server.web import flowstats
from hub_server.web.model import StoredWindow
from hub_server.web.sources import HubSource

START = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)


def window(
    device: str,
    start: datetime,
    counts: dict[tuple[str, str, str], int | None],
    observed: float = 1.0,
    policy: PrivacyPolicy | None = None,
    seq: int = 1,
) -> StoredWindow:
    cells = [FlowCell(line=line, direction=d, object_class=c, count=n) for (line, d, c), n in counts.items()]  # type: ignore[arg-type]
    return StoredWindow(
        device,
        "street",
        FlowWindow(
            device=device,
            boot="b1",
            seq=seq,
            window_start=start,
            window_seconds=900,
            cells=cells,
            quality=WindowQuality(observed_fraction=observed, mean_fps=10.0 if observed else 0.0, dropped_frames=3),
            policy=policy or PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=5),
        ),
    )


@pytest.fixture
def stored(tmp_path: Path) -> Callable[[list[StoredWindow]], HubSource]:
    """Windows stored by the real ingest writer into a real database; the pages' source reading them back."""

    def store(windows: list[StoredWindow]) -> HubSource:
        db = Database(tmp_path / "hub.sqlite3")
        core = IngestCore(db.path, "cot", IngestConfig())
        batch = [
            (device_topic("cot", "street", w.device, Channel.FLOW), encode(w.window), START.timestamp())
            for w in windows
        ]
        core.process(batch)
        core.close()
        app = web.Application()
        app[DB_KEY] = db
        return HubSource(app)

    return store


def test_windows_sum_into_hour_slots_and_suppressed_cells_are_counted_apart(
    stored: Callable[[list[StoredWindow]], HubSource],
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


def test_quality_is_weighted_by_observed_time(stored: Callable[[list[StoredWindow]], HubSource]) -> None:
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


def test_published_line_totals_become_the_whole_line_series(stored: Callable[[list[StoredWindow]], HubSource]) -> None:
    base = window("dev-a", START, {("door", "in", "pedestrian"): 6, ("door", "out", "pedestrian"): None}, seq=1)
    with_total = StoredWindow(
        "dev-a", "street", base.window.model_copy(update={"totals": [FlowTotal(line="door", count=8)]})
    )
    aggregate = stored([with_total]).flow_aggregate(START, timedelta(hours=1), 24)
    day = flowstats.assemble(aggregate, START, timedelta(hours=1), 24, UTC, "%H")
    assert day.lines["door"].series[flowstats.ALL][0] == 8
    assert day.lines["door"].series[("in", "pedestrian")][0] == 6


def test_totals_skip_suppressed_cells() -> None:
    windows = [
        window("dev-a", START, {("door", "in", "pedestrian"): 5, ("door", "out", "cyclist"): None}),
        window("dev-b", START, {("door", "in", "pedestrian"): 3}, policy=PrivacyPolicy(kind=PolicyKind.NONE)),
    ]
    assert flowstats.totals(windows) == {("door", "in", "pedestrian"): 8}


def test_a_published_line_total_beats_the_sum_of_its_published_cells() -> None:
    stored = window("dev-a", START, {("door", "in", "pedestrian"): 6, ("door", "out", "pedestrian"): None})
    assert flowstats.line_totals(stored.window) == {"door": 6}  # no total sent: what was published
    with_total = StoredWindow(
        "dev-a", "street", stored.window.model_copy(update={"totals": [FlowTotal(line="door", count=8)]})
    )
    assert flowstats.line_totals(with_total.window) == {"door": 8}  # the hidden 2 are in the total
    assert flowstats.device_totals([stored, with_total]) == {"dev-a": 14}


def test_line_tables_group_cells_under_their_line_total() -> None:
    a = window("dev-a", START, {("b-line", "in", "pedestrian"): 5, ("a-line", "out", "cyclist"): None})
    b = StoredWindow("dev-a", "street", a.window.model_copy(update={"totals": [FlowTotal(line="a-line", count=3)]}))
    tables = flowstats.line_tables([a, b])
    assert [t.line for t in tables] == ["a-line", "b-line"]
    assert tables[0].cells == [] and tables[0].total == 3  # only the published total tells about a-line
    assert tables[1].cells == [("in", "pedestrian", 10)] and tables[1].total == 10
