"""``edge-agent doctor --config FILE [--json]``: check everything the agent needs and say how to fix what fails."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hub_protocol.cli import seconds_in

if TYPE_CHECKING:  # the checks pull in the transport and the network probes: only `doctor` itself needs them
    from edge_agent.deploy.checks import CheckResult

NAME = "doctor"
HELP = "Check config, credential, broker, TLS, clock, camera, GPIO, disk and outbox; explain each failure"

DEFAULT_CONFIG = Path("/etc/edge-agent/agent.toml")

# Keyed by the statuses' values (``Status`` is a StrEnum), so this module imports nothing of the checks.
_LABELS = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
_FAIL, _WARN = "fail", "warn"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"agent config (default {DEFAULT_CONFIG})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--camera", metavar="SOURCE", help="check this camera source instead of the configured one")
    parser.add_argument(
        "--timeout", type=seconds_in(0.5, 600), default=5.0, help="seconds to wait for the network (default 5)"
    )
    parser.add_argument(
        "--credentials-dir",
        type=Path,
        action="append",
        default=[],
        help="where to look for a credential named in the config (default /etc/edge-agent/credentials)",
    )


def run(args: argparse.Namespace) -> int:
    from edge_agent.deploy.checks import DoctorEnv, run_checks

    env = DoctorEnv(network_timeout_s=args.timeout)
    if args.credentials_dir:
        env.credential_dirs = args.credentials_dir
    results = run_checks(args.config, env, args.camera)
    print(render_json(args.config, results) if args.json else render_text(args.config, results))
    return exit_status(results)


def exit_status(results: list[CheckResult]) -> int:
    """0 when nothing failed (warnings allowed), 1 otherwise."""
    return 1 if any(r.status == _FAIL for r in results) else 0


def render_text(config: Path, results: list[CheckResult]) -> str:
    lines = [f"edge-agent doctor: {config}"]
    for result in results:
        lines.append(f"  {_LABELS[result.status]:<4}  {result.name:<10}  {result.summary}")
        if result.fix and result.status in (_FAIL, _WARN):
            lines.append(f"  {'':<4}  {'':<10}  fix: {result.fix}")
    failed = sum(r.status == _FAIL for r in results)
    warned = sum(r.status == _WARN for r in results)
    verdict = "all good" if not failed else f"{failed} problem{'s' * (failed != 1)} to fix"
    lines.append(f"Result: {verdict}" + (f", {warned} warning{'s' * (warned != 1)}" if warned else ""))
    return "\n".join(lines)


def render_json(config: Path, results: list[CheckResult]) -> str:
    return json.dumps(
        {
            "config": str(config),
            "ok": exit_status(results) == 0,
            "failures": sum(r.status == _FAIL for r in results),
            "warnings": sum(r.status == _WARN for r in results),
            "checks": [r.as_dict() for r in results],
        },
        default=str,
    )
