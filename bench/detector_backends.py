"""Detector runtimes compared on the PETS 2009 clip in ../shared: OpenCV's dnn against onnxruntime.

    python bench/detector_backends.py [--frames N] [--repeat N]

For each runtime that is installed, on one core: frames per CPU second of the detector alone (NanoDet-m on
the whole frame, every frame of the first N) and of the whole counter (``edge-agent count`` settings), each
as a ratio to plain decoding of the same video measured in the same run, and the peak memory of ``edge-agent
count``; then whether the runtimes agree:
boxes, classes and scores per frame, and the counter's events per line, direction and class. Run it once per
OpenCV major (4.x is what Raspberry Pi OS ships). The last line is a JSON summary.
"""

from __future__ import annotations

import os

# One core: set before numpy, OpenCV and onnxruntime start their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenes  # noqa: E402

from edge_agent.counting.detectors.backends import onnxruntime_available  # noqa: E402
from edge_agent.counting.detectors.onnx import OnnxDetector  # noqa: E402
from edge_agent.counting.factory import settings_for  # noqa: E402
from edge_agent.counting.lines import CountLine  # noqa: E402
from edge_agent.counting.offline import count_source  # noqa: E402
from edge_agent.counting.pipeline import CountingPipeline  # noqa: E402
from edge_agent.counting.sources import VideoFileSource  # noqa: E402
from edge_agent.counting.tracking import Detection  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "pets09-s2l1" / "vtest.avi"
MODEL = SHARED / "models" / "nanodet-m" / "object_detection_nanodet_2022nov.onnx"
# Lines across the whole scene, so the counter has work everywhere (not a selection of any kind).
LINES = [
    CountLine("h-mid", 0, 288, 768, 288),
    CountLine("v-mid", 384, 0, 384, 576),
    CountLine("diag", 160, 96, 672, 528),
    CountLine("anti-diag", 700, 100, 100, 500),
]


def decode_fps(frames: int | None, repeat: int) -> float:
    """Frames per CPU second of plain decoding (CPU time: what one core delivers on a busy machine)."""
    best = 0.0
    for _ in range(repeat):
        cap = cv2.VideoCapture(str(VIDEO))
        start = time.process_time()
        n = 0
        while (frames is None or n < frames) and cap.read()[0]:
            n += 1
        best = max(best, n / (time.process_time() - start))
        cap.release()
    return best


def read_frames(frames: int) -> list[Any]:
    cap = cv2.VideoCapture(str(VIDEO))
    images = []
    while len(images) < frames:
        ok, image = cap.read()
        if not ok:
            break
        images.append(image)
    cap.release()
    return images


def detector_only(backend: str, images: list[Any], repeat: int) -> tuple[float, list[list[Detection]]]:
    """Best frames per CPU second of the detector alone (decoding excluded), and its detections."""
    detector = OnnxDetector(MODEL, backend=backend)
    detector.detect(images[0])  # first run allocates
    best, found = 0.0, []
    for _ in range(repeat):
        start = time.process_time()
        found = [detector.detect(image) for image in images]
        best = max(best, len(images) / (time.process_time() - start))
    return best, found


def counter(backend: str, repeat: int) -> tuple[float, Counter[tuple[str, str, str]], list[tuple[int, str, str, str]]]:
    """Best frames per CPU second of the whole counter (decoding included), its tallies and events."""
    best = 0.0
    tally: Counter[tuple[str, str, str]] = Counter()
    events: list[tuple[int, str, str, str]] = []
    for _ in range(repeat):
        source = VideoFileSource(str(VIDEO))
        pipeline = CountingPipeline(LINES, OnnxDetector(MODEL, backend=backend), source.fps, settings_for("onnx"))
        start = time.process_time()
        result = count_source(source, pipeline)
        best = max(best, result.frames / (time.process_time() - start))
        source.close()
        tally = Counter((e.line, e.direction, e.object_class) for e in result.events)
        events = sorted((e.frame, e.line, e.direction, e.object_class) for e in result.events)
    return best, tally, events


def peak_memory_mib(backend: str) -> scenes.Peak:
    """Peak memory of a fresh ``edge-agent count`` process with this runtime: the median of three runs."""
    lines = [f"--line={line.name}={','.join(map(str, line.points))}" for line in LINES]
    runs = scenes.peak_memory_runs(
        [str(VIDEO), "--detector", "onnx", "--model", str(MODEL), "--backend", backend, "--json", *lines], 3
    )
    return scenes.median_peak(runs)


