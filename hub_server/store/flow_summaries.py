"""Sums of stored flow windows for the pages: per line, direction and class, per time slot, with quality.

SQLite does the summing (a week of one-minute windows stays cheap). Suppressed cells are never filled in:
a sum over only suppressed cells is NULL. A line total a device sent is used only when every cell of the line
in that window was published (it is then their sum): a device's rule before issue 13 sent totals beside
hidden cells, and shown on the pages they pinned hidden counts down (tests/hub/test_privacy_margins.py).
Plain values out; callers shape them for display.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_JOINED = "flow_windows w JOIN events e ON e.device = w.device AND e.boot = w.boot AND e.seq = w.seq"


def _span(since: datetime, until: datetime, device: str | None) -> tuple[str, list[Any]]:
    where = "w.window_start >= ? AND w.window_start < ?"
    params: list[Any] = [since.timestamp(), until.timestamp()]
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
    conn: sqlite3.Connection,
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
            "SELECT w.device, json_extract(c.value, '$.line') AS line,"  # noqa: S608 - fixed fragments
            " json_extract(c.value, '$.direction') AS direction, json_extract(c.value, '$.object_class') AS cls,"
            f" SUM(json_extract(c.value, '$.count')) FROM {_JOINED}, json_each(e.payload, '$.cells') c"
            f" WHERE {where} GROUP BY w.device, line, direction, cls"
            " HAVING SUM(json_extract(c.value, '$.count')) IS NOT NULL",
            params,
        )
    }
    # Per window and line: its published total where none of its cells is hidden, else its published cells;
    # then summed per line.
    lines = {
        (r[0], r[1]): int(r[2])
        for r in conn.execute(
            "SELECT device, line, SUM(COALESCE(CASE WHEN hidden = 0 THEN total END, cell_sum, 0)) FROM ("  # noqa: S608
            " SELECT w.device AS device, json_extract(c.value, '$.line') AS line,"
            " SUM(json_extract(c.value, '$.count')) AS cell_sum,"
            " SUM(json_extract(c.value, '$.count') IS NULL) AS hidden,"
            " (SELECT json_extract(t.value, '$.count') FROM json_each(e.payload, '$.totals') t"
            "  WHERE json_extract(t.value, '$.line') = json_extract(c.value, '$.line')"
            "  AND json_extract(t.value, '$.direction') IS NULL"
            "  AND json_extract(t.value, '$.object_class') IS NULL) AS total"
            f" FROM {_JOINED}, json_each(e.payload, '$.cells') c WHERE {where}"
            " GROUP BY w.device, w.boot, w.seq, line"
            ") GROUP BY device, line",
            params,
        )
    }
    latest = {
        r[0]: datetime.fromtimestamp(r[1], UTC)
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


def slot_sums(
    conn: sqlite3.Connection, start: datetime, step: timedelta, slots: int, device: str | None = None
) -> SlotSums:
    where, params = _span(start, start + step * slots, device)
    if step < timedelta(days=1):
        where += " AND w.window_seconds < 86400"  # a day-long window (a dp day correction) fits no shorter slot
    slot = "CAST((w.window_start - ?) / ? AS INTEGER)"
    slot_params = [start.timestamp(), step.total_seconds()]
    cells = [
        (int(r[0]), r[1], r[2], r[3], None if r[4] is None else int(r[4]), int(r[5]), int(r[6]))
        for r in conn.execute(
            f"SELECT {slot} AS slot, json_extract(c.value, '$.line') AS line,"  # noqa: S608 - fixed fragments
            " json_extract(c.value, '$.direction') AS direction, json_extract(c.value, '$.object_class') AS cls,"
            " SUM(json_extract(c.value, '$.count')),"
            " SUM(json_extract(c.value, '$.count') IS NULL), COUNT(*)"
            f" FROM {_JOINED}, json_each(e.payload, '$.cells') c WHERE {where}"
            " GROUP BY slot, line, direction, cls",
            [*slot_params, *params],
        )
    ]
    lines = [
        (int(r[0]), r[1], int(r[2]))
        for r in conn.execute(
            f"SELECT {slot} AS slot, json_extract(t.value, '$.line') AS line,"  # noqa: S608 - fixed fragments
            " SUM(json_extract(t.value, '$.count'))"
            f" FROM {_JOINED}, json_each(e.payload, '$.totals') t WHERE {where}"
            " AND json_extract(t.value, '$.direction') IS NULL AND json_extract(t.value, '$.object_class') IS NULL"
            " AND json_extract(t.value, '$.count') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM"
            " json_each(e.payload, '$.cells') h WHERE json_extract(h.value, '$.line') = json_extract(t.value, '$.line')"
            " AND json_extract(h.value, '$.count') IS NULL) GROUP BY slot, line",
            [*slot_params, *params],
        )
    ]
    row = conn.execute(
        "SELECT COUNT(*), SUM(w.window_seconds * w.observed_fraction), SUM(w.window_seconds),"  # noqa: S608
        " SUM(w.mean_fps * w.window_seconds * w.observed_fraction), SUM(w.dropped_frames)"
        f" FROM flow_windows w WHERE {where}",
        params,
    ).fetchone()
    policies = [text for (text,) in conn.execute(f"SELECT DISTINCT w.policy FROM flow_windows w WHERE {where}", params)]  # noqa: S608
    first = {
        r[0]: (datetime.fromtimestamp(r[1], UTC), int(r[2]))
        for r in conn.execute(
            f"SELECT w.device, MIN(w.window_start), MIN(w.window_seconds) FROM flow_windows w WHERE {where}"  # noqa: S608
            " GROUP BY w.device",
            params,
        )
    }
    return SlotSums(
        cells=cells,
        lines=lines,
        windows=int(row[0]),
        observed_seconds=float(row[1] or 0),
        window_seconds=float(row[2] or 0),
        fps_weighted=float(row[3] or 0),
        dropped_frames=int(row[4] or 0),
        policies=policies,
        first_windows=first,
    )
