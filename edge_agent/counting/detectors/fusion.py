"""Person and bicycle boxes from a detector become the objects that are counted: pedestrians and cyclists.

A person riding a bicycle is one cyclist, not a pedestrian plus a bicycle: the pair becomes one box, the
union of the two, whose bottom is the bottom of the wheels (where the cyclist touches the ground, as a
pedestrian's feet do). A bicycle with no rider found on it is dropped: parked bicycles stand for hours
beside paths and must never become crossings, and a moving bicycle whose rider the detector misses in one
frame is still counted through the frames where the rider is found (the tracker bridges the gap).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.counting.tracking import Detection

Box = tuple[float, float, float, float]  # x1, y1, x2, y2

# How much of the smaller of (the person's lower half, the bicycle) the two must share to be a rider.
MIN_SHARED = 0.3
# How far, in person heights, a rider's feet may reach below the wheels (box noise, a foot put down).
FEET_BELOW_WHEELS = 0.15


def ride_score(person: Box, bicycle: Box) -> float:
    """How well ``person`` sits on ``bicycle``: the overlap ratio when riding is plausible, else 0.

    Riding means: the bicycle overlaps the person's lower half (legs on the pedals), the person's centre
    is above the bicycle (not someone passing beside it), the head is above the bicycle's top, and the
    person's feet are not clearly below the wheels (a pedestrian walking in front of a parked bicycle is
    nearer the camera, so lower in the image).
    """
    px1, py1, px2, py2 = person
    bx1, by1, bx2, by2 = bicycle
    height = py2 - py1
    if height <= 0 or bx2 <= bx1 or by2 <= by1:
        return 0.0
    centre = (px1 + px2) / 2
    if not bx1 <= centre <= bx2 or py1 >= by1 or py2 > by2 + FEET_BELOW_WHEELS * height:
        return 0.0
    mid = (py1 + py2) / 2
    iw = min(px2, bx2) - max(px1, bx1)
    ih = min(py2, by2) - max(mid, by1)
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((px2 - px1) * (py2 - mid), (bx2 - bx1) * (by2 - by1))
    shared = iw * ih / max(smaller, 1e-9)
    return shared if shared >= MIN_SHARED else 0.0


def fuse_cyclists(people: Sequence[tuple[Box, float]], bicycles: Sequence[tuple[Box, float]]) -> list[Detection]:
    """Pedestrians and cyclists from (box, score) of people and bicycles, one rider per bicycle.

    Pairs are formed best first, so of two people overlapping one bicycle the one sitting on it rides it
    and the other stays a pedestrian. Lone bicycles are dropped (see the module's docstring).
    """
    pairs = sorted(
        ((ride_score(p, b), i, j) for i, (p, _) in enumerate(people) for j, (b, _) in enumerate(bicycles)),
        reverse=True,
    )
    rider_of: dict[int, int] = {}
    taken: set[int] = set()
    for score, i, j in pairs:
        if score <= 0:
            break
        if i not in rider_of and j not in taken:
            rider_of[i] = j
            taken.add(j)
    out: list[Detection] = []
    for i, ((x1, y1, x2, y2), score) in enumerate(people):
        if i not in rider_of:
            out.append(Detection(x1, y1, x2, y2, score, cyclist=False))
            continue
        (bx1, by1, bx2, by2), bike_score = bicycles[rider_of[i]]
        # The union, with its bottom at the wheels: the ground point the crossing rule follows.
        out.append(Detection(min(x1, bx1), min(y1, by1), max(x2, bx2), by2, max(score, bike_score), cyclist=True))
    return out
