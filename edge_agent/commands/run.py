"""``edge-agent run --config FILE``: the agent itself, as systemd runs it."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from hub_protocol.cli import CliError

if TYPE_CHECKING:
    from edge_agent.agent import Agent

NAME = "run"
HELP = "Run the agent: counting, lockers and reporting as configured"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="agent config (TOML)")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="run on simulated pins with a scripted resident reading codes from stdin (the demo)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Installed first: a stop that arrives while the agent is still starting (importing OpenCV takes seconds on
    # a Pi) ends it through the normal shutdown, not by the signal's default action.
    stopping = threading.Event()
    agents: list[Agent] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for started in agents:
            started.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Imported here: the agent pulls in OpenCV and gpiozero, which check-config and doctor do not need.
    from edge_agent.agent import Agent
    from edge_agent.deploy.service import ServiceLifecycle

    lifecycle = ServiceLifecycle(args.config)
    try:
        config = lifecycle.load_config()  # a config the hub pushed, on trial, or the installed one
    except OSError as exc:  # state_dir is a file, or cannot be written: one line, not a traceback at every restart
        raise CliError(f"state_dir: cannot use {exc.filename or args.config}: {exc.strerror or exc}") from None

    world = None
    pin_factory = None
    if args.simulate:
        from edge_agent.simulation import SimulatedWorld

        world = SimulatedWorld(config)
        pin_factory = world.pin_factory
    agent = Agent(config, pin_factory=pin_factory, lifecycle=lifecycle)
    agents.append(agent)
    if stopping.is_set():
        agent.request_stop()  # asked to stop while starting: start and stop cleanly
    if world is not None:
        world.close_doors()
    agent.start()
    if world is not None:
        world.start(agent.lockers)
    try:
        agent.serve()
    finally:
        if world is not None:
            world.stop()
    return lifecycle.exit_code
