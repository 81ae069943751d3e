"""``edge-agent calibrate OUTPUT.png``: a picture of the scene with nobody in it, with the counting lines drawn.

For the technician who places the lines. The picture is learned (``edge_agent.counting.background``): a
median over frames spread across the time watched, with moving things masked out, and only once the older
and newer halves of that time agree, so that someone lingering has to leave before it is written. A single
live frame is never kept or written. When the scene does not settle before the source ends, ``--timeout`` or
the frame limit, the command refuses and writes nothing. Someone who stood still in one place the whole time
would still be in it: with the ``onnx`` detector configured, the command runs it on the picture and refuses
if it sees a person; with ``motion`` it cannot tell, says so, and the technician deletes the file after use. The PNG is written
locally, to the path given, and nothing sends it anywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from edge_agent.config import load_agent_config
from edge_agent.counting.background import BackgroundNotClean, BackgroundSettings, LearnedBackground
from edge_agent.counting.background import learn_background as learn_clean_background
from edge_agent.counting.cli_args import parse_line
from edge_agent.counting.config import CountingConfig, LineConfig
from edge_agent.counting.factory import build_detector, open_source
from edge_agent.counting.lines import CountLine
from edge_agent.counting.sources import SourceError
from hub_protocol.cli import CliError

NAME = "calibrate"
HELP = "Write a PNG of the learned, person-free background with the counting lines, locally only"

LINE_COLOUR = (0, 215, 255)  # BGR amber: visible on grey street scenes
IN_COLOUR = (80, 220, 60)
MIN_FRAMES = 50
MAX_FRAMES = 20_000
PERSON_CHECK_SCORE = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help="PNG file to write (local path; never sent anywhere)")
    parser.add_argument("--config", type=Path, help="agent config: source and lines from its [counting] section")
    parser.add_argument("--source", help="camera or video instead of the config's (file, /dev/videoN, index, rtsp://)")
    parser.add_argument(
        "--line",
        dest="lines",
        action="append",
        type=parse_line,
        metavar="NAME=x1,y1,x2,y2",
        help="a counting line to draw (default: the config's lines)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=300,
        help=f"learn from at least this many frames ({MIN_FRAMES}..10000); learning goes on until the scene is stable",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")


def _counting_config(args: argparse.Namespace) -> CountingConfig:
    base: CountingConfig | None = None
    if args.config is not None:
        base = load_agent_config(args.config).counting
        if base is None and (args.source is None or not args.lines):
            raise CliError(f"{args.config} has no [counting] section: give --source and --line")
    source = args.source or (base.source if base else None)
    if source is None:
        raise CliError("give --config with a [counting] section, or --source")
    lines = [LineConfig(name=ln.name, points=list(ln.points)) for ln in args.lines or []]
    if not lines and base is not None:
        lines = list(base.lines)
    if not lines:
        raise CliError("no counting line to draw: give --line NAME=x1,y1,x2,y2 or a config with lines")
    if base is not None:
        return base.model_copy(update={"source": source, "lines": lines})
    return CountingConfig(source=source, lines=lines)


class SceneNotSettled(CliError):
    """No verified picture: the background did not settle, or the detector sees someone in it."""


def learn_background(config: CountingConfig, frames: int, timeout: float) -> LearnedBackground:
    """The clean background of the configured source, learned from at least ``frames`` frames, and checked
    for people with the ``onnx`` detector when it is configured (for this command and the setup page)."""
    try:
        source = open_source(config)
    except (SourceError, ValueError) as exc:
        raise CliError(str(exc)) from None
    settings = BackgroundSettings(min_frames=frames, max_frames=max(frames, MAX_FRAMES))
    try:
        learned = learn_clean_background(source, settings, timeout)
    except BackgroundNotClean as exc:
        raise SceneNotSettled(f"{exc} (nothing was written)") from None
    finally:
        source.close()
    seen = people_seen(config, learned.image)
    if seen:
        raise SceneNotSettled(
            f"the detector sees {seen} person(s) in the learned background: someone stood still the whole time; "
            "try again when they have left (nothing was written)"
        )
    return learned


def draw_lines(image: np.ndarray, lines: list[CountLine]) -> np.ndarray:
    """Each line A->B with an arrow, its name at A, and a short arrow towards its `in` side."""
    out = image.copy()
    if out.ndim == 2:
        out = cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)
    scale = max(out.shape[:2]) / 640
    thick = max(1, round(2 * scale))
    for line in lines:
        a = (round(line.x1), round(line.y1))
        b = (round(line.x2), round(line.y2))
        cv2.arrowedLine(out, a, b, LINE_COLOUR, thick, cv2.LINE_AA, 0, min(0.2, 20 * scale / max(line.length, 1)))
        # Right-hand normal of A->B in image coordinates (y down) is (-dy, dx): the side `in` leads to.
        dx, dy = (line.x2 - line.x1) / line.length, (line.y2 - line.y1) / line.length
        mx, my = (line.x1 + line.x2) / 2, (line.y1 + line.y2) / 2
        reach = 25 * scale
        tip = (round(mx - dy * reach), round(my + dx * reach))
        cv2.arrowedLine(out, (round(mx), round(my)), tip, IN_COLOUR, thick, cv2.LINE_AA, 0, 0.35)
        cv2.putText(out, "in", tip, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, IN_COLOUR, thick, cv2.LINE_AA)
        label = (a[0] + 4, max(12, a[1] - 6))
        cv2.putText(
            out, f"{line.name} A", label, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, LINE_COLOUR, thick, cv2.LINE_AA
        )
        cv2.putText(out, "B", (b[0] + 4, max(12, b[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, LINE_COLOUR, thick)
    return out


def people_seen(config: CountingConfig, image: np.ndarray) -> int:
    """People the configured ``onnx`` detector finds in the learned picture (0 for the motion detector, which
    cannot see anyone standing still). A stricter score than for counting: a false refusal costs a retry."""
    if config.detector != "onnx" or config.model is None:
        return 0
    score = max(config.score_threshold, PERSON_CHECK_SCORE)
    try:
        detector = build_detector("onnx", config.model, score, backend=config.backend)
    except (OSError, ValueError, cv2.error) as exc:
        raise CliError(f"cannot load the detector to check the picture: {exc} (nothing was written)") from None
    # The detector also returns weaker boxes, kept for continuing tracks: only those above the score count.
    return sum(1 for box in detector.detect(image, None) if box.score >= score)


def run(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.suffix.lower() != ".png":
        raise CliError(f"{output}: the output must be a .png file")
    if not output.parent.is_dir():
        raise CliError(f"{output.parent} is not a directory")
    if not MIN_FRAMES <= args.frames <= 10_000:
        raise CliError(f"--frames must be between {MIN_FRAMES} and 10000")
    if not 1 <= args.timeout <= 3600:
        raise CliError("--timeout must be between 1 and 3600 seconds")
    config = _counting_config(args)
    learned = learn_background(config, args.frames, args.timeout)
    picture = draw_lines(learned.image, [ln.to_line() for ln in config.lines])
    if not cv2.imwrite(str(output), picture):
        raise CliError(f"could not write {output}")
    print(
        f"wrote {output}: background learned from {learned.frames} frames, stable over the last {learned.span_frames}"
    )
    print("check it for anyone who stood still the whole time; it stays on this machine, delete it after use")
    return 0
