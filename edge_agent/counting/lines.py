"""Counting lines and the crossing rule.

Convention (image coordinates, x to the right, y down): a line is a segment A->B. Someone walking from A
to B has a left-hand and a right-hand side; ``in`` is a move of the object's reference point (the bottom
centre of its box, where the feet touch the ground) from the left-hand side to the right-hand side, ``out``
the reverse.

The rule, per object and line:
- the signed distance ``s`` of the point to the line is positive on the right-hand side;
- a side is *confirmed* only once ``|s|`` exceeds a margin proportional to the object's box height, so
  the band around the line absorbs jitter of feet and boxes at any camera height or distance;
- a crossing is counted when the confirmed side flips, and only if the path passed the line within the
  segment (the last passage through the infinite line, interpolated between two observed points, lies
  between A and B): walking past the end of a short segment counts nothing;
- an object that crosses back and forth is counted each time it really gets clearly to the other side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class CountLine:
    name: str
    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        if self.length < 1.0:
            raise ValueError(f"line {self.name!r}: the two end points must be at least 1 pixel apart")

    @property
    def points(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def length(self) -> float:
        return math.hypot(self.x2 - self.x1, self.y2 - self.y1)

    def signed_distance(self, x: float, y: float) -> float:
        """Distance of (x, y) to the infinite line, positive on the right-hand side of a walker from A to B."""
        dx, dy = self.x2 - self.x1, self.y2 - self.y1
        # With y pointing down, the right-hand normal of (dx, dy) is (-dy, dx).
        return (dx * (y - self.y1) - dy * (x - self.x1)) / self.length

    def position(self, x: float, y: float) -> float:
        """Projection of (x, y) on A->B as a fraction: 0 at A, 1 at B."""
        dx, dy = self.x2 - self.x1, self.y2 - self.y1
        return ((x - self.x1) * dx + (y - self.y1) * dy) / (self.length**2)


@dataclass
class _SideState:
    side: int = 0  # confirmed side: -1 left, +1 right, 0 not yet known
    last_s: float | None = None
    last_t: float = 0.0
    passage_t: float | None = None  # where the path last passed the infinite line since the side was confirmed
    pending: int = 0  # consecutive observations clearly on the side opposite to the confirmed one


@dataclass
class CrossingCounter:
    """Applies the crossing rule to the observed reference points of objects (one instance per camera).

    ``margin`` is the half-width of the hysteresis band as a fraction of the object's box height;
    ``min_margin_px`` keeps the band meaningful for tiny, distant boxes.
    """

    lines: list[CountLine]
    margin: float = 0.25
    min_margin_px: float = 2.0
    confirm: int = 1  # consecutive observations clearly past the line before the side flips
    _state: dict[tuple[int, int], _SideState] = field(default_factory=dict)

    def observe(self, obj: int, x: float, y: float, box_height: float) -> list[tuple[str, Direction]]:
        """Record that object ``obj`` was seen with its reference point at (x, y); returns its new crossings."""
        crossings: list[tuple[str, Direction]] = []
        band = max(self.margin * box_height, self.min_margin_px)
        for index, line in enumerate(self.lines):
            state = self._state.setdefault((obj, index), _SideState())
            s = line.signed_distance(x, y)
            t = line.position(x, y)
            if state.last_s is not None and (s > 0) != (state.last_s > 0) and s != state.last_s:
                # Interpolate where the straight path between the two observations met the line.
                k = state.last_s / (state.last_s - s)
                state.passage_t = state.last_t + k * (t - state.last_t)
            state.last_s, state.last_t = s, t
            if abs(s) < band:
                state.pending = 0
                continue
            side = 1 if s > 0 else -1
            if state.side == -side:
                state.pending += 1
                if state.pending < self.confirm:
                    continue
                if state.passage_t is not None and 0.0 <= state.passage_t <= 1.0:
                    crossings.append((line.name, "in" if side > 0 else "out"))
            state.side = side
            state.passage_t = None
            state.pending = 0
        return crossings

    def forget(self, obj: int) -> None:
        """Drop the state of an object that is gone (track ids live only in memory, and not for long)."""
        for index in range(len(self.lines)):
            self._state.pop((obj, index), None)
