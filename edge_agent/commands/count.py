"""``edge-agent count VIDEO --line NAME=x1,y1,x2,y2 ... [--detector] [--model] --json``: offline counting."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge_agent.counting.cli_args import add_counting_arguments
from edge_agent.counting.detectors.onnx import ModelError
from edge_agent.counting.factory import build_detector, settings_for
from edge_agent.counting.lines import CountLine
from edge_agent.counting.offline import CountResult, count_source
from edge_agent.counting.pipeline import CountingPipeline
from edge_agent.counting.sources import ImageFolderSource, SourceError, VideoFileSource
from hub_protocol.cli import CliError

NAME = "count"
HELP = "Count line crossings in a video file (offline; per-crossing events are printed, never sent)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_counting_arguments(parser)


def run_count(args: argparse.Namespace) -> CountResult:
    """Shared by ``count`` and ``evaluate``: every bad input becomes a CliError with one clear line."""
    names = [line.name for line in args.lines]
    if len(set(names)) != len(names):
        raise CliError("--line names must be unique")
    if args.detect_every is not None and not 1 <= args.detect_every <= 30:
        raise CliError("--detect-every must be between 1 and 30")
    if args.detector == "onnx" and args.model is None:
        raise CliError("--detector onnx needs --model PATH (the .onnx file)")
    if not (args.video.is_file() or args.video.is_dir()):
        raise CliError(f"video file {args.video} does not exist")
    try:
        detector = build_detector(args.detector, args.model, backend=args.backend)
        source: VideoFileSource | ImageFolderSource = (
            ImageFolderSource(args.video) if args.video.is_dir() else VideoFileSource(str(args.video))
        )
    except (ModelError, SourceError, ValueError) as exc:
        raise CliError(str(exc)) from None
    try:
        if source.frame_size is not None:
            check_lines_fit(args.lines, source.frame_size, args.video)
        fps = args.fps or source.fps
        if args.fps is None and not source.fps_known:
            # Not an error (many exported clips carry no rate), but every time rule depends on it: say so.
            print(
                f"edge-agent {args.command}: note: {args.video} states no frame rate; assuming {fps:g} frames/s"
                " (give --fps)",
                file=sys.stderr,
            )
        pipeline = CountingPipeline(args.lines, detector, fps, settings_for(args.detector, args.detect_every))
        try:
            result = count_source(source, pipeline)
        except (ModelError, SourceError) as exc:
            raise CliError(str(exc)) from None
    finally:
        source.close()
    if result.frames == 0:
        raise CliError(f"{args.video}: no frames could be decoded")
    return result


def check_lines_fit(lines: list[CountLine], size: tuple[int, int], video: Path) -> None:
    """Line points are pixels of the video: one outside its frame is almost always a line drawn for another
    camera or resolution, which would count silently wrong (or nothing)."""
    width, height = size
    for line in lines:
        if (point := line.point_outside(width, height)) is not None:
            raise CliError(
                f"--line {line.name}: point ({point[0]:g}, {point[1]:g}) lies outside the {width}x{height} frame"
                f" of {video} (line points are pixels of this video)"
            )


def run(args: argparse.Namespace) -> int:
    result = run_count(args)
    if args.json:
        print(json.dumps(result.to_json()))
        return 0
    print(f"{result.frames} frames in {result.seconds:.2f} s ({result.fps:.1f} frames/s)")
    for line in result.to_json()["lines"]:
        classes = ", ".join(f"{c} {v['in']} in / {v['out']} out" for c, v in line["by_class"].items())
        print(f"{line['name']}: {line['in']} in, {line['out']} out ({classes})")
    return 0
