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

from edge_agent.counting.appearance import distance, torso

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
    # Colour signature of the upper body (appearance.describe), in memory only; None where there are no
    # pixels to look at (or the detector did not compute it): association then uses motion alone.
    appearance: FloatArray | None = field(default=None, compare=False, repr=False)

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


def _height_ratio(a: float, b: float) -> float:
    """How far apart two heights are, scale-free: |log(a / b)| (0 for equal heights)."""
    return abs(math.log(max(a, 1.0) / max(b, 1.0)))


def _overlap(a: Detection, b: Detection) -> bool:
    """The boxes overlap across ``a``'s torso (the part its signature is taken from)."""
    x1, y1, x2, y2 = torso(a)
    return min(x2, b.x2) > max(x1, b.x1) and min(y2, b.y2) > max(y1, b.y1)


def _shared_area(a: Detection, b: Detection, c: Detection | None = None) -> float:
    """The area the boxes have in common (0 when they do not all overlap). Per box pair and detection round:
    plain comparisons, no generators."""
    x1, y1, x2, y2 = max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2)
    if c is not None:
        x1, y1, x2, y2 = max(x1, c.x1), max(y1, c.y1), min(x2, c.x2), min(y2, c.y2)
    return (x2 - x1) * (y2 - y1) if x2 > x1 and y2 > y1 else 0.0


def _inside(inner: Detection, outer: Detection, share: float = 0.8) -> bool:
    """Most of ``inner`` lies within ``outer``: a weak second box on the same person, not someone else."""
    return _shared_area(inner, outer) >= share * max(inner.width * inner.height, 1e-9)


def _spans(box: Detection, a: Detection, b: Detection) -> bool:
    """``box`` lies between the surer boxes ``a`` and ``b`` and is covered by them: one box on two people."""
    if box.score >= min(a.score, b.score):
        return False
    if not min(a.x1 + a.x2, b.x1 + b.x2) <= box.x1 + box.x2 <= max(a.x1 + a.x2, b.x1 + b.x2):
        return False
    tol = 0.1 * box.height
    for ea, eb, e in ((a.y1, b.y1, box.y1), (a.y2, b.y2, box.y2)):
        if not min(ea, eb) - tol <= e <= max(ea, eb) + tol:
            return False  # not at their depth: someone else behind or in front of them
    area = max(box.width * box.height, 1e-9)
    with_a, with_b = _shared_area(box, a) / area, _shared_area(box, b) / area
    return with_a >= 0.3 and with_b >= 0.3 and with_a + with_b - _shared_area(box, a, b) / area >= 0.8


