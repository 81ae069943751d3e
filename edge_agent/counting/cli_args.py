"""Argument parsing shared by ``edge-agent count`` and ``edge-agent evaluate``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from edge_agent.counting.lines import CountLine
from edge_agent.counting.sources import MAX_FPS
from hub_protocol import IDENTIFIER_PATTERN

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"


def parse_line(text: str) -> CountLine:
    """``NAME=x1,y1,x2,y2`` -> CountLine (argparse type: errors become one clear line)."""
    name, sep, coords = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=x1,y1,x2,y2")
    if not re.fullmatch(IDENTIFIER_PATTERN, name):
        raise argparse.ArgumentTypeError(f"{text!r}: line name must be lower-case letters, digits and '-'")
    parts = [p.strip() for p in coords.split(",")]
    if len(parts) != 4 or not all(re.fullmatch(_NUMBER, p) for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected 4 numbers x1,y1,x2,y2 after '='")
    x1, y1, x2, y2 = (float(p) for p in parts)
    if (x1, y1) == (x2, y2):
        raise argparse.ArgumentTypeError(f"{text!r}: the two end points must differ")
    try:
        return CountLine(name, x1, y1, x2, y2)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def parse_fps(text: str) -> float:
    """argparse type of ``--fps``: the counter's times (lasting side, coasting) are turned into frames by it."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of frames per second") from None
    if not 0 < value <= MAX_FPS:
        raise argparse.ArgumentTypeError(f"{text!r}: frames per second must be above 0 and at most {MAX_FPS:g}")
    return value


def add_counting_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "video", type=Path, help="video file to count, or a folder of its frames as images (in name order)"
    )
    parser.add_argument(
        "--line",
        dest="lines",
        action="append",
        type=parse_line,
        required=True,
        metavar="NAME=x1,y1,x2,y2",
        help="a counting line A->B in pixels; `in` = from the left to the right of someone walking A->B",
    )
    parser.add_argument("--detector", choices=["motion", "onnx"], default="motion", help="default: motion")
    parser.add_argument("--model", type=Path, help="ONNX model file (required for --detector onnx)")
    parser.add_argument(
        "--backend",
        choices=["auto", "opencv", "onnxruntime"],
        default="auto",
        help="runtime for the onnx model (default: auto = onnxruntime when installed, else opencv)",
    )
    parser.add_argument("--detect-every", type=int, help="run the detector every k-th frame (1..30)")
    parser.add_argument(
        "--fps",
        type=parse_fps,
        help="frames per second of the video (default: what the file states; a folder: its seqinfo.ini)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
