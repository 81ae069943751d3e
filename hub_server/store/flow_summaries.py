"""Sums of stored flow windows for the pages: per line, direction and class, per time slot, with quality.

SQLite does the summing (a week of one-minute windows stays cheap). Suppressed cells are never filled in:
a sum over only suppressed cells is NULL. A line total a device sent is used only when every cell of the line
in that window was published (it is then their sum): a device's rule before issue 13 sent totals beside
hidden cells, and shown on the pages they pinned hidden counts down (tests/hub/test_privacy_margins.py).
Plain values out; callers shape them for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hub_server.store.engine import Connection, Row
from hub_server.store.retention import ALL, HOUR
from hub_server.store.timestamps import from_epoch, to_epoch

_CELLS = "flow_windows w JOIN flow_cell_rows c ON c.device = w.device AND c.boot = w.boot AND c.seq = w.seq"
_TOTALS = "flow_windows w JOIN flow_total_rows t ON t.device = w.device AND t.boot = w.boot AND t.seq = w.seq"
_HIDDEN = "SUM(CASE WHEN c.count IS NULL THEN 1 ELSE 0 END)"


def _span(since: datetime, until: datetime, device: str | None) -> tuple[str, list[Any]]:
    where = "w.window_start >= ? AND w.window_start < ?"
    params: list[Any] = [to_epoch(since), to_epoch(until)]
    if device is not None:
        where += " AND w.device = ?"
        params.append(device)
    return where, params


@dataclass(frozen=True, slots=True)
class SpanSums:
    cells: dict[tuple[str, str, str, str], int]
    """(device, line, direction, object_class) -> sum of published counts (all-suppressed cells left out)."""
    lines: dict[tuple[str, str], int]
    """(device, line) -> sum over windows of the line's published cells (its published total where all of
    them were published, which is their sum)."""
    latest: dict[str, datetime]
    """device -> start of its newest window in the span."""


def span_sums(
    conn: Connection,
    since: datetime,
    until: datetime,
    device: str | None = None,
    *,
    protected_only: bool = False,
) -> SpanSums:
    """``protected_only`` leaves out windows published without protection (policy ``none``), for public pages."""
    where, params = _span(since, until, device)
    if protected_only:
        where += " AND w.policy_kind != 'none'"
    cells = {
        (r[0], r[1], r[2], r[3]): int(r[4])
        for r in conn.execute(
            f"SELECT w.device, c.line, c.direction, c.object_class, SUM(c.count) FROM {_CELLS}"  # noqa: S608
            f" WHERE {where} GROUP BY w.device, c.line, c.direction, c.object_class HAVING SUM(c.count) IS NOT NULL",
            params,
        )
    }
    # Per window and line: its published total where none of its cells is hidden, else its published cells;
    # then summed per line.
    lines = {
        (r[0], r[1]): int(r[2])
        for r in conn.execute(
            "SELECT device, line, SUM(COALESCE(CASE WHEN hidden = 0 THEN total END, cell_sum, 0)) FROM ("  # noqa: S608
            f" SELECT w.device AS device, c.line AS line, SUM(c.count) AS cell_sum, {_HIDDEN} AS hidden,"
            " (SELECT t.count FROM flow_total_rows t WHERE t.device = w.device AND t.boot = w.boot"
            "  AND t.seq = w.seq AND t.line = c.line AND t.direction = '*' AND t.object_class = '*') AS total"
            f" FROM {_CELLS} WHERE {where} GROUP BY w.device, w.boot, w.seq, c.line"
            ") per_window GROUP BY device, line",
            params,
        )
    }
    latest = {
        r[0]: from_epoch(r[1])
        for r in conn.execute(
            f"SELECT w.device, MAX(w.window_start) FROM flow_windows w WHERE {where} GROUP BY w.device",  # noqa: S608
            params,
        )
    }
    return SpanSums(cells, lines, latest)


@dataclass(frozen=True, slots=True)
class SlotSums:
    cells: list[tuple[int, str, str, str, int | None, int, int]]
    """(slot, line, direction, object_class, sum or None when all suppressed, suppressed cells, cells)."""
    lines: list[tuple[int, str, int]]
    """(slot, line, sum of the line totals of windows that published all the line's cells)."""
    windows: int
    observed_seconds: float
    window_seconds: float
    fps_weighted: float
    dropped_frames: int
    policies: list[str]
    """Each distinct privacy policy of the span's windows, as its stored JSON."""
    first_windows: dict[str, tuple[datetime, int]]
    """device -> (first window start in the span, window length)."""


_NOT_ROLLED = "NOT EXISTS (SELECT 1 FROM flow_rolled r WHERE r.device = w.device AND r.boot = w.boot AND r.seq = w.seq)"
_CellKey = tuple[int, str, str, str]


@dataclass
class _Quality:
    windows: int = 0
    observed_seconds: float = 0.0
    window_seconds: float = 0.0
    fps_weighted: float = 0.0
    dropped_frames: int = 0
    policies: set[str] = field(default_factory=set)
    first: dict[str, tuple[float, int]] = field(default_factory=dict)

    def add(self, row: Row | tuple[Any, ...]) -> None:
        """(device, policy, windows, observed s, window s, fps weighted, dropped, first start, shortest window)."""
        device, policy, windows, observed, seconds, fps, dropped, first, shortest = row
        self.policies.add(policy)
        self.windows += int(windows)
        self.observed_seconds += float(observed or 0)
        self.window_seconds += float(seconds or 0)
        self.fps_weighted += float(fps or 0)
        self.dropped_frames += int(dropped or 0)
        known = self.first.get(device)
        self.first[device] = (
            (float(first), int(shortest)) if known is None else (min(known[0], first), min(known[1], shortest))
        )


def slot_sums(conn: Connection, start: datetime, step: timedelta, slots: int, device: str | None = None) -> SlotSums:
    """Sums per slot: from the hourly roll-ups for windows already rolled up, from the stored windows for the
    rest (those of the last few minutes, day-long ones), so a week costs hundreds of roll-up rows instead of
    every cell of every window. Slots that are not whole UTC hours (a zone half an hour off) read the windows."""
    until = start + step * slots
    span_where, span_params = _span(start, until, device)
    if step < timedelta(days=1):
        span_where += " AND w.window_seconds < 86400"  # a day-long window (a dp day correction) fits no shorter slot
    slot_params = [to_epoch(start), step.total_seconds()]
    cells: dict[_CellKey, list[int]] = {}  # -> [published sum, suppressed cells, cells]
    lines: dict[tuple[int, str], int] = {}
    quality = _Quality()
    began = not conn.in_transaction
    if began:
        conn.execute("BEGIN")  # one snapshot: a roll-up between two reads would count a window twice or never
    try:
        if to_epoch(start) % HOUR == 0 and step.total_seconds() % HOUR == 0:
            _rollup_slots(conn, start, step, slots, device, cells, lines, quality)
            # Roll-ups hold windows by the hour their start falls in; day-long ones are in no hour.
            for since, before in _unrolled_hours(conn, start, until, device):
                where, params = _span(since, before, device)
                where += f" AND w.window_seconds < 86400 AND {_NOT_ROLLED}"
                _raw_slots(conn, where, params, slot_params, cells, lines, quality)
            if step >= timedelta(days=1):
                _raw_slots(
                    conn, span_where + " AND w.window_seconds >= 86400", span_params, slot_params, cells, lines, quality
                )
        else:
            _raw_slots(conn, span_where, span_params, slot_params, cells, lines, quality)
    finally:
        if began:
            conn.execute("COMMIT")
    return SlotSums(
        cells=[
            (slot, line, direction, cls, None if suppressed == count else published, suppressed, count)
            for (slot, line, direction, cls), (published, suppressed, count) in sorted(cells.items())
        ],
        lines=[(slot, line, total) for (slot, line), total in sorted(lines.items())],
        windows=quality.windows,
        observed_seconds=quality.observed_seconds,
        window_seconds=quality.window_seconds,
        fps_weighted=quality.fps_weighted,
        dropped_frames=quality.dropped_frames,
        policies=sorted(quality.policies),
        first_windows={d: (from_epoch(f), n) for d, (f, n) in quality.first.items()},
    )


def _unrolled_hours(
    conn: Connection, since: datetime, until: datetime, device: str | None
) -> list[tuple[datetime, datetime]]:
    """The spans of whole hours (``since`` and ``until`` are on the hour) holding a window not rolled up yet.

    Found by counting, not window by window: the windows rolled up are a subset of those stored (retention
    deletes both together), so a span with as many rolled up as stored has none left. A count over an index
    range is cheap; halving the spans that differ finds the hours, the newest hour looked at first (windows
    arrive there between two roll-ups; a device back from an outage brings older ones)."""
    where = "window_start >= ? AND window_start < ?" + (" AND device = ?" if device is not None else "")
    extra = [device] if device is not None else []

    def differs(a: int, b: int) -> bool:
        stored, rolled = (
            conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", [a, b, *extra]).fetchone()[0]  # noqa: S608
            for table in ("flow_windows", "flow_rolled")
        )
        return bool(stored != rolled)

    found: list[tuple[int, int]] = []

    def search(a: int, b: int) -> None:
        if a >= b or not differs(a, b):
            return
        if b - a <= HOUR:
            if found and found[-1][1] == a:
                found[-1] = (found[-1][0], b)
            else:
                found.append((a, b))
            return
        middle = a + (b - a) // HOUR // 2 * HOUR
        search(a, middle)
        search(middle, b)

    first, last = int(to_epoch(since)), int(to_epoch(until))
    newest = max(first, last - HOUR)
    search(first, newest)
    search(newest, last)
    return [(from_epoch(a), from_epoch(b)) for a, b in found]


def _add_cell(cells: dict[_CellKey, list[int]], key: _CellKey, published: int, suppressed: int, count: int) -> None:
    found = cells.setdefault(key, [0, 0, 0])
    found[0] += published
    found[1] += suppressed
    found[2] += count


def _rollup_slots(
    conn: Connection,
    start: datetime,
    step: timedelta,
    slots: int,
    device: str | None,
    cells: dict[_CellKey, list[int]],
    lines: dict[tuple[int, str], int],
    quality: _Quality,
) -> None:
    where = "bucket_start >= ? AND bucket_start < ?"
    params: list[Any] = [to_epoch(start), to_epoch(start + step * slots)]
    if device is not None:
        where += " AND device = ?"
        params.append(device)
    # A roll-up row's cells counts windows, suppressed_cells those of them that withheld the count.
    for r in conn.execute(
        "SELECT CAST((bucket_start - ?) / ? AS INTEGER) AS slot, line, direction, object_class,"  # noqa: S608
        " SUM(count), SUM(suppressed_cells), SUM(cells) FROM flow_rollups"
        f" WHERE resolution = 'hour' AND {where} GROUP BY slot, line, direction, object_class",
        [to_epoch(start), step.total_seconds(), *params],
    ):
        slot, line, direction, cls, published, suppressed, count = r
        if direction == ALL and cls == ALL:
            if count > suppressed:  # a line total someone published (a suppressed one adds nothing)
                lines[(slot, line)] = lines.get((slot, line), 0) + int(published)
        elif direction != ALL and cls != ALL:
            _add_cell(cells, (int(slot), line, direction, cls), int(published), int(suppressed), int(count))
    for row in conn.execute(
        "SELECT device, policy, SUM(windows), SUM(observed_seconds), SUM(window_seconds), SUM(fps_weighted),"  # noqa: S608
        f" SUM(dropped_frames), MIN(first_start), MIN(min_window_seconds) FROM flow_quality_rollups WHERE {where}"
        " GROUP BY device, policy",
        params,
    ):
        quality.add(row)


def _raw_slots(
    conn: Connection,
    where: str,
    params: list[Any],
    slot_params: list[Any],
    cells: dict[_CellKey, list[int]],
    lines: dict[tuple[int, str], int],
    quality: _Quality,
) -> None:
    slot = conn.truncate("(w.window_start - ?) / ?")
    for r in conn.execute(
        f"SELECT {slot} AS slot, c.line, c.direction, c.object_class, SUM(c.count), {_HIDDEN}, COUNT(*)"  # noqa: S608
        f" FROM {_CELLS} WHERE {where} GROUP BY 1, 2, 3, 4",
        [*slot_params, *params],
    ):
        _add_cell(cells, (int(r[0]), r[1], r[2], r[3]), int(r[4] or 0), int(r[5]), int(r[6]))
    for r in conn.execute(
        f"SELECT {slot} AS slot, t.line, SUM(t.count) FROM {_TOTALS} WHERE {where}"  # noqa: S608
        " AND t.direction = '*' AND t.object_class = '*' AND t.count IS NOT NULL"
        # As retention.public_margin: a total counts only where the line has cells and all were published (a
        # total an old device sent beside a hidden cell would give that cell away).
        " AND EXISTS (SELECT 1 FROM flow_cell_rows h WHERE h.device = t.device AND h.boot = t.boot"
        " AND h.seq = t.seq AND h.line = t.line) AND NOT EXISTS (SELECT 1 FROM flow_cell_rows h"
        " WHERE h.device = t.device AND h.boot = t.boot AND h.seq = t.seq AND h.line = t.line AND h.count IS NULL)"
        " GROUP BY 1, 2",
        [*slot_params, *params],
    ):
        key = (int(r[0]), r[1])
        lines[key] = lines.get(key, 0) + int(r[2])
    for row in conn.execute(
        "SELECT w.device, w.policy, COUNT(*), SUM(w.window_seconds * w.observed_fraction), SUM(w.window_seconds),"  # noqa: S608
        " SUM(w.mean_fps * w.window_seconds * w.observed_fraction), SUM(w.dropped_frames), MIN(w.window_start),"
        f" MIN(w.window_seconds) FROM flow_windows w WHERE {where} GROUP BY w.device, w.policy",
        params,
    ):
        quality.add(row)
