"""Selection harness for the tracker and the crossing rule: the selection sets of ``bench/scenes.py`` on
cached detections, so a change to the rules is scored on every set in seconds.

    python bench/select_rules.py [--set KEY=VALUE ...] [--detect-every N]

Detections of NanoDet-m (full frame, every frame, low score threshold) are computed once per scene and
cached under ``$XDG_CACHE_HOME/neighbourhood-hub/detections`` (boxes only, never pixels), and so are the colour
signatures of those boxes (36 numbers each; ``--set appearance=false`` scores motion alone). ``--set`` overrides
``PipelineSettings`` or ``TrackerSettings`` fields by name. Prints F1 and count error per group (full view,
short clips, zoom crops, zoomed short clips, the named lines of earlier rounds) and their mean: the rule
for keeping a change is that the mean improves and no group loses more than 0.02 F1. The hold-out sets
are deliberately not reachable from here: only ``bench/counting.py`` reports them. ``--spent SEED ...`` adds
hold-out seeds of earlier rounds (read once, bench/scenes.py ``SPENT_SEEDS``) as more selection material,
scored as groups of their own (``sp-zoom`` ...).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import inspect  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenes as sc  # noqa: E402

from edge_agent.counting import evaluate as ev  # noqa: E402
from edge_agent.counting.detectors.motion import MotionDetector  # noqa: E402
from edge_agent.counting.detectors.onnx import OnnxDetector  # noqa: E402
from edge_agent.counting.factory import WEAK_SHARE, settings_for  # noqa: E402
from edge_agent.counting.lines import CountLine  # noqa: E402
from edge_agent.counting.pipeline import CountingPipeline, Crossing, PipelineSettings  # noqa: E402
from edge_agent.counting.tracking import Detection  # noqa: E402
from tests.counting import ground  # noqa: E402

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neighbourhood-hub" / "detections"
CACHE_SCORE = 0.15
GROUND_SEEDS = (1, 2, 3, 4, 5, 6)
# The rate the clip's file states (what `edge-agent count` uses); PETS 2009 was recorded at 7 frames/s
# (seqinfo.ini). ``--set video_fps=7`` runs the clip at its true rate.
VIDEO_FPS = 10.0


class CachedDetector:
    """Replays cached NanoDet boxes for the frame the harness is at (``frame`` is set before each call)."""

    name = "onnx"
    classifies = True
    noise_allowance = OnnxDetector.noise_allowance

    def __init__(
        self,
        boxes: dict[int, list[Detection]],
        score_threshold: float,
        signatures: dict[int, list[Any]] | None = None,
    ) -> None:
        self.boxes = boxes
        self.frame = 0
        self.threshold = score_threshold
        self.signed = signatures is not None
        if signatures is not None:
            # The colour signatures computed once from the scene's frames, in the order of the cached boxes.
            self.boxes = {
                f: [dataclasses.replace(d, appearance=a) for d, a in zip(ds, signatures[f], strict=True)]
                for f, ds in boxes.items()
            }

    def detect(self, image: Any, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        return [d for d in self.boxes.get(self.frame, []) if d.score >= self.threshold]


def replay(
    boxes: dict[int, list[Detection]],
    kind: str = "onnx",
    signed: dict[int, list[Any]] | None = None,
    threshold: float = WEAK_SHARE * 0.4,
) -> CachedDetector:
    """A replay of ``kind``'s boxes that the pipeline takes for that detector (the motion detector's boxes
    carry no class and their own foot noise)."""
    detector = CachedDetector(boxes, threshold, signed)
    if kind == "motion":
        detector.name, detector.classifies, detector.noise_allowance = "motion", False, MotionDetector.noise_allowance
    return detector


def signatures(scene: sc.Scene, boxes: dict[int, list[Detection]]) -> dict[int, list[Any]]:
    """Colour signatures (appearance.describe) of ``boxes`` (scene frames, as from ``detections``), from the
    scene's frames, cached next to the boxes: only the 36 numbers per box, never pixels."""
    from edge_agent.counting import appearance

    version = hashlib.sha256(Path(inspect.getfile(appearance)).read_bytes()).hexdigest()[:12]
    path = CACHE / f"appearance_{version}_{scene.key}.pkl"
    if path.exists():
        cached: dict[int, list[Any]] = pickle.loads(path.read_bytes())
    else:
        everything = detections(dataclasses.replace(scene, start=0, stop=795))
        cached = {}
        source = sc.SceneSource(dataclasses.replace(scene, start=0, stop=795))
        while (frame := source.read()) is not None:
            cached[frame.index] = [appearance.describe(frame.image, d) for d in everything.get(frame.index, [])]
        source.close()
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(cached))
    return {f: cached.get(f + scene.start, [None] * len(ds)) for f, ds in boxes.items()}


