"""The pages' "today" is the local day (Europe/Amsterdam), not the UTC day: the figures and the browser tests'
history must hold at every time of day, above all in the hour after local midnight (23:00-00:00 UTC in winter),
when the UTC date and the local date differ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from hub_protocol.codec import encode
from hub_protocol.flows import PolicyKind, PrivacyPolicy
from hub_protocol.topics import Channel, device_topic
from hub_server.appkeys import DB_KEY
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store.db import Database
from hub_server.web import flowstats
from hub_server.web.site import local_zone
from hub_server.web.sources import HubSource
from tests.web.harness import hourly_history
from tests.web.test_flowstats import window

ZONE = local_zone()
WINTER = datetime(2026, 12, 4, tzinfo=UTC)  # Amsterdam is UTC+1
SUMMER = datetime(2026, 7, 3, tzinfo=UTC)  # UTC+2


def every_quarter_hour(day: datetime) -> list[datetime]:
    return [day + timedelta(minutes=15 * i + 7) for i in range(96)]


@pytest.mark.skipif(ZONE.utcoffset(WINTER) == timedelta(0), reason="no tzdata: the pages fall back to UTC")
@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        (datetime(2026, 12, 4, 22, 30, tzinfo=UTC), datetime(2026, 12, 3, 23, tzinfo=UTC)),
        (datetime(2026, 12, 4, 23, 30, tzinfo=UTC), datetime(2026, 12, 4, 23, tzinfo=UTC)),
        (datetime(2026, 12, 5, 0, 30, tzinfo=UTC), datetime(2026, 12, 4, 23, tzinfo=UTC)),
        (datetime(2026, 7, 3, 22, 30, tzinfo=UTC), datetime(2026, 7, 3, 22, tzinfo=UTC)),
    ],
)
def test_today_begins_at_local_midnight(now: datetime, midnight: datetime) -> None:
    assert flowstats.today_start(now, ZONE) == midnight


@pytest.mark.parametrize("now", every_quarter_hour(WINTER) + every_quarter_hour(SUMMER), ids=lambda t: t.isoformat())
def test_the_browser_tests_history_reaches_into_the_local_day(now: datetime) -> None:
    starts = hourly_history(now)
    today = flowstats.today_start(now, ZONE)
    assert any(today <= s < now for s in starts), f"no window of the local day at {now:%H:%M} UTC"  # as pages sum
    assert max(starts) <= now  # nothing the ingest would refuse as from the future
    days = {s.astimezone(ZONE).date() for s in starts}
    local_today = now.astimezone(ZONE).date()
    assert all(local_today - timedelta(days=n) in days for n in range(7))  # a bar on each day of the week chart


@pytest.mark.parametrize(
    "now",
    [datetime(2026, 12, 4, 23, 30, 20, tzinfo=UTC), datetime(2026, 12, 5, 0, 30, 20, tzinfo=UTC)],
    ids=["23:30Z", "00:30Z"],
)
def test_pages_show_the_local_day_of_the_history(tmp_path: Path, now: datetime) -> None:
    """The harness's history through the real ingest and store, read back as the fleet, device and flows pages
    do with the clock at ``now``: the local day has counts, line tables and suppressed cells to report."""
    policy = PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=3)
    counts: dict[tuple[str, str, str], int | None] = {("door", "in", "pedestrian"): 7, ("door", "in", "cyclist"): None}
    windows = [window("cam", s, counts, policy=policy, seq=n) for n, s in enumerate(hourly_history(now), 1)]
    db = Database(tmp_path / "hub.sqlite3")
    core = IngestCore(db.location, "cot", IngestConfig())
    core.process([(device_topic("cot", "street", "cam", Channel.FLOW), encode(w), now.timestamp()) for w in windows])
    core.close()
    app = web.Application()
    app[DB_KEY] = db
    source = HubSource(app)
    start = flowstats.today_start(now, ZONE)
    sums = source.flow_sums(start, now, "cam")
    assert sums.device_total("cam") > 0  # the fleet page's "today"
    assert [t.line for t in flowstats.line_tables(sums, "cam")] == ["door"]  # the device page's table
    day = source.flow_aggregate(start, timedelta(hours=1), 24, "cam")  # the flows page's "This day"
    assert day.quality.windows >= 1
    assert flowstats.assemble(day, start, timedelta(hours=1), 24, ZONE, "%H").quality.suppressed_cells >= 1
