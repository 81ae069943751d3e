"""Error analysis of the motion detector on the selection sets: which crossings it misses or adds, and why.

    python bench/motion_errors.py [--set KEY=VALUE ...] [--list] [--jobs N]

Runs the motion detector afresh on every selection scene of ``bench/select_rules.py`` (no cache: the point
is to compare versions of the detector; ``--set`` passes ``MotionDetector`` keyword arguments), counts with
the motion settings and prints the same per-group F1 and mean as the harness. ``--list`` prints every
missed crossing (false negative) and every extra one (false positive) with its scene, line and frame and a
cause read off the detections around that frame:

- missed: no blob near the person's feet (standing still and faded, too small, or cut off);
- merged: the blob at the person's feet also holds another annotated person's feet;
- split: several blobs inside the person's box;
- track: a blob of about the person's size was there (the tracker or the crossing rule lost it).

Extra crossings are classified by the track's blobs: shared with another person, a part of one, or nobody.
Hold-out sets are not reachable from here.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenes as sc  # noqa: E402
import select_rules as sr  # noqa: E402

from edge_agent.counting import evaluate as ev  # noqa: E402
from edge_agent.counting.detectors.motion import MotionDetector  # noqa: E402
from edge_agent.counting.lines import CountLine  # noqa: E402
from edge_agent.counting.pipeline import Crossing  # noqa: E402
from edge_agent.counting.tracking import Detection  # noqa: E402

Boxes = dict[int, list[Detection]]
TRAILS: dict[int, dict[int, tuple[float, float, float]]] = {}  # track id -> frame -> foot x, foot y, height


class RecordingPipeline(sr.CountingPipeline):
    """The pipeline, remembering where each track's blob was (to say what an extra crossing followed)."""

    def process(self, index: int, image: Any) -> list[Crossing]:
        out = super().process(index, image)
        for t in self.tracker.tracks:
            if t.misses == 0:
                TRAILS.setdefault(t.id, {})[index] = (*t.measured, t.measured_height)
        return out


sr.CountingPipeline = RecordingPipeline  # type: ignore[misc]


def detect_scene(scene: sc.Scene, kwargs: dict[str, Any]) -> Boxes:
    """Motion boxes per scene frame, the detector started on the scene's first frame (as a camera would be)."""
    motion = MotionDetector(**kwargs)
    source = sc.SceneSource(scene)
    found: Boxes = {}
    while (frame := source.read()) is not None:
        found[frame.index] = motion.detect(frame.image)
    source.close()
    return found


def truth_by_object(
    scene: sc.Scene, lines: list[CountLine], tracks: dict[int, list[ev.GtBox]]
) -> list[tuple[Crossing, int]]:
    out = []
    for obj, boxes in scene.boxes(tracks).items():
        for crossing in ev.truth_crossings({obj: boxes}, lines):
            out.append((crossing, obj))
    return out


def unmatched(counted: list[Crossing], truth: list[tuple[Crossing, int]], window: int = 10) -> tuple[list, list]:
    """Greedy nearest-frame matching per line and direction (close to the optimal one the score uses)."""
    pool = list(truth)
    extra = []
    for c in sorted(counted, key=lambda c: c.frame):
        best = min(
            (
                t
                for t in pool
                if t[0].line == c.line and t[0].direction == c.direction and abs(t[0].frame - c.frame) <= window
            ),
            key=lambda t: abs(t[0].frame - c.frame),
            default=None,
        )
        if best is None:
            extra.append(c)
        else:
            pool.remove(best)
    return pool, extra


def _inside(x: float, y: float, box: Any, pad: float = 0.0) -> bool:
    h = box.y2 - box.y1
    return box.x1 - pad * h <= x <= box.x2 + pad * h and box.y1 - pad * h <= y <= box.y2 + pad * h


def miss_cause(obj: int, frame: int, gt: dict[int, dict[int, ev.GtBox]], boxes: Boxes) -> str:
    me = gt[obj].get(frame)
    if me is None:
        return "nobox"
    others = [b[frame] for o, b in gt.items() if o != obj and frame in b]
    causes = Counter()
    for f in range(frame - 2, frame + 3):
        dets = boxes.get(f, [])
        inside = [d for d in dets if _inside((d.x1 + d.x2) / 2, (d.y1 + d.y2) / 2, me)]
        feet = [d for d in dets if _inside((d.x1 + d.x2) / 2, d.y2, me, 0.15)]
        if not inside and not feet:
            causes["missed"] += 1
        elif len(inside) >= 2:
            causes["split"] += 1
        elif any(any(_inside(o.x1 * 0.5 + o.x2 * 0.5, o.y2, d, 0.05) for o in others) for d in feet or inside):
            causes["merged"] += 1
        else:
            d = (feet or inside)[0]
            if d.y2 - d.y1 < 0.6 * (me.y2 - me.y1) or abs(d.y2 - me.y2) > 0.3 * (me.y2 - me.y1):
                causes["part"] += 1
            else:
                causes["track"] += 1
    return causes.most_common(1)[0][0]