def detections(scene: sc.Scene, kind: str = "onnx") -> dict[int, list[Detection]]:
    """Boxes per scene frame, from the cache or computed now (absolute frames of the clip, crop-specific).

    The motion detector learns its background from the frames it sees: a stretch of the clip is detected
    from its own first frame, as a camera switched on then would."""
    from edge_agent.counting.detectors.onnx import OnnxDetector

    if kind == "motion":
        # The detector's own source is part of the key: a changed detector must not replay an older one's boxes.
        version = hashlib.sha256(Path(inspect.getfile(MotionDetector)).read_bytes()).hexdigest()[:12]
        path = CACHE / f"motion_{version}_{scene.key}_{scene.start}_{scene.stop}.pkl"
        if path.exists():
            return pickle.loads(path.read_bytes())  # type: ignore[no-any-return]
        motion = MotionDetector()
        source = sc.SceneSource(scene)
        found: dict[int, list[Detection]] = {}
        while (frame := source.read()) is not None:
            found[frame.index] = motion.detect(frame.image)
        source.close()
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(found))
        return found
    path = CACHE / f"{scene.key}.pkl"
    cached: dict[int, list[Detection]] = {}
    if path.exists():
        cached = pickle.loads(path.read_bytes())
    missing = [f for f in range(scene.start, scene.stop) if f not in cached]
    if missing:
        detector = OnnxDetector(sc.MODEL, score_threshold=CACHE_SCORE)
        source = sc.SceneSource(dataclasses.replace(scene, start=0, stop=795))
        wanted = set(missing)
        while (frame := source.read()) is not None:
            if frame.index in wanted:
                cached[frame.index] = detector.detect(frame.image)
        source.close()
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(cached))
    return {f - scene.start: cached[f] for f in range(scene.start, scene.stop)}


def count(
    scene: sc.Scene,
    lines: list[CountLine],
    boxes: dict[int, list[Detection]],
    overrides: dict[str, Any],
    every: int,
    kind: str = "onnx",
    phase: int = 0,
) -> list[Crossing]:
    threshold = float(overrides.get("low_score", WEAK_SHARE * 0.4))
    use = overrides.get("appearance", PipelineSettings.appearance)
    signed = signatures(scene, boxes) if use and kind == "onnx" else None
    detector = replay(boxes, kind, signed, threshold)
    fps = float(overrides.get("video_fps", VIDEO_FPS))
    return run_pipeline(detector, lines, scene.size, scene.stop - scene.start, fps, overrides, every, kind, phase)


def count_ground(
    scene: ground.GroundScene, lines: list[CountLine], overrides: dict[str, Any], every: int, phase: int = 0
) -> list[Crossing]:
    threshold = float(overrides.get("low_score", WEAK_SHARE * 0.4))
    detector = CachedDetector({f: scene.detections(f) for f in range(scene.frames)}, threshold)
    return run_pipeline(detector, lines, scene.camera.size, scene.frames, scene.fps, overrides, every, "onnx", phase)


def run_pipeline(
    detector: CachedDetector,
    lines: list[CountLine],
    size: tuple[int, int],
    frames: int,
    fps: float,
    overrides: dict[str, Any],
    every: int,
    kind: str = "onnx",
    phase: int = 0,
) -> list[Crossing]:
    """``phase``: frames before it are not looked at, so the detector's every-k-th frames are another draw of
    the same scene (which frames a camera's detector happens to see is chance, not something to tune on)."""
    settings = settings_for(kind, every)
    pipe_fields = {f.name for f in dataclasses.fields(settings)}
    settings = dataclasses.replace(
        settings, roi=False, motion_gate=False, **{k: v for k, v in overrides.items() if k in pipe_fields}
    )
    # The frames here are blank: the pipeline must not take signatures from them. They come with the cached
    # boxes (PETS) or not at all (ground scenes have no pixels, and the tracker then uses motion alone).
    use = settings.appearance and settings.model_boxes
    settings = dataclasses.replace(settings, appearance=False)
    if "noise_allowance" in overrides:
        detector.noise_allowance = float(overrides["noise_allowance"])
    pipeline = CountingPipeline(lines, detector, fps, settings)
    # Only where signatures came with the boxes: on blank frames every box would get the same (black) one.
    pipeline.tracker.settings.appearance = use and detector.signed
    for name, value in overrides.items():
        for target in (pipeline.tracker.settings, pipeline.counter):
            if hasattr(target, name):
                setattr(target, name, value)
    blank = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    events: list[Crossing] = []
    for index in range(frames):
        detector.frame = index
        wanted = index >= phase and pipeline.wants_image(index)
        events += pipeline.process(index, blank if wanted else None)
    return events + pipeline.flush()


