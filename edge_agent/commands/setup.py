"""``edge-agent setup --config FILE --for 30m``: open the technician's setup page for a while; prints its code."""

from __future__ import annotations

import argparse
import socket
from datetime import datetime
from pathlib import Path

from edge_agent.config import load_agent_config
from edge_agent.deploy.config_update import active_config_path
from edge_agent.setup.access import close_setup, open_setup, parse_duration
from hub_protocol.cli import CliError

NAME = "setup"
HELP = "Open the setup page (draw lines, validate by tally) on the local network for a limited time"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="agent config (TOML) of the running agent")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--for", dest="duration", metavar="DURATION", help="how long: 30m, 2h, 90s (1 min .. 4 h)")
    group.add_argument("--close", action="store_true", help="close the setup page now")


def run(args: argparse.Namespace) -> int:
    config = load_agent_config(active_config_path(args.config))
    if config.counting is None:
        raise CliError(f"{args.config} has no [counting] section: there are no lines to set up")
    state_dir = Path(config.device.state_dir)
    if args.close:
        close_setup(state_dir)
        print("setup page closed")
        return 0
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        code = open_setup(state_dir, seconds)
    except OSError as exc:
        raise CliError(f"cannot write the setup grant in {state_dir}: {exc.strerror or exc}") from None
    until = datetime.fromtimestamp(datetime.now().timestamp() + seconds).strftime("%H:%M")
    print(f"setup page open until {until} on http://{socket.gethostname()}:{config.setup.port}/setup")
    print(f"one-time code: {code}")
    print("the running agent opens the page within a second; it answers the local network only")
    return 0