def _spanning(detections: Sequence[Detection]) -> set[int]:
    """Boxes lying across two surer ones at their depth. A detector puts such a box over two people walking
    close together that it also found one by one (its NMS keeps all three, the overlaps being small); made a
    track, it is a third person walking with the pair. A third person mostly hidden between the two gives the
    same box, so such a box may continue a track (someone already followed) but never starts one."""
    out = set()
    for j, box in enumerate(detections):
        near = [d for k, d in enumerate(detections) if k != j and d.score > box.score and _shared_area(box, d) > 0]
        if any(_spans(box, a, b) for n, a in enumerate(near) for b in near[n + 1 :]):
            out.add(j)
    return out


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
    own_seen: int = 0  # age at which a detection of its own last matched (following a shared box is not one)
    measured: tuple[float, float] = (0.0, 0.0)  # foot of the latest matched detection
    measured_height: float = 0.0  # the person's height in that detection (where the frame cuts it: estimated)
    recent: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=12))
    appearance: FloatArray | None = None  # running mean of the detections' signatures (never leaves memory)

    height_rate: float = 0.0  # change of log height per frame: people grow as they approach the camera
    height_seen: int = 0  # age at which the height was last set
    height_measured: bool = False  # seen whole at least once (not only cut by the frame's edge)

    def expected_height(self) -> float:
        """The height now, following the recent rate of change (perspective) since it was last seen."""
        return self.height * math.exp(self.height_rate * (self.age - self.height_seen))

    def observe_height(self, height: float, reliable: bool) -> None:
        expected = self.expected_height()
        if reliable:
            frames = max(self.age - self.height_seen, 1)
            rate = math.log(max(height, 1.0) / max(self.height, 1.0)) / frames
            self.height_rate += 0.3 * (min(max(rate, -0.05), 0.05) - self.height_rate)
            # The first whole view replaces a height guessed from boxes the frame cut.
            self.height = expected + (0.3 if self.height_measured else 1.0) * (height - expected)
            self.height_measured = True
        else:
            # ``height`` is what the box shows of someone cut by the frame or by someone in front: a lower bound.
            # The rate alone, carried on for as long as only such boxes come, shrank a person walking away and
            # then along the frame's top edge to half the size of their legs' box, and the track lost them.
            self.height = max(expected, height)
        self.height_seen = self.age

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
    def called_cyclist(self) -> bool:
        """The detector's votes make it a cyclist. A rider is often found without their bicycle (missed,
        hidden, cut off), while a pedestrian is rarely taken for a rider (detectors/fusion.py): a third decide."""
        return self.cyclist_votes * 3 >= self.class_votes > 0

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
    # ... if they lost their own box at most this many frames ago, or in this detection round whatever the
    # detector's cadence (with a detector every 6th frame a track matched last round has 6 misses now).
    group_join_frames: int = 4
    revive_frames: int = 50  # a lost track can be picked up again where it vanished for this long
    revive_gate: float = 0.6  # max distance, in box heights, from where a lost track vanished
    # A confirmed track left without a box takes a sure box nobody claimed within this many box heights of
    # where it was last seen or is predicted (the coasting cap, without the Mahalanobis gate), when their
    # colours agree (Bhattacharyya distance at most ``relink_colour``), rather than that box starting a second
    # track on the same person: a fragment that splits the crossing. Model boxes with signatures only; 0: off.
    relink_gate: float = 1.2
    relink_colour: float = 0.6
    high_score: float = 0.4  # detections at least this sure start tracks; weaker ones only keep tracks alive
    frame_edges: bool = True  # a box edge at the frame's edge is cut by it: feet and height are estimated
    border: float = 2.0  # pixels: ... that close to the edge
    # A box the frame cuts at the bottom has lost at least the shoes (this share of the person's height): the
    # feet are below the frame, never on its last row, so a line drawn down to the frame's edge is not crossed
    # by someone whose feet were never in view. 0: the height alone says where the feet are.
    cut_feet: float = 0.03
    mahalanobis: bool = True  # gate and cost by the track's own uncertainty (Kalman innovation)
    gate_sigmas: float = 4.0  # ... up to this many standard deviations
    speed_sd: float = 0.1  # prior spread of a new track's speed, box heights per frame
    # ... of a track the detector calls a cyclist (0: as anyone's). A cyclist covers three or four times a
    # walker's distance: at 10 frames/s with the detector on every 4th frame, 1.4 of their height between two
    # runs, beyond a walker's gate. While a track seen once (speed unknown) is, or meets a box, called a
    # cyclist, its gate grows by this spread per frame unseen and its speed is this uncertain (the first box
    # may have been the rider without the bicycle); once it has a speed, the filter carries it.
    cyclist_speed_sd: float = 0.0
    # Colour of clothes where motion is ambiguous (two candidates in one gate, reviving a lost track): the
    # signatures' Bhattacharyya distance (0-1, scale-free) times this weight is added to the cost.
    appearance: bool = True
    appearance_weight: float = 1.0
    appearance_rate: float = 0.2  # how fast a track's signature follows new detections
    # A shared box pulls a following track's feet to its bottom only when it is as tall as that person
    # (log height ratio within this): the same depth, people side by side. At eye level someone passing in
    # front is taller and their feet lower; pulled to them, the hidden person's track drifts (a little
    # further each round) across lines on the pavement that they never crossed.
    group_same_depth: float = 0.15
    # A box lying across two surer ones (see _spanning) only continues a track, as a weak one does. Model boxes.
    spanning_boxes: bool = True


