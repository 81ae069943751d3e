"""Do the per-window quality figures (frames per second, dropped frames) follow how many people were in view?

    python bench/quality_channel.py [--slowdown 1 4 8] [--fps 7]

A live camera keeps only its newest frame: while the counter works on one frame, newer ones replace each
other and the skipped ones are counted as dropped (``edge_agent.counting.sources.LiveSource``). So the
processed frame rate and the drops depend on how long each frame takes, and with the ``onnx`` detector that
depends on the scene: it runs only where something moves (the motion gate) and the tracker's work grows
with the people tracked. This script replays the PETS 2009 S2L1 clip in ../shared as a live camera at
``--fps`` through the agent's own pipeline (onnx, NanoDet-m in ../shared) and measures each frame's cost as
CPU time of this thread (one OpenCV thread), so other load on the machine does not count. ``--slowdown``
scales the cost for a slower device (a Raspberry Pi runs this model several times slower than a PC core).
It does the same for an empty street (the clip's median background with sensor noise), as the control.

Per second of the clip it correlates the processed frames and the frames dropped with the people in view
(MOT ground truth), per 10-second block too. Then, for one window the length of the clip, the raw figures
and those the device publishes (``edge_agent.privacy.quality.published_quality``) for an empty street, a
quiet one (empty but for 10 s of the clip) and a busy one (the clip). The last line is a JSON summary.
"""

from __future__ import annotations

import os

# One thread: the cost of a frame is the CPU time of this thread.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_agent.counting.config import CountingConfig, LineConfig  # noqa: E402
from edge_agent.counting.detectors import Image  # noqa: E402
from edge_agent.counting.factory import build_pipeline  # noqa: E402
from edge_agent.privacy.quality import published_quality  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
VIDEO = SHARED / "data" / "pets09-s2l1" / "vtest.avi"
GT = SHARED / "data" / "pets09-s2l1" / "gt.txt"
MODEL = SHARED / "models" / "nanodet-m" / "object_detection_nanodet_2022nov.onnx"
LINES = [LineConfig(name="h-mid", points=[0, 288, 768, 288]), LineConfig(name="v-mid", points=[384, 0, 384, 576])]


@dataclass
class Replay:
    processed: np.ndarray  # per second of video: frames processed
    dropped: np.ndarray  # per second of video: frames skipped while the counter was busy
    cost_s: float  # CPU seconds spent in the pipeline


def frames_of(video: Path) -> list[Image]:
    cap = cv2.VideoCapture(str(video))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        out.append(image)
    cap.release()
    return out


def replay(frame: Callable[[int], Image], count: int, fps: float, slowdown: float) -> Replay:
    """A camera delivering frame i at i / fps; the counter takes the newest one each time it is free."""
    config = CountingConfig(source=str(VIDEO), detector="onnx", model=MODEL, lines=LINES, fps=fps)
    pipeline = build_pipeline(config, fps)
    seconds = math.ceil(count / fps)
    processed, dropped = np.zeros(seconds), np.zeros(seconds)
    clock, last, cost = 0.0, -1, 0.0
    while True:
        index = max(last + 1, math.floor(clock * fps + 1e-9))
        if index >= count:
            break
        clock = max(clock, index / fps)  # idle until that frame arrives
        dropped[int(index / fps)] += index - last - 1
        image = frame(index) if pipeline.wants_image(index) else None
        started = time.thread_time()
        pipeline.process(index, image)
        spent = time.thread_time() - started
        cost += spent
        clock += spent * slowdown
        processed[int(index / fps)] += 1
        last = index
    return Replay(processed, dropped, cost)


def people_per_second(count: int, fps: float) -> np.ndarray:
    gt = np.loadtxt(GT, delimiter=",", ndmin=2)
    per_frame = np.bincount(gt[:, 0].astype(int) - 1, minlength=count)[:count]
    seconds = math.ceil(count / fps)
    return np.array([per_frame[int(s * fps) : int((s + 1) * fps)].mean() for s in range(seconds)])


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None  # a constant says nothing about the other series
    return float(np.corrcoef(a, b)[0, 1])


