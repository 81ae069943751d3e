"""``hub-server demo``: the field lab in a box (broker, hub and simulated agents on this machine)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hub_protocol.cli import CliError

NAME = "demo"
HELP = "Run a private broker, the hub and simulated agents on this machine; Ctrl-C stops everything"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 1 <= value <= 86_400:
        raise argparse.ArgumentTypeError("seconds must be between 1 and 86400")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1-65535, got {text!r}")
    return int(text)


def _agents(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise argparse.ArgumentTypeError(f"expected 1 to 5 agents, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, default=8080, help="hub HTTP port on 127.0.0.1 (default 8080)")
    parser.add_argument("--seconds", type=_positive, help="run N seconds, then print a JSON summary and exit")
    parser.add_argument("--agents", type=_agents, default=2, help="simulated agents (default 2; the first has lockers)")
    parser.add_argument("--video", type=Path, help="feed the cameras from this video file instead of a generated scene")
    parser.add_argument("--state-dir", type=Path, help="keep the demo's state here instead of a temporary folder")


def run(args: argparse.Namespace) -> int:
    from hub_server.demo.lab import DemoOptions, main
    from hub_server.fleet.broker import BrokerError

    if args.video is not None:
        if not args.video.is_file():
            raise CliError(f"--video: no such file {args.video}")
        from hub_server.demo.world import frame_size

        try:
            frame_size(args.video)
        except ValueError as exc:
            raise CliError(f"--video: {exc}") from None
        args.video = args.video.resolve()  # the agents run in their own working folder
    options = DemoOptions(args.port, args.seconds, args.agents, args.video, args.state_dir)
    try:
        return main(options)
    except BrokerError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        if exc.errno == 98:
            raise CliError(f"port {args.port} is in use: choose another with --port") from None
        raise
