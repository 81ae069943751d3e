"""Counting lines and the crossing rule.

Convention (image coordinates, x to the right, y down): a line is a segment A->B. Someone walking from A
to B has a left-hand and a right-hand side; ``in`` is a move of the object's reference point (the bottom
centre of its box, where the feet touch the ground) from the left-hand side to the right-hand side, ``out``
the reverse.

The rule, per object and line:
- the signed distance ``s`` of the point to the line is positive on the right-hand side;
- a side is *confirmed* only once ``|s|`` exceeds a margin proportional to the object's box height, so
  the band around the line absorbs jitter of feet and boxes at any camera height or distance;
- the new side must last (``persist`` frames past the band, or twice the band away from the line), so an
  approach past the band and back, or feet wobbling at its edge, count nothing; the crossing is dated at
  the frame the path got past the band;
- a crossing is counted when the confirmed side flips, and only if the path passed the line within the
  segment (the last passage through the infinite line, interpolated between two observed points, lies
  between A and B): walking past the end of a short segment counts nothing;
- an object that crosses back and forth is counted each time it really gets clearly to the other side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, NamedTuple

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

    def point_outside(self, width: float, height: float) -> tuple[float, float] | None:
        """The first end point outside a ``width`` x ``height`` frame (edges included), or None."""
        for x, y in ((self.x1, self.y1), (self.x2, self.y2)):
            if not (0 <= x <= width and 0 <= y <= height):
                return (x, y)
        return None

    @cached_property  # read for every observation of every object: computed once per line
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


class Counted(NamedTuple):
    line: str
    direction: Direction
    frame: int  # when the object first got clearly past the line (not when that was confirmed)


@dataclass
class _SideState:
    side: int = 0  # confirmed side: -1 left, +1 right, 0 not yet known
    origin: int = 0  # side of the first observation, when it was not on the line itself
    last_s: float | None = None
    last_t: float = 0.0
    last_frame: int = 0
    last_band: float = 0.0
    passage_t: float | None = None  # where the path last passed the infinite line since the side was confirmed
    since: int | None = None  # frame at which the point got clearly past the line, on the other side


@dataclass
class CrossingCounter:
    """Applies the crossing rule to the observed reference points of objects (one instance per camera).

    ``margin`` is the half-width of the hysteresis band as a fraction of the object's box height;
    ``min_margin_px`` keeps the band meaningful for tiny, distant boxes. ``persist`` (frames) asks that the
    new side *lasts*: the point must stay past the band that long, or get twice as far past the line, before
    the crossing counts. Someone who reaches just past the band and turns back, or stands at its edge while
    the detector's feet wobble, does not count; someone walking on is counted at the frame they got past.
    With ``persist`` 0 the first point past the band counts (the rule applied to ground-truth boxes).
    """

    lines: list[CountLine]
    margin: float = 0.25
    min_margin_px: float = 2.0
    persist: int = 0
    near_side: float | None = None
    _state: dict[tuple[int, int], _SideState] = field(default_factory=dict)

    def observe(
        self, obj: int, x: float, y: float, box_height: float, frame: int = 0, arrived: bool = True
    ) -> list[Counted]:
        """Record that object ``obj`` was seen at frame ``frame`` with its reference point at (x, y); returns
        its crossings that became certain now (each with the frame at which it happened).

        ``arrived`` says that the object came into view while we were watching (not at the start of the
        stream), so the side it was first seen on is where it came from (see ``near_side``)."""
        crossings: list[Counted] = []
        band = max(self.margin * box_height, self.min_margin_px)
        for index, line in enumerate(self.lines):
            state = self._state.get((obj, index))
            if state is None:
                state = self._state[(obj, index)] = _SideState()
            s = line.signed_distance(x, y)
            t = line.position(x, y)
            if state.last_s is None and arrived and self.near_side is not None and abs(s) >= self.near_side * band:
                state.origin = 1 if s > 0 else -1
            if state.last_s is not None and (s > 0) != (state.last_s > 0) and s != state.last_s:
                # Interpolate where the straight path between the two observations met the line.
                k = state.last_s / (state.last_s - s)
                state.passage_t = state.last_t + k * (t - state.last_t)
            last_s, last_frame = state.last_s, state.last_frame
            state.last_s, state.last_t, state.last_frame, state.last_band = s, t, frame, band
            if abs(s) < band:
                state.since = None  # back into the band before the new side lasted: an excursion
                continue
            side = 1 if s > 0 else -1
            if (state.side or state.origin) == -side:
                if state.since is None:
                    state.since = frame
                    if last_s is not None and last_s != s and frame > last_frame:
                        # Observations may be frames apart (a detector every k-th frame, an occlusion): the
                        # frame at which the path got past the band, by linear interpolation.
                        k = (side * band - last_s) / (s - last_s)
                        state.since = last_frame + round(min(max(k, 0.0), 1.0) * (frame - last_frame))
                if frame - state.since < self.persist and abs(s) < 2 * band:
                    continue
                if state.passage_t is not None and 0.0 <= state.passage_t <= 1.0:
                    crossings.append(Counted(line.name, "in" if side > 0 else "out", state.since))
            state.side = side
            state.passage_t = None
            state.since = None
        return crossings

    def forget(self, obj: int, left: bool = True) -> list[Counted]:
        """Drop the state of an object that is gone (track ids live only in memory, and not for long).

        An object that was past the band when it vanished never came back: its crossing is returned. One
        that ``left`` (not merely still in view when the stream ends) and was last seen past the line, at
        least ``near_side`` of the band, after coming through the segment from the other side, walked on
        out of sight (a doorway, a van, the frame's edge): that crossing is returned too.
        """
        crossings: list[Counted] = []
        for index, line in enumerate(self.lines):
            state = self._state.pop((obj, index), None)
            if state is None or state.last_s is None:
                continue
            if state.passage_t is None or not 0.0 <= state.passage_t <= 1.0:
                continue
            side = 1 if state.last_s > 0 else -1
            direction: Direction = "in" if side > 0 else "out"
            if state.since is not None:
                crossings.append(Counted(line.name, direction, state.since))
            elif (
                left
                and self.near_side is not None
                and (state.side or state.origin) == -side
                and abs(state.last_s) >= self.near_side * state.last_band
            ):
                crossings.append(Counted(line.name, direction, state.last_frame))
        return crossings
