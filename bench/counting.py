"""Counting benchmark on the PETS 2009 clip in ../shared: accuracy per line and direction, speed on one core
against plain decoding of the same video (measured in the same run), and peak memory of ``edge-agent count``.

    python bench/counting.py [--detector motion|onnx|all] [--repeat N]

Prints per detector the counts and ground truth per line and direction for the issue's seven lines, for
held-out lines (diagonals, short segments, lines along walking paths) and for two sets of fresh lines (the
second never looked at before the final run), the event precision/recall/F1 (match: same line and direction within 10 frames, one to one), the count error,
frames per second on one core, the ratio to decoding, and peak memory. The last line is a JSON summary.
"""

from __future__ import annotations

import os

# One core: set before numpy and OpenCV start their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402

from edge_agent.counting import evaluate as ev  # noqa: E402
from edge_agent.counting.factory import build_detector, settings_for  # noqa: E402
from edge_agent.counting.lines import CountLine  # noqa: E402
from edge_agent.counting.offline import count_source  # noqa: E402
from edge_agent.counting.pipeline import CountingPipeline  # noqa: E402
from edge_agent.counting.sources import VideoFileSource  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "pets09-s2l1" / "vtest.avi"
GT = SHARED / "data" / "pets09-s2l1" / "gt.txt"
MODEL = SHARED / "models" / "nanodet-m" / "object_detection_nanodet_2022nov.onnx"

ISSUE_LINES = {
    "h-mid": (0, 288, 768, 288),
    "v-mid": (384, 0, 384, 576),
    "h-top": (0, 192, 768, 192),
    "h-low": (0, 384, 768, 384),
    "v-left": (256, 0, 256, 576),
    "v-right": (512, 0, 512, 576),
    "diag": (160, 96, 672, 528),
}
# Other diagonals, short segments, lines along the main walking paths. Not used to set any number; in the
# second round of changes, rules were kept only if they helped on all three sets together, not on one.
HELD_OUT = {
    "anti-diag": (700, 100, 100, 500),
    "long-diag": (50, 500, 500, 50),
    "short-centre": (300, 250, 450, 250),
    "short-upright": (500, 150, 500, 300),
    "short-slant": (420, 300, 600, 420),
    "along-path": (100, 240, 700, 250),
    "v-330": (330, 80, 330, 500),
    "h-330": (60, 330, 740, 330),
    "h-240": (0, 240, 768, 240),
    "v-620": (620, 0, 620, 576),
}
# Added after the first round of changes and evaluated once then; looked at in the second round like the
# held-out lines (see above).
FRESH = {
    "fresh-diag": (80, 420, 420, 160),
    "fresh-short-diag": (560, 60, 740, 300),
    "fresh-short-v": (250, 300, 250, 480),
    "fresh-short-h": (430, 360, 700, 360),
    "fresh-long": (120, 180, 640, 200),
    "fresh-v": (460, 120, 460, 560),
}
# Added after the second round of changes (lasting side, learnt person shape), before running them: the
# unseen check.
FRESH_2 = {
    "late-diag": (30, 300, 380, 60),
    "late-short-h": (150, 270, 330, 270),
    "late-v": (150, 60, 150, 540),
    "late-slant": (400, 100, 700, 260),
    "late-short-v": (560, 250, 560, 420),
    "late-h-420": (40, 420, 730, 420),
}
TARGETS = {"onnx": {"f1": 0.95, "count_error": 0.05, "fps": 100}, "motion": {"f1": 0.90, "fps": 200}}
PEAK_MIB_TARGET = 120


def one_core() -> None:
    # No CPU pinning: on a shared machine a pinned process queues behind others on that core.
    cv2.setNumThreads(1)


def decode_fps(repeat: int) -> tuple[float, float]:
    """(wall, cpu) frames per second of plain decoding; CPU time is what one core delivers on a busy machine."""
    best_wall = best_cpu = 0.0
    for _ in range(repeat):
        cap = cv2.VideoCapture(str(VIDEO))
        start, start_cpu = time.perf_counter(), time.process_time()
        n = 0
        while True:
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
        best_wall = max(best_wall, n / (time.perf_counter() - start))
        best_cpu = max(best_cpu, n / (time.process_time() - start_cpu))
        cap.release()
    return best_wall, best_cpu


def run(detector: str, lines: list[CountLine], repeat: int) -> tuple[ev.Scores, float, float, int]:
    """Scores, best wall-clock fps, best CPU-time fps, detector runs."""
    truth = ev.truth_crossings(ev.load_mot(GT), lines, settings_for(detector).margin)
    best_wall = best_cpu = 0.0
    scores, runs = None, 0
    for _ in range(repeat):
        source = VideoFileSource(str(VIDEO))
        pipeline = CountingPipeline(lines, build_detector(detector, MODEL), source.fps, settings_for(detector))
        start_cpu = time.process_time()
        result = count_source(source, pipeline)
        cpu = time.process_time() - start_cpu
        source.close()
        best_wall = max(best_wall, result.fps)
        best_cpu = max(best_cpu, result.frames / cpu)
        scores, runs = ev.score_events(result.events, truth, lines), pipeline.detector_runs
    assert scores is not None
    return scores, best_wall, best_cpu, runs


