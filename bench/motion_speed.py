"""Speed of the motion counter on the issue lines only, as frames per CPU second and as a ratio to plain
decoding measured in the same run (the hold-out sets of ``bench/counting.py`` are not touched).

    python bench/motion_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import counting as bc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not bc.VIDEO.exists():
        print("SKIP: ../shared evaluation data absent")
        return 0
    bc.one_core()
    _, decode_cpu = bc.decode_fps(args.repeat)
    scores, fps, _ = bc.speed("motion", "auto", args.repeat)
    print(
        f"motion: {fps:.0f} frames per CPU second, plain decoding {decode_cpu:.0f}: ratio {fps / decode_cpu:.3f}"
        f"  (issue lines F1 {scores.f1:.3f}, count error {scores.count_error:.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
