"""Multi-object tracking: a constant-velocity Kalman filter per object and optimal (Hungarian) assignment.

Everything is scaled to the object's box height, so the same settings work for a camera on a lamp post and
one on a first floor. Track ids are small integers that live in memory only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

_UNASSIGNED = 1e9


@dataclass(frozen=True)
class Detection:
    """A box in full-frame pixels. ``cyclist`` is None when the detector cannot tell classes apart."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float = 1.0
    cyclist: bool | None = None

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def foot(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, self.y2)


def assign(cost: Sequence[Sequence[float]] | FloatArray, limit: float) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one assignment of rows to columns (Hungarian method, O(n^3)).

    Pairs whose cost exceeds ``limit`` are never returned: they stay unassigned rather than being forced.
    """
    matrix = np.asarray(cost, dtype=np.float64)
    if matrix.size == 0:
        return []
    transposed = matrix.shape[0] > matrix.shape[1]
    if transposed:
        matrix = matrix.T
    clipped = np.minimum(matrix, _UNASSIGNED)
    rows, cols = clipped.shape
    # Potentials method (rows <= cols), 1-based with a virtual column 0.
    u = [0.0] * (rows + 1)
    v = [0.0] * (cols + 1)
    owner = [0] * (cols + 1)
    way = [0] * (cols + 1)
    a = clipped.tolist()
    for i in range(1, rows + 1):
        owner[0] = i
        j0 = 0
        minv = [math.inf] * (cols + 1)
        used = [False] * (cols + 1)
        while True:
            used[j0] = True
            i0 = owner[j0]
            delta = math.inf
            j1 = 0
            row = a[i0 - 1]
            ui0 = u[i0]
            for j in range(1, cols + 1):
                if not used[j]:
                    cur = row[j - 1] - ui0 - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(cols + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while True:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
            if j0 == 0:
                break
    pairs: list[tuple[int, int]] = []
    for j in range(1, cols + 1):
        i = owner[j]
        if i and clipped[i - 1, j - 1] <= limit:
            pairs.append((j - 1, i - 1) if transposed else (i - 1, j - 1))
    pairs.sort()
    return pairs


@dataclass(eq=False)  # identity, not field equality: tracks hold arrays and are compared as objects
class Track:
    id: int
    state: FloatArray  # foot x, foot y, vx, vy (pixels, pixels per frame)
    cov: FloatArray
    width: float
    height: float
    hits: int = 1
    misses: int = 0  # frames since the last matched detection
    age: int = 0
    cyclist_votes: int = 0
    class_votes: int = 0
    matched: bool = True  # matched a detection in the latest detection round
    grouped: bool = False  # following a box shared with others (see Tracker._follow_groups)
    measured: tuple[float, float] = (0.0, 0.0)  # foot of the latest matched detection
    recent: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=12))

    def remember(self) -> None:
        self.recent.append((self.age, float(self.state[0]), float(self.state[1])))

    def mean_speed(self) -> float:
        """Pixels per frame over the last few observations: steadier than the filter's velocity."""
        if len(self.recent) < 2:
            return self.speed
        (a0, x0, y0), (a1, x1, y1) = self.recent[0], self.recent[-1]
        return math.hypot(x1 - x0, y1 - y0) / max(a1 - a0, 1)

    @property
    def foot(self) -> tuple[float, float]:
        return (float(self.state[0]), float(self.state[1]))

    @property
    def speed(self) -> float:
        """Pixels per frame."""
        return float(math.hypot(self.state[2], self.state[3]))


@dataclass
class TrackerSettings:
    gate: float = 0.9  # max distance, in box heights, between prediction and detection for a match
    gate_growth: float = 0.08  # extra gate per frame without a match (uncertainty grows while coasting)
    gate_max: float = 1.2  # ... up to this: a track coasting for long must not grab a passer-by
    min_hits: int = 2  # matched detections before a track is confirmed
    max_coast_frames: int = 10  # a track survives this many frames without a matched detection
    process_noise: float = 0.01  # acceleration noise, box heights per frame^2
    measurement_noise: float = 0.06  # detection noise, box heights
    hidden_feet: bool = True  # a box that loses its bottom part keeps the feet where the height says
    groups: bool = True  # let tracks follow a box they merged into with a neighbour
    group_join_frames: int = 4  # ... if they lost their own box at most this many frames ago
    revive_frames: int = 50  # a lost track can be picked up again where it vanished for this long
    revive_gate: float = 0.6  # max distance, in box heights, from where a lost track vanished