def selection_sets(tracks: Any, truth_margin: float = sc.TRUTH_MARGIN) -> list[tuple[str, Any]]:
    """Every selection set of the video: the seeded scene variety and the named lines of earlier rounds."""
    import counting as named  # bench/counting.py: the named lines of earlier rounds are selection lines too

    sets: list[tuple[str, Any]] = list(sc.scene_sets(sc.SELECTION_SEEDS, tracks, truth_margin))
    full = sc.Scene("full")
    for group_lines in (named.ISSUE_LINES, named.HELD_OUT, named.FRESH, named.FRESH_2):
        lines = [CountLine(n, *p) for n, p in group_lines.items()]
        sets.append(("named", sc.line_set("named", full, lines, tracks, truth_margin)))
    return sets


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE override (JSON value)")
    parser.add_argument("--detect-every", type=int, default=None)
    parser.add_argument("--detector", choices=["onnx", "motion"], default="onnx")
    parser.add_argument("--verbose", action="store_true", help="per line set")
    parser.add_argument("--ground-only", action="store_true", help="only the generated ground-plane scenes")
    parser.add_argument(
        "--ground-fps", type=float, default=25.0, help="frame rate of the generated ground-plane scenes (default 25)"
    )
    parser.add_argument(
        "--ground-cyclists",
        type=float,
        default=0.0,
        help="also score ground-plane scenes where this share of people ride bicycles (groups gc-*; default 0: none)",
    )
    parser.add_argument(
        "--phases",
        type=int,
        default=1,
        help="pool N draws of the detector's frames (phase 0..N-1; one frame later each) per set (default 1)",
    )
    parser.add_argument(
        "--truth-margin", type=float, default=sc.TRUTH_MARGIN, help="hysteresis of the truth, box heights"
    )
    sc.add_spent_option(parser)
    args = parser.parse_args()
    if not sc.VIDEO.exists() or not sc.MODEL.exists():
        print("SKIP: ../shared evaluation data or model absent")
        return 0
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    tracks = ev.load_mot(sc.GT)
    sets = (
        []
        if args.ground_only
        else selection_sets(tracks, args.truth_margin) + sc.spent_sets(args.spent, tracks, args.truth_margin)
    )
    matched: dict[str, sc.Tally] = defaultdict(sc.Tally)
    # The motion detector looks at every frame: there is one draw only.
    phases = range(args.phases if args.detector == "onnx" else 1)
    for (group, ls), phase in itertools.product(sets, phases):
        boxes = detections(ls.scene, args.detector)
        events = count(ls.scene, ls.lines, boxes, overrides, args.detect_every, args.detector, phase)
        s = ev.score_events(events, ls.truth, ls.lines)
        matched[group].add(s)
        if args.verbose:
            print(f"  {group:6} {ls.name:18} F1 {s.f1:.3f} counted {sum(s.counted.values())} truth {len(ls.truth)}")
    ground_kinds = [("g", 0.0)] + ([("gc", args.ground_cyclists)] if args.ground_cyclists > 0 else [])
    riders = sc.Tally()  # cyclists' crossings counted as cyclists (class and event), pooled over gc-*
    for (kind, share), (cam_name, camera) in itertools.product(
        ground_kinds, ground.CAMERAS.items() if args.detector == "onnx" else ()
    ):
        for seed, phase in itertools.product(GROUND_SEEDS, phases):
            gs = ground.random_scene(camera, seed, fps=args.ground_fps, cyclists=share)
            lines = ground.random_ground_lines(gs, seed, 8)
            truth = gs.truth(lines, args.truth_margin)
            events = count_ground(gs, lines, overrides, args.detect_every, phase)
            s = ev.score_events(events, truth, lines)
            matched[f"{kind}-{cam_name}"].add(s)
            if share > 0:
                riders.add(sc.rider_scores(events, truth, lines))
            if args.verbose:
                print(
                    f"  {kind}-{cam_name:10} s{seed} F1 {s.f1:.3f} counted {sum(s.counted.values())} truth {len(truth)}"
                )
    result = {}
    for group, tally in matched.items():
        result[group] = (round(tally.f1, 4), round(tally.count_error, 4))
        print(f"{group:6} F1 {tally.f1:.3f}  count error {tally.count_error:.1%}  truth {tally.truth}")
    mean = sum(v[0] for v in result.values()) / len(result)
    if riders.truth:  # a class check beside the groups, not one of them
        print(f"cyclists as cyclists F1 {riders.f1:.3f}  count error {riders.count_error:.1%}  truth {riders.truth}")
    print(f"mean F1 {mean:.4f}")
    print(json.dumps({"mean_f1": round(mean, 4), **{k: v[0] for k, v in result.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
