"""Flow windows summed into the buckets the charts show, with the data-quality figures that go beside them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from hub_protocol.flows import FlowWindow
from hub_server.web.model import StoredWindow

SeriesKey = tuple[str, str]  # (direction, object_class); ("all", "all") is the line total
ALL: SeriesKey = ("all", "all")


@dataclass
class Quality:
    windows: int = 0
    expected_windows: int = 0
    observed_seconds: float = 0.0
    window_seconds: float = 0.0
    fps_weighted: float = 0.0
    dropped_frames: int = 0
    cells: int = 0
    suppressed_cells: int = 0
    policies: set[str] = field(default_factory=set)

    @property
    def observed_fraction(self) -> float | None:
        return self.observed_seconds / self.window_seconds if self.window_seconds else None

    @property
    def mean_fps(self) -> float | None:
        return self.fps_weighted / self.observed_seconds if self.observed_seconds else None

    @property
    def coverage(self) -> float | None:
        return min(1.0, self.windows / self.expected_windows) if self.expected_windows else None


@dataclass
class LineBuckets:
    """Counts of one line: per (direction, class), one value per bucket; None where no window arrived."""

    line: str
    series: dict[SeriesKey, list[float | None]]
    suppressed: dict[SeriesKey, int]


@dataclass
class Bucketed:
    labels: list[str]
    lines: dict[str, LineBuckets]
    quality: Quality


def bucket(
    windows: Iterable[StoredWindow], start: datetime, step: timedelta, slots: int, zone: tzinfo, label_format: str
) -> Bucketed:
    """Sum each window's cells into the slot its start falls in (slots are in local time from ``start``)."""
    labels = [(start + step * i).astimezone(zone).strftime(label_format) for i in range(slots)]
    lines: dict[str, LineBuckets] = {}
    quality = Quality()
    seen_windows: set[tuple[str, datetime]] = set()
    span = step * slots
    for stored in windows:
        window = stored.window
        offset = window.window_start - start
        if offset < timedelta(0) or offset >= span:
            continue
        slot = int(offset / step)
        key = (stored.device, window.window_start)
        if key not in seen_windows:
            seen_windows.add(key)
            quality.windows += 1
            observed = window.window_seconds * window.quality.observed_fraction
            quality.observed_seconds += observed
            quality.window_seconds += window.window_seconds
            quality.fps_weighted += window.quality.mean_fps * observed
            quality.dropped_frames += window.quality.dropped_frames
            quality.policies.add(_policy_text(stored))
        for cell in window.cells:
            buckets = lines.get(cell.line)
            if buckets is None:
                buckets = lines[cell.line] = LineBuckets(cell.line, {}, defaultdict(int))
            skey = (cell.direction.value, cell.object_class.value)
            values = buckets.series.setdefault(skey, [None] * slots)
            quality.cells += 1
            if cell.count is None:
                quality.suppressed_cells += 1
                buckets.suppressed[skey] += 1
                continue
            values[slot] = (values[slot] or 0) + cell.count
        # The published line total counts suppressed cells too, so it is the best figure for the line.
        for total in window.totals:
            if total.direction is None and total.object_class is None and total.count is not None:
                buckets = lines.get(total.line)
                if buckets is None:
                    buckets = lines[total.line] = LineBuckets(total.line, {}, defaultdict(int))
                values = buckets.series.setdefault(ALL, [None] * slots)
                values[slot] = (values[slot] or 0) + total.count
    return Bucketed(labels, dict(sorted(lines.items())), quality)


def expected_windows(windows: Iterable[StoredWindow], span: timedelta, until: datetime, start: datetime) -> int:
    """Windows that should have arrived in the elapsed part of the span, per device from its first window in
    the span on (a device installed mid-span is not blamed for the time before), by its window length."""
    first: dict[str, tuple[datetime, int]] = {}
    end = min(until, start + span)
    for stored in windows:
        begin = stored.window.window_start
        if not start <= begin < end:
            continue
        known = first.get(stored.device)
        if known is None or begin < known[0]:
            first[stored.device] = (begin, stored.window.window_seconds)
    return sum(max(1, int((end - begin).total_seconds() // seconds)) for begin, seconds in first.values())


def _policy_text(stored: StoredWindow) -> str:
    policy = stored.window.policy
    parts = [policy.kind.value]
    if policy.k is not None:
        parts.append(f"k={policy.k}")
    if policy.epsilon is not None:
        parts.append(f"ε={policy.epsilon}")
    if policy.budget_exhausted:
        parts.append("budget exhausted")
    return " ".join(parts)


def line_totals(window: FlowWindow) -> dict[str, int]:
    """Per line: the published line total when the device sent one, else the sum of its published cells.

    Under small-count protection a line total may be published while some of its cells are not; never try to
    fill suppressed cells in, only use what was published.
    """
    result: dict[str, int] = {}
    for cell in window.cells:
        result[cell.line] = result.get(cell.line, 0) + (cell.count or 0)
    for total in window.totals:
        if total.direction is None and total.object_class is None and total.count is not None:
            result[total.line] = total.count
    return result


def device_totals(windows: Iterable[StoredWindow]) -> dict[str, int]:
    """Crossings per device over all its lines and windows."""
    result: dict[str, int] = defaultdict(int)
    for stored in windows:
        result[stored.device] += sum(line_totals(stored.window).values())
    return dict(result)


def totals(windows: Iterable[StoredWindow]) -> dict[tuple[str, str, str], int]:
    """Published counts per (line, direction, class); suppressed cells add nothing."""
    result: dict[tuple[str, str, str], int] = defaultdict(int)
    for stored in windows:
        for cell in stored.window.cells:
            if cell.count is not None:
                result[(cell.line, cell.direction.value, cell.object_class.value)] += cell.count
    return dict(sorted(result.items()))


@dataclass
class LineTable:
    """One line's published counts over some windows: per direction and class, and the line's total."""

    line: str
    cells: list[tuple[str, str, int]]  # (direction, object_class, count)
    total: int


def line_tables(windows: Iterable[StoredWindow]) -> list[LineTable]:
    windows = list(windows)
    cells = totals(windows)
    whole: dict[str, int] = defaultdict(int)
    for stored in windows:
        for line, value in line_totals(stored.window).items():
            whole[line] += value
    return [
        LineTable(line, [(d, c, n) for (ln, d, c), n in cells.items() if ln == line], whole[line])
        for line in sorted(whole)
    ]
