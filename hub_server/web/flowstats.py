"""Flow windows summed into the buckets the charts show, with the data-quality figures that go beside them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from hub_protocol.flows import PrivacyPolicy

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


@dataclass(frozen=True)
class CellSum:
    """Published counts of one line x direction x class summed over the windows of one slot."""

    slot: int
    line: str
    direction: str
    object_class: str
    count: int | None  # None: every cell of the slot was suppressed
    suppressed: int
    cells: int


@dataclass(frozen=True)
class LineSum:
    """A line's published totals summed over the windows of one slot."""

    slot: int
    line: str
    count: int


@dataclass
class FlowAggregate:
    """Flow windows of a span summed per slot by the store, with their quality; what the charts need."""

    cells: list[CellSum]
    lines: list[LineSum]
    quality: Quality
    first_windows: dict[str, tuple[datetime, int]]  # device -> (first window start in the span, window length)


def day_start(day: date, zone: tzinfo) -> datetime:
    """Local midnight of ``day`` in UTC: where "today" begins for the pages and their live figures alike."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def today_start(now: datetime, zone: tzinfo) -> datetime:
    """Where the local day containing ``now`` begins, in UTC (23:00 UTC the day before in Amsterdam's winter)."""
    return day_start(now.astimezone(zone).date(), zone)


def shown(count: int) -> int:
    """A count as pages show it. Under dp, published counts are noisy and a sum of them may be negative; the
    store and the API keep them as published (so that sums stay unbiased), pages clip at zero."""
    return max(0, count)


def assemble(
    aggregate: FlowAggregate, start: datetime, step: timedelta, slots: int, zone: tzinfo, label_format: str
) -> Bucketed:
    """Chart series per line from the store's sums; a slot without any window stays None (a gap, not a zero)."""
    labels = [(start + step * i).astimezone(zone).strftime(label_format) for i in range(slots)]
    lines: dict[str, LineBuckets] = {}
    quality = aggregate.quality
    quality.cells = quality.suppressed_cells = 0

    def buckets_of(line: str) -> LineBuckets:
        if line not in lines:
            lines[line] = LineBuckets(line, {}, defaultdict(int))
        return lines[line]

    for c in aggregate.cells:
        if not 0 <= c.slot < slots:
            continue
        b = buckets_of(c.line)
        key = (c.direction, c.object_class)
        values = b.series.setdefault(key, [None] * slots)
        quality.cells += c.cells
        quality.suppressed_cells += c.suppressed
        b.suppressed[key] += c.suppressed
        if c.count is not None:
            values[c.slot] = (values[c.slot] or 0) + c.count
    # A line total a device sent counts here only where it published all the line's cells (the store's rule).
    for t in aggregate.lines:
        if 0 <= t.slot < slots:
            values = buckets_of(t.line).series.setdefault(ALL, [None] * slots)
            values[t.slot] = (values[t.slot] or 0) + t.count
    for b in lines.values():
        for values in b.series.values():
            values[:] = [None if v is None else shown(int(v)) for v in values]
    return Bucketed(labels, dict(sorted(lines.items())), quality)


def expected_from_first(first_windows: dict[str, tuple[datetime, int]], span_end: datetime) -> int:
    """Windows that should have arrived by ``span_end``, per device from its first window in the span on (a
    device installed mid-span is not blamed for the time before), by its window length."""
    return sum(max(1, int((span_end - begin).total_seconds() // seconds)) for begin, seconds in first_windows.values())


def policy_text(policy: PrivacyPolicy) -> str:
    parts = [policy.kind.value]
    if policy.k is not None:
        parts.append(f"k={policy.k}")
    if policy.epsilon is not None:
        parts.append(f"ε={policy.epsilon}")
    if policy.budget_exhausted:
        parts.append("budget exhausted")
    return " ".join(parts)


@dataclass
class FlowSums:
    """Published counts over a span, summed by the store.

    ``lines`` holds, per device and line, the sum over windows of the line's published cells (a total the
    device sent is used only where it published all of them: beside hidden cells it would give them away).
    Suppressed cells are never filled in.
    """

    cells: dict[tuple[str, str, str, str], int]  # (device, line, direction, object_class) -> count
    lines: dict[tuple[str, str], int]  # (device, line) -> count
    latest: dict[str, datetime]  # device -> start of its newest window in the span

    def device_total(self, device: str) -> int:
        return shown(sum(n for (d, _), n in self.lines.items() if d == device))


@dataclass
class LineTable:
    """One line's published counts: per direction and class, and the line's total."""

    line: str
    cells: list[tuple[str, str, int]]  # (direction, object_class, count)
    total: int


def line_tables(sums: FlowSums, device: str) -> list[LineTable]:
    return [
        LineTable(
            line,
            sorted((dr, c, shown(n)) for (dv, ln, dr, c), n in sums.cells.items() if dv == device and ln == line),
            shown(total),
        )
        for (dv, line), total in sorted(sums.lines.items())
        if dv == device
    ]
