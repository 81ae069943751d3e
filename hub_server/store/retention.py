"""SQL of retention: add flow windows to the hourly and daily roll-ups once, delete what has aged out.

Reads the ingest's ``flow_windows``/``flow_cells``/``events``/``health_samples`` (migration 0001) and writes
``flow_rollups``/``flow_rolled`` (0152) and ``flow_quality_rollups`` (0157). See the migration for what a suppressed part does to a total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hub_protocol.flows import FlowTotal, FlowWindow
from hub_server.store.engine import Connection, OperationalError
from hub_server.store.timestamps import from_epoch, to_epoch

HOUR, DAY = 3600, 86_400


def _missing_table(exc: OperationalError) -> bool:
    return "no such table" in str(exc)


def roll_up_batch(conn: Connection, limit: int = 2000) -> int:
    """Add up to ``limit`` windows not yet rolled up; returns how many. Run inside one write transaction."""
    try:
        windows = conn.execute(
            """SELECT w.device, w.boot, w.seq, w.site, w.window_start, w.window_seconds, w.observed_fraction, w.policy_kind,
                      w.policy, w.mean_fps, w.dropped_frames
               FROM flow_windows w WHERE NOT EXISTS (
                   SELECT 1 FROM flow_rolled r WHERE r.device = w.device AND r.boot = w.boot AND r.seq = w.seq)
               ORDER BY w.window_start LIMIT ?""",
            (limit,),
        ).fetchall()
    except OperationalError as exc:
        if _missing_table(exc):
            return 0
        raise
    for w in windows:
        observed = w["window_seconds"] * w["observed_fraction"]
        parts = _parts(conn, w["site"], w["device"], w["boot"], w["seq"])
        for resolution, size in (("hour", HOUR), ("day", DAY)):
            if resolution == "hour" and w["window_seconds"] >= DAY:
                continue  # a day-long window (e.g. a dp day correction) belongs to no single hour
            # A window belongs to the bucket its start falls in (windows are clock-aligned and at most a day).
            bucket = w["window_start"] - (w["window_start"] % size)
            conn.executemany(
                """INSERT INTO flow_rollups (resolution, bucket_start, device, site, line, direction, object_class,
                       policy_kind, count, cells, suppressed_cells, observed_seconds)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (resolution, device, line, direction, object_class, policy_kind, bucket_start)
                   DO UPDATE SET count = flow_rollups.count + excluded.count, cells = flow_rollups.cells + 1,
                       suppressed_cells = flow_rollups.suppressed_cells + excluded.suppressed_cells,
                       observed_seconds = flow_rollups.observed_seconds + excluded.observed_seconds, site = excluded.site""",
                [
                    (
                        resolution,
                        bucket,
                        w["device"],
                        site,
                        line,
                        direction,
                        object_class,
                        w["policy_kind"],
                        count or 0,
                        int(count is None),
                        observed,
                    )
                    for site, line, direction, object_class, count in parts
                ],
            )
        if w["window_seconds"] < DAY:
            conn.execute(
                """INSERT INTO flow_quality_rollups (bucket_start, device, policy, windows, observed_seconds,
                       window_seconds, fps_weighted, dropped_frames, first_start, min_window_seconds)
                   VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (bucket_start, device, policy) DO UPDATE SET windows = flow_quality_rollups.windows + 1,
                       observed_seconds = flow_quality_rollups.observed_seconds + excluded.observed_seconds,
                       window_seconds = flow_quality_rollups.window_seconds + excluded.window_seconds,
                       fps_weighted = flow_quality_rollups.fps_weighted + excluded.fps_weighted,
                       dropped_frames = flow_quality_rollups.dropped_frames + excluded.dropped_frames,
                       first_start = MIN(flow_quality_rollups.first_start, excluded.first_start),
                       min_window_seconds = MIN(flow_quality_rollups.min_window_seconds, excluded.min_window_seconds)""",
                (
                    w["window_start"] - (w["window_start"] % HOUR),
                    w["device"],
                    w["policy"],
                    observed,
                    w["window_seconds"],
                    w["mean_fps"] * observed,
                    w["dropped_frames"],
                    w["window_start"],
                    w["window_seconds"],
                ),
            )
        conn.execute(
            "INSERT INTO flow_rolled (device, boot, seq, window_start) VALUES (?, ?, ?, ?)",
            (w["device"], w["boot"], w["seq"], w["window_start"]),
        )
    return len(windows)


ALL = "*"
"""direction / object_class of a margin row: summed over both directions / all classes."""


def public_margin(window: FlowWindow, total: FlowTotal) -> int | None:
    """A margin the device sent, as the hub uses it: only when every cell it sums was published (it is then
    their sum), else suppressed. A device's threshold rule before issue 13 sent totals beside hidden cells;
    added up and published, they pinned hidden counts down (tests/hub/test_privacy_margins.py)."""
    parts = [
        c.count
        for c in window.cells
        if c.line == total.line
        and total.direction in (None, c.direction)
        and total.object_class in (None, c.object_class)
    ]
    return total.count if parts and None not in parts else None


def _parts(
    conn: Connection, site: str, device: str, boot: str, seq: int
) -> list[tuple[str, str, str, str, int | None]]:
    """(site, line, direction, class, count) of a window's cells and published margins (``*`` = all)."""
    payload = conn.execute(
        "SELECT payload FROM events WHERE device = ? AND boot = ? AND seq = ?", (device, boot, seq)
    ).fetchone()
    if payload is not None:
        try:
            window = FlowWindow.model_validate_json(payload[0])
        except ValueError:
            window = None
        if window is not None:
            found: list[tuple[str, str, str, str, int | None]] = [
                (site, c.line, c.direction.value, c.object_class.value, c.count) for c in window.cells
            ]
            found += [
                (
                    site,
                    t.line,
                    ALL if t.direction is None else t.direction.value,
                    ALL if t.object_class is None else t.object_class.value,
                    public_margin(window, t),
                )
                for t in window.totals
            ]
            return found
    # Without the stored payload (an older ingest), the cells alone.
    rows = conn.execute(
        "SELECT site, line, direction, object_class, count FROM flow_cells WHERE device = ? AND boot = ? AND seq = ?",
        (device, boot, seq),
    ).fetchall()
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


