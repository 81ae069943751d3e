"""Error analysis of the counter on the selection sets: every false and missed crossing, with its cause.

    python bench/error_analysis.py [--set KEY=VALUE ...] [--group zoom] [--list]

Runs the same material as ``bench/select_rules.py`` (selection seeds only: the hold-out sets are not
reachable from here either), records which track counted what and where every track's feet were, and
follows each annotated person (or generated walker). A counted event that matches no true crossing (same
line and direction within 10 frames) is a false positive, a true crossing matched by none a false negative;
each is put into one cause:

- ``timing``: the same person and line/direction was counted, but more than 10 frames off (a pair of FP+FN
  that leaves the count right);
- ``direction``: counted in the other direction;
- ``double``: a second count of one true crossing (a fragmented track counted twice, or two tracks on one
  person);
- ``no-true-crossing``: counted for a person who did not cross (pacing or standing in the band, feet jumping
  when the box is cut, a track that switched to someone else); ``false-track`` when the track follows nobody;
- ``no-track``: nobody was tracked on the person around the crossing (missed detections, unconfirmed);
- ``fragment``: the person's crossing is split between several tracks, none counted it;
- ``tracked-not-counted``: one track followed the person across and the rule counted nothing.

Prints the tally of causes per group, whether the group over- or under-counts, and with ``--list`` each
error (scene, line, frame, direction, track, person).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import scenes as sc  # noqa: E402
import select_rules as sr  # noqa: E402

from edge_agent.counting import evaluate as ev  # noqa: E402
from edge_agent.counting import lines as lines_module  # noqa: E402
from edge_agent.counting.lines import CountLine, CrossingCounter  # noqa: E402
from edge_agent.counting.pipeline import Crossing  # noqa: E402
from edge_agent.counting.tracking import assign  # noqa: E402
from tests.counting import ground  # noqa: E402

WINDOW = 10
# Feet within this share of the person's height of a track's feet: the track is following that person.
FOLLOW = 0.5

# (track id, frame) -> (x, y, height) of what the crossing rule saw, for the run being analysed.
_SEEN: dict[int, dict[int, tuple[float, float, float]]] = defaultdict(dict)
_original_observe = CrossingCounter.observe


def _observe(
    self: CrossingCounter, obj: int, x: float, y: float, box_height: float, frame: int = 0, arrived: bool = True
) -> Any:
    if len(self.lines) and self.margin != sc.TRUTH_MARGIN:  # the counter's own, not the truth's
        _SEEN[obj][frame] = (x, y, box_height)
    return _original_observe(self, obj, x, y, box_height, frame, arrived)


lines_module.CrossingCounter.observe = _observe  # type: ignore[method-assign]


@dataclass(frozen=True)
class TrueCrossing:
    person: int
    frame: int
    line: str
    direction: str


def true_crossings(people: dict[int, list[ev.GtBox]], lines: list[CountLine]) -> list[TrueCrossing]:
    counter = CrossingCounter(list(lines), margin=sc.TRUTH_MARGIN)  # not recorded: see _observe
    out = []
    for person, boxes in people.items():
        for box in boxes:
            for line, direction, _ in counter.observe(person, (box.x1 + box.x2) / 2, box.y2, box.y2 - box.y1):
                out.append(TrueCrossing(person, box.frame, line, direction))
        counter.forget(person)
    return out


def assignment(people: dict[int, dict[int, ev.GtBox]]) -> dict[int, dict[int, int]]:
    """frame -> {track: person}: one to one per frame (optimal), feet within ``FOLLOW`` of the height."""
    frames = sorted({f for seen in _SEEN.values() for f in seen})
    out: dict[int, dict[int, int]] = {}
    for f in frames:
        tracks = [(t, seen[f]) for t, seen in _SEEN.items() if f in seen]
        here = [(p, boxes[f]) for p, boxes in people.items() if f in boxes]
        cost = []
        for _, (x, y, _h) in tracks:
            row = []
            for _, b in here:
                d = math.hypot((b.x1 + b.x2) / 2 - x, b.y2 - y) / (b.y2 - b.y1)
                row.append(d if d < FOLLOW else 1e6)
            cost.append(row)
        pairs = assign(cost, FOLLOW) if tracks and here else []
        out[f] = {tracks[a][0]: here[b][0] for a, b in pairs}
    return out


def who(track: int, frames: range, owner: dict[int, dict[int, int]]) -> int | None:
    """The person a track followed most during ``frames`` (None: nobody)."""
    votes: Counter[int] = Counter(owner[f][track] for f in frames if f in owner and track in owner[f])
    return votes.most_common(1)[0][0] if votes else None


def followers(person: int, frames: range, owner: dict[int, dict[int, int]]) -> Counter[int]:
    return Counter(t for f in frames if f in owner for t, p in owner[f].items() if p == person)


def match(counted: list[Crossing], truth: list[TrueCrossing]) -> tuple[list[Crossing], list[TrueCrossing]]:
    """Unmatched counted and true events (the same one-to-one matching as ``evaluate.match_events``)."""
    fp: list[Crossing] = []
    fn: list[TrueCrossing] = []
    keys = {(c.line, c.direction) for c in counted} | {(t.line, t.direction) for t in truth}
    for key in keys:
        cs = [c for c in counted if (c.line, c.direction) == key]
        ts = [t for t in truth if (t.line, t.direction) == key]
        cost = [[float(abs(c.frame - t.frame)) if abs(c.frame - t.frame) <= WINDOW else 1e6 for t in ts] for c in cs]
        pairs = assign(cost, float(WINDOW)) if cs and ts else []
        fp += [c for i, c in enumerate(cs) if i not in {a for a, _ in pairs}]
        fn += [t for j, t in enumerate(ts) if j not in {b for _, b in pairs}]
    return fp, fn


def analyse(
    group: str, name: str, people_list: dict[int, list[ev.GtBox]], lines: list[CountLine], counted: list[Crossing]
) -> list[tuple[str, str, str]]:
    """(kind FP/FN, cause, description) of every error of one line set."""
    people = {p: {b.frame: b for b in boxes} for p, boxes in people_list.items()}
    truth = true_crossings(people_list, lines)
    fp, fn = match(counted, truth)
    owner = assignment(people)
    out = []
    fn_left = list(fn)
    for c in sorted(fp, key=lambda c: c.frame):
        person = who(c.track, range(c.frame - 6, c.frame + 7), owner)
        same = [t for t in fn_left if t.person == person and t.line == c.line]
        cause = "false-track" if person is None else "no-true-crossing"
        if person is not None:
            hits = [t for t in truth if t.person == person and t.line == c.line]
            if any(t.direction == c.direction for t in same):
                cause = "timing"
                t = min((t for t in same if t.direction == c.direction), key=lambda t: abs(t.frame - c.frame))
                fn_left.remove(t)
                out.append(("FN", "timing", f"{name} {t.line} f{t.frame} {t.direction} person {t.person}"))
            elif same:
                cause = "direction"
            elif any(t.direction == c.direction for t in hits):
                cause = "double"
            if cause in ("no-true-crossing", "double"):
                persons = {owner[f].get(c.track) for f in _SEEN[c.track] if f in owner} - {None}
                cause += ":swap" if len(persons) > 1 else ":same-person"
                cause += ":" + _how(c, lines, people.get(person, {}) if person is not None else {})
        out.append(("FP", cause, f"{name} {c.line} f{c.frame} {c.direction} track {c.track} person {person}"))
    for t in fn_left:
        around = range(t.frame - 15, t.frame + 16)
        tracks = followers(t.person, around, owner)
        if not tracks:
            cause = "no-track"
        elif len(tracks) > 1 and tracks.most_common(1)[0][1] < 0.8 * sum(tracks.values()):
            cause = "fragment"
        else:
            cause = "tracked-not-counted:" + _why(tracks.most_common(1)[0][0], t, lines, owner, people[t.person])
        out.append(("FN", cause, f"{name} {t.line} f{t.frame} {t.direction} person {t.person} tracks {dict(tracks)}"))
    return out


def _how(c: Crossing, lines: list[CountLine], person: dict[int, ev.GtBox]) -> str:
    """How a false count came about: the track's side before (birth) or after (death) was never confirmed,
    and whether the person's annotated feet got past the band on either side during the track's life."""
    line = next(x for x in lines if x.name == c.line)
    seen = sorted(_SEEN[c.track].items())
    want = 1 if c.direction == "in" else -1
    sides = [(f, line.signed_distance(x, y) / (0.275 * h)) for f, (x, y, h) in seen]
    parts = []
    if not any(v * want <= -1 for f, v in sides if f <= c.frame):
        parts.append("birth")
    if not any(v * want >= 1 for _, v in sides):
        parts.append("death")
    life = range(seen[0][0], seen[-1][0] + 1)
    gt = [
        line.signed_distance((b.x1 + b.x2) / 2, b.y2) / (0.25 * (b.y2 - b.y1)) for f, b in person.items() if f in life
    ]
    parts.append(
        "gt" + ("B" if any(v * want <= -1 for v in gt) else "-") + ("A" if any(v * want >= 1 for v in gt) else "-")
    )
    if gt:
        track_before = min(v * want for f, v in sides if f <= c.frame)
        track_after = max(v * want for _, v in sides)
        parts.append(
            f"(track {track_before:+.1f}..{track_after:+.1f} gt {min(v * want for v in gt):+.1f}..{max(v * want for v in gt):+.1f})"
        )
    return "+".join(parts)


def _why(
    track: int, t: TrueCrossing, lines: list[CountLine], owner: dict[int, dict[int, int]], person: dict[int, ev.GtBox]
) -> str:
    """Why a track that followed a person across a line did not count: where it started and ended."""
    line = next(x for x in lines if x.name == t.line)
    seen = sorted(_SEEN[track].items())
    band = 0.275
    s0 = line.signed_distance(seen[0][1][0], seen[0][1][1]) / (band * seen[0][1][2])
    s1 = line.signed_distance(seen[-1][1][0], seen[-1][1][1]) / (band * seen[-1][1][2])
    persons = {owner[f].get(track) for f, _ in seen if f in owner} - {None}
    sides = [line.signed_distance(x, y) / (band * h) for _, (x, y, h) in seen]
    pos = [line.position(x, y) for _, (x, y, h) in seen]
    want = 1 if t.direction == "in" else -1
    before = [v for v in sides if v * want <= -1]
    after = [v for v in sides if v * want >= 1]
    parts = []
    if len(persons) > 1:
        parts.append("swap")
    if not before:
        parts.append(f"born-in-band({s0:+.1f})" if abs(s0) < 1 else f"born-near({s0:+.1f})")
    if not after:
        parts.append(f"ended-in-band({s1:+.1f})")
    if before and after and not any(0 <= p <= 1 for p in pos):
        parts.append("outside-segment")
    near = range(t.frame - 30, t.frame + 31)
    gt = [
        line.signed_distance((b.x1 + b.x2) / 2, b.y2) / (0.25 * (b.y2 - b.y1)) for f, b in person.items() if f in near
    ]
    mine = [v for (f, _), v in zip(seen, sides, strict=True) if f in near]
    if gt and mine:
        low, high = min(v * want for v in gt), max(v * want for v in gt)
        if low > -1.3 or high < 1.3:
            parts.append("marginal")
        parts.append(
            f"(track {min(v * want for v in mine):+.1f}..{max(v * want for v in mine):+.1f} gt {low:+.1f}..{high:+.1f})"
        )
    return "+".join(parts) or "other"


def _cached(scene: sc.Scene) -> bool:
    path = sr.CACHE / f"{scene.key}.pkl"
    try:
        boxes = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError):
        return False
    return all(f in boxes for f in range(scene.start, scene.stop))


def _coarse(kind: str, cause: str) -> str:
    """The cause without the per-event detail, for the summary table."""
    c = cause.split("(")[0]
    if kind == "FN" and c.startswith("tracked-not-counted"):
        if "marginal" in c:
            return "FN tracked; the person barely got past the truth's band"
        for key, text in (
            ("swap", "identity swap"),
            ("born", "track born in/near the band"),
            ("ended", "ended in band"),
        ):
            if key in c:
                return f"FN tracked; {text}"
        return "FN tracked; other (segment end, short excursion)"
    if kind == "FP" and c.startswith(("no-true-crossing", "double")):
        base = "FP double count" if c.startswith("double") else "FP no true crossing"
        if ":swap" in c:
            return f"{base}; identity swap"
        if "birth" in c or "death" in c:
            return f"{base}; birth/death-side rule"
        return f"{base}; same person, track feet past the band, true feet not"
    return f"{kind} {c}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE override (JSON value)")
    parser.add_argument("--group", action="append", default=[], help="only these groups")
    parser.add_argument("--list", action="store_true", help="print every error")
    parser.add_argument("--cached-only", action="store_true", help="skip scenes whose detections are not cached")
    sc.add_spent_option(parser)
    args = parser.parse_args()
    if not sc.VIDEO.exists() or not sc.MODEL.exists():
        print("SKIP: ../shared evaluation data or model absent")
        return 0
    overrides = {k: sr.parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    tracks = ev.load_mot(sc.GT)
    sets = sr.selection_sets(tracks) + sc.spent_sets(args.spent, tracks)
    causes: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    signed: Counter[str] = Counter()
    listing: list[str] = []
    for group, ls in sets:
        if args.group and group not in args.group:
            continue
        if args.cached_only and not _cached(ls.scene):
            continue
        _SEEN.clear()
        events = sr.count(ls.scene, ls.lines, sr.detections(ls.scene), overrides, None)
        for kind, cause, text in analyse(group, ls.name, ls.scene.boxes(tracks), ls.lines, events):
            causes[group][(kind, cause)] += 1
            listing.append(f"{group:8} {kind} {cause:20} {text}")
        signed[group] += len(events) - len(ls.truth)
    for cam_name, camera in ground.CAMERAS.items():
        group = f"g-{cam_name}"
        if args.group and group not in args.group:
            continue
        for seed in sr.GROUND_SEEDS:
            gs = ground.random_scene(camera, seed)
            lines = ground.random_ground_lines(gs, seed, 8)
            people: dict[int, list[ev.GtBox]] = defaultdict(list)
            for frame in range(gs.frames):
                for k, box, _ in gs.true_boxes(frame):
                    people[k].append(ev.GtBox(frame, *box))
            _SEEN.clear()
            events = sr.count_ground(gs, lines, overrides, None)
            for kind, cause, text in analyse(group, f"s{seed}", dict(people), lines, events):
                causes[group][(kind, cause)] += 1
                listing.append(f"{group:8} {kind} {cause:20} {text}")
            signed[group] += len(events) - len(gs.truth(lines))
    if args.list:
        print("\n".join(listing))
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for group, tally in causes.items():
        for (kind, cause), n in tally.items():
            table[_coarse(kind, cause)][group] += n
    groups = list(causes)
    print(f"{'cause':62}" + "".join(f"{g[:7]:>8}" for g in groups) + "   total")
    for cause, row in sorted(table.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"{cause:62}" + "".join(f"{row[g]:8d}" for g in groups) + f"{sum(row.values()):8d}")
    print(f"{'counted - truth':62}" + "".join(f"{signed[g]:+8d}" for g in groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