def blocks(values: np.ndarray, size: int) -> np.ndarray:
    n = len(values) // size
    return values[: n * size].reshape(n, size).mean(axis=1)


def empty_street(frames: list[Image]) -> Iterator[Image]:
    background = np.median(np.stack(frames[::6]), axis=0).astype(np.int16)
    rng = np.random.default_rng(1)
    while True:
        noise = rng.normal(0, 2.0, background.shape[:2])[:, :, None]
        yield np.clip(background + noise, 0, 255).astype(np.uint8)


def fmt(value: float | None) -> str:
    return "n/a (constant)" if value is None else f"{value:+.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slowdown", type=float, nargs="+", default=[1.0, 4.0, 8.0])
    parser.add_argument("--fps", type=float, default=7.0, help="camera frame rate (the clip's own: 7)")
    args = parser.parse_args()
    for path in (VIDEO, GT, MODEL):
        if not path.exists():
            print(f"missing {path}: this benchmark needs ../shared beside the checkout", file=sys.stderr)
            return 2
    cv2.setNumThreads(1)
    frames = frames_of(VIDEO)
    count = len(frames)
    people = people_per_second(count, args.fps)
    empty = empty_street(frames)
    empty_frames = [next(empty) for _ in range(count)]
    print(
        f"PETS 2009 S2L1: {count} frames, camera at {args.fps:g} fps, people in view per second "
        f"{people.min():.1f}..{people.max():.1f} (mean {people.mean():.1f}); onnx detector, NanoDet-m. Windows: "
        "empty street, quiet (empty but 10 s of the clip in the middle), busy (the clip)"
    )
    quiet_frames = list(empty_frames)
    middle, stretch = count // 2, round(10 * args.fps)
    quiet_frames[middle : middle + stretch] = frames[middle : middle + stretch]  # 10 s with people in view
    window_s = count / args.fps
    summary: dict[str, object] = {}
    for slowdown in args.slowdown:
        runs = {
            "empty": replay(empty_frames.__getitem__, count, args.fps, slowdown),
            "quiet": replay(quiet_frames.__getitem__, count, args.fps, slowdown),
            "busy": replay(frames.__getitem__, count, args.fps, slowdown),
        }
        street = runs["busy"]
        figures: dict[str, object] = {
            "mean_cost_ms": 1000 * street.cost_s / max(1, street.processed.sum()),
            "fps_people": correlation(street.processed, people),
            "dropped_people": correlation(street.dropped, people),
            "fps_people_10s": correlation(blocks(street.processed, 10), blocks(people, 10)),
            "dropped_people_10s": correlation(blocks(street.dropped, 10), blocks(people, 10)),
        }
        print(
            f"\nslowdown x{slowdown:g} (mean cost of a processed frame {figures['mean_cost_ms']:.1f} ms on this core):"
        )
        print(
            f"  busy clip, per second, correlation with people in view: fps {fmt(figures['fps_people'])}, "  # type: ignore[arg-type]
            f"dropped {fmt(figures['dropped_people'])}; per 10 s: fps {fmt(figures['fps_people_10s'])}, "  # type: ignore[arg-type]
            f"dropped {fmt(figures['dropped_people_10s'])}"  # type: ignore[arg-type]
        )
        for name, run in runs.items():
            processed, dropped = int(run.processed.sum()), int(run.dropped.sum())
            published = published_quality(processed, dropped, window_s, window_s)
            raw = (round(processed / window_s, 2), dropped)
            shown = (published.mean_fps, published.dropped_frames)
            figures[name] = {
                "raw_fps": raw[0],
                "raw_dropped": raw[1],
                "published_fps": shown[0],
                "published_dropped": shown[1],
            }
            print(
                f"  {name:5} window ({window_s:.0f} s): raw {raw[0]:5.2f} fps, {raw[1]:4d} dropped;"
                f" published {shown[0]:g} fps, {shown[1]} dropped"
            )
        summary[f"slowdown {slowdown:g}"] = figures
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