@dataclass(frozen=True, slots=True)
class Deleted:
    windows: int
    cells: int
    events: int
    health_samples: int


def delete_raw_flows(conn: Connection, before: datetime) -> Deleted:
    """Delete flow windows (cells, stored event payloads) that started before ``before`` and are rolled up."""
    cut = to_epoch(before)
    try:
        doomed = conn.execute(
            """SELECT w.device, w.boot, w.seq FROM flow_windows w JOIN flow_rolled r
               ON r.device = w.device AND r.boot = w.boot AND r.seq = w.seq WHERE w.window_start < ?""",
            (cut,),
        ).fetchall()
    except OperationalError as exc:
        if _missing_table(exc):
            return Deleted(0, 0, 0, 0)
        raise
    keys = [(r[0], r[1], r[2]) for r in doomed]
    cells = events = 0
    for key in keys:
        cells += conn.execute(
            "SELECT count(*) FROM flow_cell_rows WHERE device = ? AND boot = ? AND seq = ?", key
        ).fetchone()[0]
        # The payload copy goes too; only acknowledged ones (the device will never send them again).
        events += conn.execute(
            """DELETE FROM events WHERE device = ? AND boot = ? AND seq = ? AND channel = 'flow' AND seq <= COALESCE(
                   (SELECT upto FROM boot_watermarks b WHERE b.device = events.device AND b.boot = events.boot), 0)""",
            key,
        ).rowcount
        conn.execute("DELETE FROM flow_windows WHERE device = ? AND boot = ? AND seq = ?", key)  # its rows too
    conn.execute("DELETE FROM flow_rolled WHERE window_start < ?", (cut,))
    samples = conn.execute("DELETE FROM health_samples WHERE at < ?", (cut,)).rowcount
    return Deleted(len(keys), cells, events, samples)


def delete_hourly(conn: Connection, before: datetime) -> int:
    conn.execute("DELETE FROM flow_quality_rollups WHERE bucket_start < ?", (to_epoch(before),))
    return conn.execute(
        "DELETE FROM flow_rollups WHERE resolution = 'hour' AND bucket_start < ?", (to_epoch(before),)
    ).rowcount


@dataclass(frozen=True, slots=True)
class RollupRow:
    resolution: str
    bucket_start: datetime
    device: str
    site: str
    line: str
    direction: str
    object_class: str
    policy_kind: str
    count: int
    cells: int
    suppressed_cells: int
    observed_seconds: float

    @property
    def lower_bound(self) -> bool:
        """True when some part was suppressed: the true total is at least ``count``."""
        return self.suppressed_cells > 0


def rollups(
    conn: Connection,
    resolution: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    device: str | None = None,
    site: str | None = None,
    line: str | None = None,
    direction: str | None = None,
    object_class: str | None = None,
    protected_only: bool = False,
    limit: int = 10_000,
) -> list[RollupRow]:
    """Totals in bucket order; ``protected_only`` leaves out windows published without a protection policy."""
    if resolution not in ("hour", "day"):
        raise ValueError("resolution is hour or day")
    where, params = ["resolution = ?"], [resolution]
    filters = (("device", device), ("site", site), ("line", line), ("direction", direction))
    for column, value in (*filters, ("object_class", object_class)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if protected_only:
        where.append("policy_kind != 'none'")
    if since is not None:
        where.append("bucket_start >= ?")
        params.append(str(to_epoch(since)))
    if until is not None:
        where.append("bucket_start < ?")
        params.append(str(to_epoch(until)))
    rows = conn.execute(
        f"SELECT * FROM flow_rollups WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments only
        "ORDER BY bucket_start, device, line, direction, object_class LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [
        RollupRow(
            resolution=r["resolution"],
            bucket_start=from_epoch(r["bucket_start"]),
            device=r["device"],
            site=r["site"],
            line=r["line"],
            direction=r["direction"],
            object_class=r["object_class"],
            policy_kind=r["policy_kind"],
            count=r["count"],
            cells=r["cells"],
            suppressed_cells=r["suppressed_cells"],
            observed_seconds=r["observed_seconds"],
        )
        for r in rows
    ]


def record_run(conn: Connection, started: datetime, finished: datetime, report: str) -> None:
    conn.execute(
        "INSERT INTO retention_runs (started_at, finished_at, report) VALUES (?, ?, ?)",
        (to_epoch(started), to_epoch(finished), report),
    )


def last_run(conn: Connection) -> tuple[datetime, str] | None:
    row = conn.execute("SELECT started_at, report FROM retention_runs ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else (from_epoch(row[0]), row[1])