@dataclass
class Tracker:
    settings: TrackerSettings = field(default_factory=TrackerSettings)
    tracks: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)  # recently lost tracks, for someone reappearing in place
    _next_id: int = 1

    def predict(self) -> None:
        """Advance every track by one frame."""
        q = self.settings.process_noise
        for track in self.tracks:
            s = track.state
            s[0] += s[2]
            s[1] += s[3]
            # P = F P F^T + Q for the constant-velocity model, written out (4x4, F = [[I, I], [0, I]]).
            p = track.cov
            p[:2, :2] += p[2:, :2] + p[:2, 2:] + p[2:, 2:]
            p[:2, 2:] += p[2:, 2:]
            p[2:, :2] += p[2:, 2:]
            sigma = (q * track.height) ** 2
            p[0, 0] += sigma / 4
            p[1, 1] += sigma / 4
            p[2, 2] += sigma
            p[3, 3] += sigma
            p[0, 2] += sigma / 2
            p[1, 3] += sigma / 2
            p[2, 0] += sigma / 2
            p[3, 1] += sigma / 2
            track.age += 1
            track.misses += 1
        for track in self.lost:
            track.misses += 1

    def update(
        self, detections: Sequence[Detection], bounds: tuple[float, float] | None = None
    ) -> tuple[list[Track], list[Track]]:
        """Match detections to the predicted tracks; returns (tracks updated this round, tracks forgotten).

        A track that goes unseen for longer than ``max_coast_frames`` is moved to ``lost``: someone who
        stood still (and faded into the background) or was hidden, and reappears where they vanished, gets
        their old track back, so a crossing after a pause is still seen as one crossing. An unmatched
        track whose predicted feet have left the frame (``bounds`` = width, height) has left the scene: it
        is dropped at once, so it cannot coast into someone entering at the same border.
        """
        st = self.settings
        cost = np.full((len(self.tracks), len(detections)), _UNASSIGNED)
        feet = [det.foot for det in detections]
        for i, track in enumerate(self.tracks):
            tx, ty = track.foot
            gate = min(st.gate + st.gate_growth * max(track.misses - 1, 0), st.gate_max)
            for j, det in enumerate(detections):
                scale = max((track.height + det.height) / 2, 1.0)
                fx, fy = feet[j]
                dist = math.hypot(fx - tx, fy - ty) / scale
                ratio = abs(math.log(max(det.height, 1.0) / max(track.height, 1.0)))
                if dist <= gate and ratio <= 0.7:
                    cost[i, j] = dist + 0.5 * ratio
        pairs = assign(cost, _UNASSIGNED / 2)
        updated: list[Track] = []
        matched_dets = set()
        for track in self.tracks:
            track.matched = False
        for i, j in pairs:
            track, det = self.tracks[i], detections[j]
            self._correct(track, det)
            matched_dets.add(j)
            updated.append(track)
        if st.groups:
            updated += self._follow_groups([(detections[j], self.tracks[i]) for i, j in pairs])
        unmatched = [j for j in range(len(detections)) if j not in matched_dets]
        if unmatched and self.lost:
            pairs = self._revive([detections[j] for j in unmatched])
            revived = [self.lost[i] for i, _ in pairs]
            taken = {i for i, _ in pairs}
            self.lost = [t for i, t in enumerate(self.lost) if i not in taken]
            for track, (_, j) in zip(revived, pairs, strict=True):
                det = detections[unmatched[j]]
                track.state = np.array([det.foot[0], det.foot[1], 0.0, 0.0])
                track.cov = np.diag([(0.1 * det.height) ** 2] * 4)
                track.recent.clear()
                self.tracks.append(track)
                self._correct(track, det)
                matched_dets.add(unmatched[j])
                updated.append(track)
        for j, det in enumerate(detections):
            if j in matched_dets:
                continue
            fx, fy = det.foot
            h = max(det.height, 1.0)
            track = Track(
                id=self._next_id,
                state=np.array([fx, fy, 0.0, 0.0]),
                cov=np.diag([(0.1 * h) ** 2, (0.1 * h) ** 2, (0.1 * h) ** 2, (0.1 * h) ** 2]),
                width=det.width,
                height=h,
                misses=0,
                measured=(fx, fy),
            )
            track.remember()
            self._vote(track, det)
            self._next_id += 1
            self.tracks.append(track)
            updated.append(track)
        if bounds is not None:
            width, height = bounds
            # Feet just below the bottom edge are still someone in view (the box is cut by the frame).
            left = [
                t
                for t in self.tracks
                if not t.matched and not (0 <= t.state[0] < width and 0 <= t.state[1] < height + 0.25 * t.height)
            ]
            if left:
                gone_ids = {id(t) for t in left}
                self.tracks = [t for t in self.tracks if id(t) not in gone_ids]
        else:
            left = []
        gone = [t for t in self.tracks if t.misses > st.max_coast_frames]
        if gone:
            self.tracks = [t for t in self.tracks if t.misses <= st.max_coast_frames]
            # Only tracks that were real (confirmed) are worth remembering.
            self.lost.extend(t for t in gone if t.hits >= st.min_hits)
        forgotten = left + [t for t in gone if t.hits < st.min_hits]
        forgotten += [t for t in self.lost if t.misses > st.max_coast_frames + st.revive_frames]
        self.lost = [t for t in self.lost if t.misses <= st.max_coast_frames + st.revive_frames]
        return updated, forgotten

    def _follow_groups(self, taken: Sequence[tuple[Detection, Track]]) -> list[Track]:
        """Tracks that lost their own box because it merged with a neighbour's follow the merged box.

        People walking together (or passing each other) become one blob or one box; the track that did
        not get it would coast and be lost, and its crossing with it. While its predicted feet stay inside
        a matched box, it is updated with its own position clamped into that box (feet at the box's
        bottom when at about the same depth), with a weak measurement that leaves its hits unchanged.
        """
        followed: list[Track] = []
        for track in self.tracks:
            if track.matched or track.hits < self.settings.min_hits:
                continue
            if not (track.grouped or track.misses <= self.settings.group_join_frames):
                continue
            tx, ty = track.foot
            best: Detection | None = None
            for det, owner in taken:
                pad = 0.1 * det.height
                if not (det.x1 - pad <= tx <= det.x2 + pad and det.y1 <= ty <= det.y2 + pad):
                    continue
                # Joining needs a neighbour, not a twin: a second track on the same person (a fragment)
                # must die, not follow it.
                ox, oy = owner.foot
                if not track.grouped and math.hypot(ox - tx, oy - ty) < 0.3 * track.height:
                    continue
                if best is None or abs(det.y2 - ty) < abs(best.y2 - ty):
                    best = det
            if best is None:
                track.grouped = False
                continue
            fy = best.y2 if abs(best.y2 - ty) < 0.25 * track.height else ty
            fx = min(max(tx, best.x1), best.x2)
            x1 = fx - track.width / 2
            hits = track.hits
            self._correct(track, Detection(x1, fy - track.height, x1 + track.width, fy, 0.0, None), weak=True)
            track.hits = hits
            track.grouped = True
            followed.append(track)
        return followed

    def _revive(self, detections: Sequence[Detection]) -> list[tuple[int, int]]:
        """Pairs (lost index, detection index) of people reappearing where a lost track was last seen."""
        cost = np.full((len(self.lost), len(detections)), _UNASSIGNED)
        for i, track in enumerate(self.lost):
            if not track.recent:
                continue
            _, lx, ly = track.recent[-1]
            for j, det in enumerate(detections):
                scale = max((track.height + det.height) / 2, 1.0)
                dist = math.hypot(det.foot[0] - lx, det.foot[1] - ly) / scale
                ratio = abs(math.log(max(det.height, 1.0) / max(track.height, 1.0)))
                if dist <= self.settings.revive_gate and ratio <= 0.7:
                    cost[i, j] = dist + 0.5 * ratio
        return assign(cost, _UNASSIGNED / 2)

    def _correct(self, track: Track, det: Detection, weak: bool = False) -> None:
        r = ((3.0 if weak else 1.0) * self.settings.measurement_noise * max(track.height, det.height, 1.0)) ** 2
        fx, fy = det.foot
        shrink = 0.3
        if self.settings.hidden_feet and track.hits >= 2 and det.height < 0.8 * track.height:
            top = track.state[1] - track.height
            if abs(det.y1 - top) < abs(det.y2 - track.state[1]):
                # The top fits, the bottom does not: feet hidden behind someone (or fading into the
                # background). Put the feet where the known height says, rather than where the box ends.
                fy = det.y1 + track.height
            shrink = 0.05  # a box that suddenly shrinks is more likely cut than a person getting smaller
        track.measured = (fx, fy)
        s = track.state
        p = track.cov
        # H = [I, 0]: the innovation covariance is the top-left block plus R.
        inn = np.array([fx - s[0], fy - s[1]])
        sm = p[:2, :2] + np.eye(2) * r
        gain = p[:, :2] @ np.linalg.inv(sm)
        track.state = s + gain @ inn
        track.cov = p - gain @ p[:2, :]
        track.width += 0.3 * (det.width - track.width)
        track.height += (0.3 if det.height >= track.height else shrink) * (det.height - track.height)
        track.hits += 1
        track.misses = 0
        track.matched = True
        track.grouped = weak
        track.remember()
        self._vote(track, det)

    @staticmethod
    def _vote(track: Track, det: Detection) -> None:
        if det.cyclist is not None:
            track.class_votes += 1
            track.cyclist_votes += int(det.cyclist)