def peak_memory_mib(detector: str) -> float:
    """ru_maxrss of a fresh ``edge-agent count`` process (measured by a wrapper so no other child counts)."""
    args = ["-m", "edge_agent.cli", "count", str(VIDEO), "--detector", detector, "--model", str(MODEL), "--json"]
    for name, points in ISSUE_LINES.items():
        args += ["--line", f"{name}={','.join(str(v) for v in points)}"]
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, *sys.argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    code, kib = out.stdout.split()
    if code != "0":
        raise SystemExit(f"edge-agent count failed with status {code}")
    return int(kib) / 1024


def table(title: str, scores: ev.Scores, names: list[str]) -> None:
    print(f"  {title}")
    for name in names:
        cells = [f"{d} {scores.counted[(name, d)]:3d}/{scores.truth[(name, d)]:3d}" for d in ev.DIRECTIONS]
        print(f"    {name:>14}: " + "   ".join(cells) + "   (counted/truth)")
    print(
        f"    events: precision {scores.precision:.3f}  recall {scores.recall:.3f}  F1 {scores.f1:.3f}"
        f"   count error {scores.count_error:.1%}   truth {sum(scores.truth.values())} crossings"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector", choices=["motion", "onnx", "all"], default="all")
    parser.add_argument("--repeat", type=int, default=2, help="timing runs per detector (best is kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess")
    args = parser.parse_args()
    if not VIDEO.exists() or not GT.exists():
        print(f"SKIP: evaluation data absent ({VIDEO.parent} not found beside the repository)")
        return 0
    one_core()
    detectors = ["motion", "onnx"] if args.detector == "all" else [args.detector]
    if "onnx" in detectors and not MODEL.exists():
        print(f"SKIP onnx: model {MODEL} absent")
        detectors.remove("onnx")
    decode, decode_cpu = decode_fps(max(args.repeat, 2))
    print(
        f"video {VIDEO.name}: plain decoding {decode:.0f} frames/s wall clock, {decode_cpu:.0f} frames per CPU "
        f"second (OpenCV {cv2.__version__}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})"
    )
    issue = [CountLine(n, *p) for n, p in ISSUE_LINES.items()]
    held = [CountLine(n, *p) for n, p in HELD_OUT.items()]
    fresh = [CountLine(n, *p) for n, p in FRESH.items()]
    fresh2 = [CountLine(n, *p) for n, p in FRESH_2.items()]
    summary: dict[str, Any] = {"decode_fps": round(decode, 1), "decode_fps_cpu": round(decode_cpu, 1)}
    for detector in detectors:
        s_issue, fps_wall, fps, runs = run(detector, issue, args.repeat)
        s_held, _, _, _ = run(detector, held, 1)
        s_fresh, _, _, _ = run(detector, fresh, 1)
        s_fresh2, _, _, _ = run(detector, fresh2, 1)
        peak = None if args.no_memory else peak_memory_mib(detector)
        print(f"\n== {detector} (detector ran on {runs} of 795 frames)")
        table("issue lines", s_issue, list(ISSUE_LINES))
        table("held-out lines", s_held, list(HELD_OUT))
        table("fresh lines (added after the first round of changes)", s_fresh, list(FRESH))
        table("second fresh lines (added after the second round)", s_fresh2, list(FRESH_2))
        print(
            f"  speed: {fps:.0f} frames per CPU second on one core = {fps / decode_cpu:.3f} x plain decoding "
            f"({fps_wall:.0f} frames/s wall clock = {fps_wall / decode:.3f} x decoding)"
        )
        if peak is not None:
            print(f"  peak memory of edge-agent count: {peak:.0f} MiB (target <= {PEAK_MIB_TARGET})")
        target = TARGETS[detector]
        verdict = [
            f"F1 {s_issue.f1:.3f} {'>=' if (s_issue.f1 or 0) >= target['f1'] else '<'} {target['f1']}",
            f"fps {fps:.0f} {'>=' if fps >= target['fps'] else '<'} {target['fps']}",
        ]
        if "count_error" in target:
            ok = s_issue.count_error <= target["count_error"]
            verdict.append(f"count error {s_issue.count_error:.1%} {'<=' if ok else '>'} {target['count_error']:.0%}")
        print("  targets (issue lines): " + "; ".join(verdict))
        summary[detector] = {
            "issue": {
                "f1": s_issue.f1,
                "precision": s_issue.precision,
                "recall": s_issue.recall,
                "count_error": s_issue.count_error,
            },
            "fresh": {"f1": s_fresh.f1, "count_error": s_fresh.count_error},
            "fresh_2": {"f1": s_fresh2.f1, "count_error": s_fresh2.count_error},
            "held_out": {
                "f1": s_held.f1,
                "precision": s_held.precision,
                "recall": s_held.recall,
                "count_error": s_held.count_error,
            },
            "fps": round(fps, 1),
            "fps_wall": round(fps_wall, 1),
            "ratio_to_decode": round(fps / decode_cpu, 4),
            "peak_mib": None if peak is None else round(peak, 1),
        }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
