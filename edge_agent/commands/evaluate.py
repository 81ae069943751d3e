"""``edge-agent evaluate VIDEO --gt FILE --line ...``: compare the counter with ground truth.

FILE is either MOTChallenge boxes (crossings are derived with the counter's own rule) or a manual tally
(CSV ``line,direction,count``), as a technician records on site.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge_agent.commands.count import run_count
from edge_agent.counting.cli_args import add_counting_arguments
from edge_agent.counting.evaluate import (
    DIRECTIONS,
    GroundTruthError,
    Scores,
    is_mot_file,
    load_mot,
    load_tally,
    score_events,
    score_tally,
    truth_crossings,
)
from hub_protocol.cli import CliError

NAME = "evaluate"
HELP = "Compare counts on a video with ground truth (MOTChallenge boxes or a manual tally CSV)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_counting_arguments(parser)
    parser.add_argument("--gt", type=Path, required=True, help="MOTChallenge gt.txt or tally CSV line,direction,count")
    parser.add_argument("--window", type=int, default=10, help="frames within which a count matches a truth")


def run(args: argparse.Namespace) -> int:
    if not args.gt.is_file():
        raise CliError(f"ground-truth file {args.gt} does not exist")
    if not 0 <= args.window <= 1000:
        raise CliError("--window must be between 0 and 1000 frames")
    try:
        mot = is_mot_file(args.gt)
        truth = truth_crossings(load_mot(args.gt), args.lines) if mot else None
        tally = None if mot else load_tally(args.gt)
    except GroundTruthError as exc:
        raise CliError(str(exc)) from None
    result = run_count(args)
    try:
        scores = (
            score_events(result.events, truth, args.lines, args.window)
            if truth is not None
            else score_tally(result.events, tally or {}, args.lines)
        )
    except GroundTruthError as exc:
        raise CliError(str(exc)) from None
    report = _report(scores, [line.name for line in args.lines], result.frames, result.fps)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{result.frames} frames, {result.fps:.1f} frames/s, ground truth: {'MOT boxes' if mot else 'tally'}")
    for row in report["lines"]:
        print(f"{row['name']:>16} {row['direction']:>3}: counted {row['counted']:4d}  truth {row['truth']:4d}")
    if scores.matched is not None:
        print(f"events: precision {report['precision']:.3f}  recall {report['recall']:.3f}  F1 {report['f1']:.3f}")
    print(f"count error: {report['count_error']:.1%}")
    return 0


def _report(scores: Scores, names: list[str], frames: int, fps: float) -> dict[str, Any]:
    rows = [
        {"name": n, "direction": d, "counted": scores.counted.get((n, d), 0), "truth": scores.truth.get((n, d), 0)}
        for n in names
        for d in DIRECTIONS
    ]
    return {
        "frames": frames,
        "fps": round(fps, 2),
        "lines": rows,
        "precision": scores.precision,
        "recall": scores.recall,
        "f1": scores.f1,
        "count_error": scores.count_error,
    }
