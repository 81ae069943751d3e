"""What the colour signature (edge_agent/counting/appearance.py) costs per box, on the clip's frames.

    python bench/appearance_cost.py [--frames N]

Runs ``describe`` on the cached NanoDet boxes (score >= the weak threshold the pipeline uses) of the full
view and of a zoom crop, and prints microseconds per box and per detector frame. The signatures are
computed and dropped: nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import scenes as sc
import select_rules as sr

from edge_agent.counting.appearance import describe
from edge_agent.counting.factory import WEAK_SHARE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    if not sc.VIDEO.exists() or not sc.MODEL.exists():
        print("SKIP: ../shared evaluation data or model absent")
        return 0
    threshold = WEAK_SHARE * 0.4
    for scene in (sc.Scene("full", stop=args.frames), sc.zoom_crops(1, 1)[0]):
        scene = sc.Scene(scene.name, scene.crop, scene.size, 0, args.frames)
        boxes = sr.detections(scene)
        source = sc.SceneSource(scene)
        per_box: list[float] = []
        per_frame: list[float] = []
        while (frame := source.read()) is not None:
            dets = [d for d in boxes.get(frame.index, []) if d.score >= threshold]
            image = frame.image
            t0 = time.perf_counter()
            for det in dets:
                describe(image, det)
            spent = time.perf_counter() - t0
            per_frame.append(spent)
            if dets:
                per_box.append(spent / len(dets))
        source.close()
        print(
            f"{scene.name:16} {scene.size[0]}x{scene.size[1]}: {statistics.median(per_box) * 1e6:.0f} us per box "
            f"(median), {statistics.mean(per_frame) * 1e3:.2f} ms per frame (mean), "
            f"{max(per_frame) * 1e3:.2f} ms worst frame"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