def extra_cause(trail: dict[int, tuple[float, float, float]], frame: int, gt: dict[int, dict[int, ev.GtBox]]) -> str:
    """What the track that made an extra crossing was following around that frame."""
    causes = Counter()
    for f in range(frame - 3, frame + 4):
        if f not in trail:
            continue
        x, y, _ = trail[f]
        people = [b[f] for b in gt.values() if f in b and _inside(x, y, b[f], 0.1)]
        if not people:
            causes["ghost"] += 1
        elif len(people) >= 2:
            causes["group"] += 1
        elif abs(y - people[0].y2) > 0.25 * (people[0].y2 - people[0].y1):
            causes["part-feet"] += 1
        else:
            obj = next(o for o, b in gt.items() if b.get(f) is people[0])
            causes[f"person:{obj}"] += 1
    return causes.most_common(1)[0][0] if causes else "untracked"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="MotionDetector KEY=VALUE (JSON value)")
    parser.add_argument("--track", action="append", default=[], help="pipeline/tracker KEY=VALUE override")
    parser.add_argument("--list", action="store_true", help="every missed and extra crossing")
    parser.add_argument("--jobs", type=int, default=2)
    sc.add_spent_option(parser)
    args = parser.parse_args()
    if not sc.VIDEO.exists():
        print("SKIP: ../shared evaluation data absent")
        return 0
    kwargs = {k: sr.parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    overrides = {k: sr.parse_value(v) for k, v in (item.split("=", 1) for item in args.track)}
    tracks = ev.load_mot(sc.GT)
    sets = sr.selection_sets(tracks) + sc.spent_sets(args.spent, tracks)
    scenes = list(dict.fromkeys(ls.scene for _, ls in sets))
    with ProcessPoolExecutor(args.jobs) as pool:
        found = dict(zip(scenes, pool.map(detect_scene, scenes, [kwargs] * len(scenes)), strict=True))
    matched: dict[str, sc.Tally] = defaultdict(sc.Tally)
    causes: dict[str, Counter[str]] = defaultdict(Counter)
    for group, ls in sets:
        boxes = found[ls.scene]
        TRAILS.clear()
        events = sr.count(ls.scene, ls.lines, boxes, overrides, None, "motion")
        s = ev.score_events(events, ls.truth, ls.lines)
        matched[group].add(s)
        if not args.list:
            continue
        gt = {o: {b.frame: b for b in bs} for o, bs in ls.scene.boxes(tracks).items()}
        truth = truth_by_object(ls.scene, ls.lines, tracks)
        missing, extra = unmatched(events, truth)
        for crossing, obj in missing:
            cause = miss_cause(obj, crossing.frame, gt, boxes)
            causes["FN"][cause] += 1
            causes[f"FN-{group}"][cause] += 1
            print(
                f"FN {group:5} {ls.name:14} {crossing.line:10} {crossing.direction:3} f{crossing.frame:4} obj{obj:3} {cause}"
            )
        for crossing in extra:
            cause = extra_cause(TRAILS.get(crossing.track, {}), crossing.frame, gt)
            if cause.startswith("person:"):
                obj = int(cause.split(":")[1])
                mine = [t for t, o in truth if o == obj and t.line == crossing.line]
                same = [t for t in mine if t.direction == crossing.direction]
                cause = "double" if same else ("reverse" if mine else "nocross")
            causes["FP"][cause] += 1
            causes[f"FP-{group}"][cause] += 1
            print(
                f"FP {group:5} {ls.name:14} {crossing.line:10} {crossing.direction:3} f{crossing.frame:4} track{crossing.track} {cause}"
            )
    for name, counter in sorted(causes.items()):
        print(name, dict(counter.most_common()))
    result = {}
    for group, tally in matched.items():
        result[group] = round(tally.f1, 4)
        print(
            f"{group:6} F1 {tally.f1:.3f}  count error {tally.count_error:.1%}  truth {tally.truth}  counted {tally.counted}"
        )
    print(f"mean F1 {sum(result.values()) / len(result):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