def compare(a: list[list[Detection]], b: list[list[Detection]]) -> dict[str, float]:
    """Frames whose detections differ in number or class, and the largest box and score differences."""
    differing = 0
    box_diff = score_diff = 0.0
    for da, db in zip(a, b, strict=True):
        ka = sorted(da, key=lambda d: (d.x1, d.y1))
        kb = sorted(db, key=lambda d: (d.x1, d.y1))
        if len(ka) != len(kb) or [d.cyclist for d in ka] != [d.cyclist for d in kb]:
            differing += 1
            continue
        for p, q in zip(ka, kb, strict=True):
            box_diff = max(box_diff, abs(p.x1 - q.x1), abs(p.y1 - q.y1), abs(p.x2 - q.x2), abs(p.y2 - q.y2))
            score_diff = max(score_diff, abs(p.score - q.score))
    return {"frames_differing": differing, "max_box_diff_px": box_diff, "max_score_diff": score_diff}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames for the detector-only timing (default 200)")
    parser.add_argument("--repeat", type=int, default=2, help="timing runs per runtime (best is kept)")
    args = parser.parse_args()
    if not VIDEO.exists() or not MODEL.exists():
        print(f"SKIP: evaluation data absent ({VIDEO} or {MODEL} not found beside the repository)")
        return 0
    cv2.setNumThreads(1)  # onnxruntime follows OpenCV's thread setting (see backends.py)
    backends = ["opencv", *(["onnxruntime"] if onnxruntime_available() else [])]
    images = read_frames(args.frames)
    decode_part = decode_fps(len(images), max(args.repeat, 2))
    decode_all = decode_fps(None, max(args.repeat, 2))
    versions = f"OpenCV {cv2.__version__}"
    if "onnxruntime" in backends:
        import onnxruntime

        versions += f", onnxruntime {onnxruntime.__version__}"
    else:
        versions += ", onnxruntime not installed"
    print(
        f"video {VIDEO.name}: plain decoding {decode_all:.0f} frames per CPU second ({versions}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})"
    )
    summary: dict[str, Any] = {"opencv": cv2.__version__, "decode_fps": round(decode_all, 1)}
    found: dict[str, list[list[Detection]]] = {}
    tallies: dict[str, Counter[tuple[str, str, str]]] = {}
    events: dict[str, list[tuple[int, str, str, str]]] = {}
    for backend in backends:
        fps, found[backend] = detector_only(backend, images, args.repeat)
        count_fps, tallies[backend], events[backend] = counter(backend, args.repeat)
        peak = peak_memory_mib(backend)
        print(
            f"  {backend:>11}: detector alone {fps:5.1f} frames/s ({fps / decode_part:.4f} x decoding, "
            f"{len(images)} frames); whole counter {count_fps:5.1f} frames/s ({count_fps / decode_all:.4f} x decoding); "
            f"peak memory of edge-agent count {peak.rss:.0f} MiB ({peak.private:.0f} MiB private)"
        )
        summary[backend] = {
            "detector_fps": round(fps, 1),
            "detector_ratio_to_decode": round(fps / decode_part, 4),
            "counter_fps": round(count_fps, 1),
            "counter_ratio_to_decode": round(count_fps / decode_all, 4),
            "crossings": sum(tallies[backend].values()),
            "peak_mib": round(peak.rss, 1),
            "peak_private_mib": round(peak.private, 1),
        }
    if len(backends) == 2:
        diff = compare(found["opencv"], found["onnxruntime"])
        same_counts = tallies["opencv"] == tallies["onnxruntime"]
        same_events = events["opencv"] == events["onnxruntime"]
        speedup = summary["onnxruntime"]["detector_fps"] / summary["opencv"]["detector_fps"]
        print(
            f"  agreement: {diff['frames_differing']} of {len(images)} frames with different detections, "
            f"boxes within {diff['max_box_diff_px']:.4f} px, scores within {diff['max_score_diff']:.5f}; "
            f"counts {'identical' if same_counts else 'DIFFERENT'}, events {'identical' if same_events else 'DIFFERENT'}"
            f" ({sum(tallies['opencv'].values())} crossings on {len(LINES)} lines)"
        )
        print(f"  onnxruntime / opencv, detector alone: {speedup:.2f}x")
        summary["agreement"] = {**diff, "same_counts": same_counts, "same_events": same_events}
        summary["onnxruntime_speedup"] = round(speedup, 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