@dataclass
class Tracker:
    settings: TrackerSettings = field(default_factory=TrackerSettings)
    tracks: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)  # recently lost tracks, for someone reappearing in place
    _next_id: int = 1
    _frame: tuple[float, float] | None = None  # width, height of the frame being tracked
    _shared: set[int] = field(default_factory=set)  # ids of detections a second track follows this round

    def predict(self) -> None:
        """Advance every track by one frame."""
        q = self.settings.process_noise
        # Lost tracks move on too: someone hidden behind a passer-by keeps walking.
        for track in self.tracks + self.lost:
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
        for track in self.tracks + self.lost:
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
        self._frame = bounds
        # Tracks that had a box in the previous detection round: only those can be relinked (a box that
        # jumped between two rounds); longer gaps are the coasting and lost tracks' business.
        previous = {id(t) for t in self.tracks if t.matched}
        for track in self.tracks:
            track.matched = False
        # Two rounds (as ByteTrack): sure detections first, then the weak ones, which only ever continue a
        # track. A person half hidden by someone in front gets a low score: that keeps their track alive
        # through the overlap, while a weak false detection on its own never becomes a track.
        spanning = _spanning(detections) if st.spanning_boxes else set()
        strong = [j for j, det in enumerate(detections) if det.score >= st.high_score and j not in spanning]
        weak = [
            j
            for j, det in enumerate(detections)
            if (det.score < st.high_score or j in spanning) and not any(_inside(det, detections[k]) for k in strong)
        ]
        pairs = self._match(list(range(len(self.tracks))), strong, detections)
        left_over = sorted(set(range(len(self.tracks))) - {i for i, _ in pairs})
        pairs += self._match(left_over, weak, detections)
        if st.relink_gate > 0 and st.mahalanobis and st.appearance:
            taken_tracks = {i for i, _ in pairs}
            taken_dets = {j for _, j in pairs}
            relinked = self._relink(
                [i for i, t in enumerate(self.tracks) if i not in taken_tracks and id(t) in previous],
                [j for j in strong if j not in taken_dets],
                detections,
            )
        else:
            relinked = []
        updated: list[Track] = []
        matched_dets = set()
        for i, j in relinked:
            track, det = self.tracks[i], detections[j]
            self._restart(track, det)
            matched_dets.add(j)
            updated.append(track)
        for i, j in pairs:
            track, det = self.tracks[i], detections[j]
            self._correct(track, det)
            matched_dets.add(j)
            updated.append(track)
        learn = [(self.tracks[i], j) for i, j in pairs + relinked]
        self._shared = set()
        if st.groups:
            updated += self._follow_groups([(detections[j], self.tracks[i]) for i, j in pairs], previous)
        unmatched = [j for j in strong if j not in matched_dets]
        if unmatched and self.lost:
            pairs = self._revive([detections[j] for j in unmatched])
            revived = [self.lost[i] for i, _ in pairs]
            taken = {i for i, _ in pairs}
            self.lost = [t for i, t in enumerate(self.lost) if i not in taken]
            for track, (_, j) in zip(revived, pairs, strict=True):
                det = detections[unmatched[j]]
                fx, fy = self._foot(det, track)
                track.state = np.array([fx, fy, 0.0, 0.0])
                track.cov = np.diag([(0.1 * det.height) ** 2] * 4)
                track.recent.clear()
                self.tracks.append(track)
                self._correct(track, det)
                learn.append((track, unmatched[j]))
                matched_dets.add(unmatched[j])
                updated.append(track)
        if st.appearance:
            # Boxes overlapping another one (only needed here, so only computed when colour is used).
            crowded = {
                j for j, det in enumerate(detections) if any(_overlap(det, o) for o in detections if o is not det)
            }
            for track, j in learn:
                # A box overlapping another one, or followed by a second track (two people in one box), holds
                # both people's colours: it does not teach the signature.
                if j not in crowded and id(detections[j]) not in self._shared:
                    self._learn(track, detections[j])
        for j in strong:
            if j in matched_dets:
                continue
            det = detections[j]
            fx, fy = self._foot(det, None)
            h = max(self._height(det), 1.0)
            track = Track(
                id=self._next_id,
                state=np.array([fx, fy, 0.0, 0.0]),
                cov=self._birth_cov(h, det.cyclist is True),
                width=self._width(det, h),
                height=h,
                misses=0,
                measured=(fx, fy),
                measured_height=h,
                height_measured=not (self._cut(det)[1] or self._cut(det)[3]),
                appearance=det.appearance if st.appearance else None,
            )
            track.remember()
            self._vote(track, det)
            self._next_id += 1
            self.tracks.append(track)
            updated.append(track)
        if bounds is not None:
            width, height = bounds
            # Gone when the predicted box is out of view (feet below the bottom edge are someone close by).
            left = [
                t
                for t in self.tracks
                if not t.matched and not (0 <= t.state[0] < width and t.state[1] - 0.5 * t.height < height)
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

    def _match(self, rows: list[int], cols: list[int], detections: Sequence[Detection]) -> list[tuple[int, int]]:
        """Optimal (track index, detection index) pairs among ``rows`` x ``cols`` within the gate.

        Distances are in box heights between the predicted and the detected reference points: the feet,
        or the top of the head where the frame cuts the box at the bottom (a person close to the camera).
        """
        if not rows or not cols:
            return []
        st = self.settings
        cost = np.full((len(rows), len(cols)), _UNASSIGNED)
        for a, i in enumerate(rows):
            track = self.tracks[i]
            tx, ty = track.foot
            gate_walking = min(st.gate + st.gate_growth * max(track.misses - 1, 0), st.gate_max)
            for b, j in enumerate(cols):
                det = detections[j]
                # Speed unknown and a cyclist in the pair: as far as a newly seen cyclist may have ridden.
                riding = track.hits == 1 and (track.called_cyclist or bool(det.cyclist))
                gate = gate_walking + st.cyclist_speed_sd * track.misses if riding else gate_walking
                dh = self._height(det)
                scale = max((track.height + dh) / 2, 1.0)
                fx, fy = self._foot(det, track)
                dist = math.hypot(fx - tx, fy - ty) / scale
                ratio = _height_ratio(dh, track.height)
                if dist > gate or ratio > 0.7:
                    continue
                if st.mahalanobis:
                    # How unlikely the detection is for this track's own uncertainty: a well-followed
                    # walker is not taken over by a neighbour half a step away, a new one may move far.
                    dx, dy = fx - tx, fy - ty
                    r = (st.measurement_noise * max(track.height, 1.0)) ** 2
                    if riding and not track.called_cyclist:
                        # Born a walker (its box without the bicycle): the position spread a cyclist's speed
                        # prior would have given it by now, beyond the walker's one it has.
                        r += max(st.cyclist_speed_sd**2 - st.speed_sd**2, 0.0) * (track.misses * track.height) ** 2
                    sxx, sxy, syy = track.cov[0, 0] + r, track.cov[0, 1], track.cov[1, 1] + r
                    d2 = (syy * dx * dx - 2 * sxy * dx * dy + sxx * dy * dy) / (sxx * syy - sxy * sxy)
                    if d2 > st.gate_sigmas**2:
                        continue
                    cost[a, b] = math.sqrt(d2) / st.gate_sigmas + 0.5 * ratio
                else:
                    cost[a, b] = dist + 0.5 * ratio
        if st.appearance:
            self._add_appearance(cost, [self.tracks[i] for i in rows], [detections[j] for j in cols])
        return [(rows[a], cols[b]) for a, b in assign(cost, _UNASSIGNED / 2)]

    def _add_appearance(self, cost: FloatArray, tracks: Sequence[Track], detections: Sequence[Detection]) -> None:
        """Add the colour distance where the motion gate is ambiguous: a track with two or more candidate
        boxes, or a box within the gates of two or more tracks. Elsewhere motion alone decides, so a
        person whose colours change (light, turning round) is not lost over it."""
        inside = cost < _UNASSIGNED / 2
        ambiguous = (inside.sum(axis=1, keepdims=True) > 1) | (inside.sum(axis=0, keepdims=True) > 1)
        w = self.settings.appearance_weight
        for a, b in zip(*np.nonzero(inside & ambiguous), strict=True):
            ta, db = tracks[a].appearance, detections[b].appearance
            if ta is not None and db is not None:
                cost[a, b] += w * distance(ta, db)

    def _cut(self, det: Detection) -> tuple[bool, bool, bool, bool]:
        """Which sides of the box (left, top, right, bottom) the frame's edge cuts."""
        if self._frame is None or not self.settings.frame_edges:
            return (False, False, False, False)
        w, h = self._frame
        b = self.settings.border
        return (det.x1 <= b, det.y1 <= b, det.x2 >= w - 1 - b, det.y2 >= h - 1 - b)

    def _height(self, det: Detection) -> float:
        """The person's height in pixels; a box the frame cuts at the top or bottom is at least as tall as it is
        wide / 0.45."""
        _, top, _, bottom = self._cut(det)
        if top or bottom:
            return max(det.height, det.width / 0.45)
        return det.height

    def _width(self, det: Detection, height: float) -> float:
        left, _, right, _ = self._cut(det)
        return max(det.width, 0.4 * height) if left or right else det.width

    def _foot(self, det: Detection, track: Track | None) -> tuple[float, float]:
        """Where the feet are, also when the frame cuts them off: a box is cut, a person is not."""
        left, top, right, bottom = self._cut(det)
        fx, fy = det.foot
        if bottom:
            height = max(track.expected_height(), det.height) if track is not None else self._height(det)
            fy = max(fy if top else det.y1 + height, det.y2 + self.settings.cut_feet * height)
        if left != right:
            # Someone half out of the frame at the side: the box's centre is the centre of the visible part,
            # which crawls in from the edge as they enter; the body's centre is half its width in from the
            # inner edge.
            width = max(det.width, track.width if track is not None else self._width(det, self._height(det)))
            fx = det.x2 - width / 2 if left else det.x1 + width / 2
        return fx, fy

    def _follow_groups(self, taken: Sequence[tuple[Detection, Track]], previous: set[int]) -> list[Track]:
        """Tracks that lost their own box because it merged with a neighbour's follow the merged box.

        People walking together (or passing each other) become one blob or one box; the track that did
        not get it would coast and be lost, and its crossing with it. While its predicted feet stay inside
        a matched box, it is updated with its own position clamped into that box (feet at the box's
        bottom when at the same depth: feet level and box as tall as the person), with a weak measurement
        that leaves its hits unchanged.
        """
        followed: list[Track] = []
        for track in self.tracks:
            if track.matched or track.hits < self.settings.min_hits:
                continue
            # ``previous``: ids of tracks that had a box last round, i.e. lost it in this one.
            if not (track.grouped or track.misses <= self.settings.group_join_frames or id(track) in previous):
                continue
            if track.age - track.own_seen > self.settings.max_coast_frames:
                # Following is coasting with a hint: a track with no box of its own for longer than a coasting
                # one may go is lost too (it can be revived where it vanished), or a box it once shared with a
                # neighbour carries it on as a twin of that neighbour, across every line they pass.
                track.grouped = False
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
            self._shared.add(id(best))
            ratio = _height_ratio(best.height, track.expected_height())
            same_depth = abs(best.y2 - ty) < 0.25 * track.height and ratio < self.settings.group_same_depth
            fy = best.y2 if same_depth else ty
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
                fx, fy = self._foot(det, track)
                # Where they stopped, or where walking on would have taken them.
                tx, ty = track.foot
                dist = min(math.hypot(fx - lx, fy - ly), math.hypot(fx - tx, fy - ty)) / scale
                ratio = _height_ratio(det.height, track.expected_height())
                if dist <= self.settings.revive_gate and ratio <= 0.7:
                    cost[i, j] = dist + 0.5 * ratio  # colour was tried here too and changed nothing: left out
        return assign(cost, _UNASSIGNED / 2)

    def _relink(self, rows: list[int], cols: list[int], detections: Sequence[Detection]) -> list[tuple[int, int]]:
        """(track index, detection index) pairs of confirmed tracks left without a box and sure boxes nobody
        claimed, close to where the track was last seen or is predicted (box heights, no Mahalanobis gate).

        At close range a box jumps by a good part of the person's height between detector runs (a turn, a
        stop, the frame or someone in front cutting the box): outside a steady track's own uncertainty, it
        would start a second track on the same person and split the crossing between two tracks."""
        st = self.settings
        rows = [i for i in rows if self.tracks[i].hits >= st.min_hits and self.tracks[i].recent]
        if not rows or not cols:
            return []
        cost = np.full((len(rows), len(cols)), _UNASSIGNED)
        for a, i in enumerate(rows):
            track = self.tracks[i]
            _, lx, ly = track.recent[-1]
            tx, ty = track.foot
            for b, j in enumerate(cols):
                det = detections[j]
                dh = self._height(det)
                scale = max((track.height + dh) / 2, 1.0)
                fx, fy = self._foot(det, track)
                dist = min(math.hypot(fx - lx, fy - ly), math.hypot(fx - tx, fy - ty)) / scale
                ratio = _height_ratio(dh, track.expected_height())
                if dist > st.relink_gate or ratio > 0.35:
                    continue
                if track.appearance is None or det.appearance is None:
                    continue  # position alone is not enough: that is how swaps start in a crowd
                colour = distance(track.appearance, det.appearance)
                if colour <= st.relink_colour:
                    cost[a, b] = dist + 0.5 * ratio + colour
        return [(rows[a], cols[b]) for a, b in assign(cost, _UNASSIGNED / 2)]

    def _restart(self, track: Track, det: Detection) -> None:
        """Continue ``track`` from ``det`` (relinked): speed from its last position, uncertainty of a new track."""
        fx, fy = self._foot(det, track)
        h = max(track.height, 1.0)
        age, lx, ly = track.recent[-1]
        frames = max(track.age - age, 1)
        track.state = np.array([fx, fy, (fx - lx) / frames, (fy - ly) / frames])
        track.cov = self._birth_cov(h, track.called_cyclist)
        self._correct(track, det)

    def _birth_cov(self, h: float, cyclist: bool = False) -> FloatArray:
        """A new (or relinked) track's uncertainty for a person ``h`` pixels tall: a tenth of the height in
        place, the expected spread of walking (or riding) speeds in speed."""
        st = self.settings
        sd = (st.cyclist_speed_sd if cyclist and st.cyclist_speed_sd > 0 else st.speed_sd) * h
        return np.diag([(0.1 * h) ** 2, (0.1 * h) ** 2, sd**2, sd**2])

    def _learn(self, track: Track, det: Detection) -> None:
        if det.appearance is None:
            return
        if track.appearance is None:
            track.appearance = det.appearance
        else:
            track.appearance = track.appearance + self.settings.appearance_rate * (det.appearance - track.appearance)

    def _correct(self, track: Track, det: Detection, weak: bool = False) -> None:
        r = ((3.0 if weak else 1.0) * self.settings.measurement_noise * max(track.height, det.height, 1.0)) ** 2
        fx, fy = self._foot(det, track)
        cut = self._cut(det)
        expected = track.expected_height()
        height_known = not (cut[1] or cut[3])  # where the frame cuts the box, its height is not the person's
        if (
            height_known
            and self.settings.hidden_feet
            and track.height_measured
            and track.hits >= 2
            and det.height < 0.8 * expected
        ):
            top = track.state[1] - expected
            if abs(det.y1 - top) < abs(det.y2 - track.state[1]):
                # The top fits, the bottom does not, and faster than walking away would shrink it: feet
                # hidden behind someone (or fading into the background). Put the feet where the expected
                # height says, rather than where the box ends.
                fy = det.y1 + expected
                height_known = False
        track.measured = (fx, fy)
        s = track.state
        p = track.cov
        # H = [I, 0]: the innovation covariance is the top-left block plus R.
        inn = np.array([fx - s[0], fy - s[1]])
        sm = p[:2, :2] + np.eye(2) * r
        gain = p[:, :2] @ np.linalg.inv(sm)
        track.state = s + gain @ inn
        track.cov = p - gain @ p[:2, :]
        if not (cut[0] or cut[2]):
            track.width += 0.3 * (det.width - track.width)
        track.observe_height(det.height, height_known)
        # Where the box does not show the whole person: the expected height, never below the box (observe_height)
        # nor below what its width says (as at birth, ``_height``). The band is sized by the person, not by the
        # part in view: someone walking in under the frame's top edge was given half their height's band.
        track.measured_height = det.height if height_known else max(track.height, self._height(det))
        track.hits += 1
        track.misses = 0
        track.matched = True
        track.grouped = weak
        if not weak:
            track.own_seen = track.age
        track.remember()
        self._vote(track, det)

    @staticmethod
    def _vote(track: Track, det: Detection) -> None:
        if det.cyclist is not None:
            track.class_votes += 1
            track.cyclist_votes += int(det.cyclist)
