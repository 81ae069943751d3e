"""Validation against ground truth: MOTChallenge boxes (crossings derived with the counter's own rule) or a
manual tally per line and direction, as a technician makes on site.

A counted event matches a true crossing of the same line and direction within ``window`` frames, one to
one (optimal assignment, so one good count is never spent on the wrong truth).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.counting.lines import CountLine, CrossingCounter, Direction
from edge_agent.counting.pipeline import Crossing
from edge_agent.counting.tracking import assign

Key = tuple[str, Direction]
# The convention's hysteresis for ground truth (docs/counting.md): a side counts a quarter of the person's
# height past the line. Fixed, so the truth does not move when the counter's own settings do.
TRUTH_MARGIN = 0.25
DIRECTIONS: tuple[Direction, Direction] = ("in", "out")


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read; the message says which line and why."""


@dataclass(frozen=True)
class GtBox:
    frame: int  # 0-based video frame
    x1: float
    y1: float
    x2: float
    y2: float


def load_mot(path: Path) -> dict[int, list[GtBox]]:
    """MOTChallenge ``frame,id,x,y,w,h,...`` (1-based frames) as boxes per object id, in frame order."""
    tracks: dict[int, list[GtBox]] = defaultdict(list)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"{path}: cannot read: {exc}") from None
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        parts = row.split(",")
        try:
            frame, obj = int(float(parts[0])), int(float(parts[1]))
            x, y, w, h = (float(v) for v in parts[2:6])
        except (ValueError, IndexError):
            raise GroundTruthError(f"{path}:{number}: expected frame,id,x,y,w,h,... numbers") from None
        if frame < 1 or w <= 0 or h <= 0:
            raise GroundTruthError(f"{path}:{number}: frame must be >= 1 and the box non-empty")
        tracks[obj].append(GtBox(frame - 1, x, y, x + w, y + h))
    for boxes in tracks.values():
        boxes.sort(key=lambda b: b.frame)
    return dict(tracks)


def truth_crossings(
    tracks: dict[int, list[GtBox]], lines: Sequence[CountLine], margin: float = TRUTH_MARGIN
) -> list[Crossing]:
    """The crossings the rule finds on ground-truth boxes: the same convention as the live counter, with the
    first point clearly past the line counting at once (annotated feet do not wobble)."""
    counter = CrossingCounter(list(lines), margin=margin)
    out: list[Crossing] = []
    for obj, boxes in tracks.items():
        for box in boxes:
            for line, direction, _ in counter.observe(obj, (box.x1 + box.x2) / 2, box.y2, box.y2 - box.y1):
                out.append(Crossing(box.frame, line, direction, "pedestrian"))
        counter.forget(obj)
    out.sort(key=lambda c: (c.frame, c.line))
    return out


def is_mot_file(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as fh:
            for row in fh:
                if row.strip():
                    parts = row.split(",")
                    return len(parts) >= 6 and all(_is_number(p) for p in parts[:6])
    except (OSError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"{path}: cannot read: {exc}") from None
    return False


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_tally(path: Path) -> dict[Key, int]:
    """A manual tally: CSV rows ``line,direction,count`` (an optional header row is skipped)."""
    tally: dict[Key, int] = {}
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise GroundTruthError(f"{path}: cannot read: {exc}") from None
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells[:3] == ["line", "direction", "count"]):
            continue
        if len(cells) != 3 or cells[1] not in DIRECTIONS or not cells[2].isdigit():
            raise GroundTruthError(f"{path}:{number}: expected line,direction,count with direction in/out")
        key: Key = (cells[0], "in" if cells[1] == "in" else "out")
        tally[key] = tally.get(key, 0) + int(cells[2])
    if not tally:
        raise GroundTruthError(f"{path}: no tally rows (expected line,direction,count)")
    return tally


@dataclass
class Scores:
    counted: dict[Key, int] = field(default_factory=dict)
    truth: dict[Key, int] = field(default_factory=dict)
    matched: int | None = None  # None for a tally: events cannot be matched without times

    @property
    def count_error(self) -> float:
        keys = set(self.counted) | set(self.truth)
        total = sum(self.truth.values())
        diff = sum(abs(self.counted.get(k, 0) - self.truth.get(k, 0)) for k in keys)
        return diff / total if total else float(diff > 0)

    @property
    def precision(self) -> float | None:
        if self.matched is None:
            return None
        n = sum(self.counted.values())
        return self.matched / n if n else 1.0

    @property
    def recall(self) -> float | None:
        if self.matched is None:
            return None
        n = sum(self.truth.values())
        return self.matched / n if n else 1.0

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0


def tally_of(events: Iterable[Crossing], lines: Sequence[CountLine]) -> dict[Key, int]:
    tally: dict[Key, int] = {(line.name, d): 0 for line in lines for d in DIRECTIONS}
    for event in events:
        tally[(event.line, event.direction)] = tally.get((event.line, event.direction), 0) + 1
    return tally


def match_events(counted: Sequence[Crossing], truth: Sequence[Crossing], window: int = 10) -> int:
    """Number of one-to-one matches: same line and direction, frames at most ``window`` apart."""
    matched = 0
    groups: dict[Key, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for c in counted:
        groups[(c.line, c.direction)][0].append(c.frame)
    for t in truth:
        groups[(t.line, t.direction)][1].append(t.frame)
    for found, true in groups.values():
        if not found or not true:
            continue
        cost = [[float(abs(f - g)) if abs(f - g) <= window else 1e6 for g in true] for f in found]
        matched += len(assign(cost, float(window)))
    return matched


def score_events(
    counted: Sequence[Crossing], truth: Sequence[Crossing], lines: Sequence[CountLine], window: int = 10
) -> Scores:
    return Scores(tally_of(counted, lines), tally_of(truth, lines), match_events(counted, truth, window))


def score_tally(counted: Sequence[Crossing], tally: dict[Key, int], lines: Sequence[CountLine]) -> Scores:
    truth = {(line.name, d): 0 for line in lines for d in DIRECTIONS}
    names = {line.name for line in lines}
    for (name, direction), n in tally.items():
        if name not in names:
            raise GroundTruthError(f"the tally names line {name!r}, which is not among the counted lines")
        truth[(name, direction)] = n
    return Scores(tally_of(counted, lines), truth, None)
