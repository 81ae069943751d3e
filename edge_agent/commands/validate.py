"""``edge-agent validate --config FILE --minutes 10``: validation by tally from a terminal on the device.

Type what you see, one or more taps per line and Enter: ``1i`` is a pedestrian in on line 1, ``1o`` out,
``1ic`` / ``1oc`` a cyclist. ``done`` finishes early. The running agent counts the same minutes; the result
is stored on the device and sent to the hub like the setup page's.
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from edge_agent.config import load_agent_config
from edge_agent.deploy.config_update import active_config_path
from edge_agent.setup.access import add_session
from hub_protocol.accuracy import MAX_VALIDATION_MINUTES
from hub_protocol.cli import CliError

NAME = "validate"
HELP = "Validate the counts by tally: tap what you see while the agent counts the same minutes"

TAP = re.compile(r"^(\d{1,2})([io])(c?)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="agent config (TOML) of the running agent")
    parser.add_argument(
        "--minutes", type=float, default=10.0, help=f"length of the tally (0.1..{MAX_VALIDATION_MINUTES:g})"
    )
    parser.add_argument("--url", help="the agent's setup page (default: http://127.0.0.1:<setup.port>)")


class Page:
    """The running agent's setup API on this machine, with a session of this command."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self.cookie = f"setup_session={token}"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - http(s) only
        request.add_header("Cookie", self.cookie)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                problems = json.loads(exc.read()).get("problems") or [exc.reason]
            except ValueError:
                problems = [str(exc.reason)]
            raise CliError(f"{path}: " + "; ".join(str(p) for p in problems)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise CliError(f"the agent's setup page does not answer at {self.url}: {exc}") from None


def parse_taps(text: str, lines: list[str]) -> tuple[Counter[tuple[str, str, str]], list[str]]:
    """Taps in one input line -> counts; and the tokens that are not taps."""
    counts: Counter[tuple[str, str, str]] = Counter()
    bad = []
    for token in text.lower().split():
        match = TAP.fullmatch(token)
        if match is None or not 1 <= int(match.group(1)) <= len(lines):
            bad.append(token)
            continue
        line = lines[int(match.group(1)) - 1]
        counts[(line, "in" if match.group(2) == "i" else "out", "cyclist" if match.group(3) else "pedestrian")] += 1
    return counts, bad


def _reader(inbox: queue.Queue[str | None]) -> None:
    for line in sys.stdin:
        inbox.put(line)
    inbox.put(None)


def run(args: argparse.Namespace) -> int:
    if not 0.1 <= args.minutes <= MAX_VALIDATION_MINUTES:
        raise CliError(f"--minutes must be between 0.1 and {MAX_VALIDATION_MINUTES:g}")
    config = load_agent_config(active_config_path(args.config))
    if config.counting is None:
        raise CliError(f"{args.config} has no [counting] section: there is nothing to validate")
    lines = [line.name for line in config.counting.lines]
    token = add_session(Path(config.device.state_dir), int(args.minutes * 60) + 600)
    page = Page(args.url or f"http://127.0.0.1:{config.setup.port}", token)
    deadline = time.monotonic() + 15
    while True:  # the agent opens the page within a second of the grant
        try:
            page.call("GET", "/setup/api/state")
            break
        except CliError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    page.call("POST", "/setup/api/validation/start", {"minutes": args.minutes})
    for i, name in enumerate(lines, 1):
        print(f"line {i} = {name}: {i}i / {i}o pedestrian in/out, {i}ic / {i}oc cyclist in/out")
    print(f"tally for {args.minutes:g} minutes; type done to finish early")
    tallied: Counter[tuple[str, str, str]] = Counter()
    inbox: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(inbox,), daemon=True).start()
    end = time.monotonic() + args.minutes * 60
    try:
        while (left := end - time.monotonic()) > 0:
            try:
                text = inbox.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if text is None or text.strip().lower() == "done":
                break
            counts, bad = parse_taps(text, lines)
            tallied.update(counts)
            if bad:
                print(f"not a tap: {' '.join(bad)}", file=sys.stderr)
    except KeyboardInterrupt:
        page.call("POST", "/setup/api/validation/cancel", {})
        raise
    body = {
        "tallies": [{"line": k[0], "direction": k[1], "object_class": k[2], "count": n} for k, n in tallied.items()]
    }
    record = page.call("POST", "/setup/api/validation/finish", body)
    print(f"validation over {record['minutes']:g} minutes (stored on the device and sent to the hub):")
    for row in record["lines"]:
        error = "n/a" if row["error"] is None else f"{row['error'] * 100:+.1f}%"
        print(f"  {row['line']} {row['direction']}: counted {row['counted']}, tallied {row['tallied']}, error {error}")
    overall = "n/a" if record["error"] is None else f"{record['error'] * 100:.1f}%"
    print(f"overall count error: {overall}")
    return 0
