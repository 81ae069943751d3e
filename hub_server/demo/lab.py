"""The field lab in a box: a private broker, the hub and simulated agents on this machine.

Everything is the real code: the hub provisions each agent with its own broker credentials and ACL, the
agents are ``edge-agent run`` processes (mock pins, a generated street scene), deliveries are created
through the hub's logistics, and a scripted courier and resident type the codes the hub issued on each
locker bank's (mock) keypad. State lives in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from hub_protocol.tomlwrite import dumps
from hub_protocol.topics import hub_acl
from hub_server.config import HubConfig
from hub_server.demo.agents import AgentProcess
from hub_server.demo.world import DemoResidents, demo_agent_sections, demo_hub_config, hub_figures
from hub_server.fleet.broker import PrivateBroker
from hub_server.fleet.devices import add_device
from hub_server.store import accounts
from hub_server.store.db import Database

log = logging.getLogger(__name__)

SITE = "demo-street"
PREFIX = "cot"
OPERATOR = "operator"
DEVICE_NAMES = ["hub-locker", "corner-camera", "school-camera", "park-camera", "market-camera"]


@dataclass
class DemoOptions:
    port: int = 8080
    seconds: float | None = None
    agents: int = 2
    video: Path | None = None
    state_dir: Path | None = None


@dataclass
class DemoRun:
    options: DemoOptions
    folder: Path
    errors: list[str] = field(default_factory=list)
    agents: list[AgentProcess] = field(default_factory=list)


def _write_secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def _setup(run: DemoRun) -> tuple[PrivateBroker, HubConfig, Database, str]:
    folder = run.folder
    hub_password = secrets.token_urlsafe(24)
    broker = PrivateBroker(folder / "broker", {"hub": hub_password}, hub_acl(PREFIX, "hub"))
    broker.start()
    try:
        config = demo_hub_config(
            folder,
            broker,
            _write_secret(folder / "hub-mqtt-password", hub_password),
            _write_secret(folder / "session-key", secrets.token_hex(32)),
            run.options.port,
            PREFIX,
        )
        (folder / "hub.toml").write_text(dumps(config.model_dump(mode="json")))
        db = Database(config.store.location)
        operator_password = secrets.token_urlsafe(12)
        with db.write() as conn:
            accounts.add_user(conn, OPERATOR, accounts.Role.ADMIN, operator_password)
    except BaseException:
        broker.stop()
        raise
    return broker, config, db, operator_password


def _provision_agents(run: DemoRun, config: HubConfig, db: Database) -> list[tuple[str, dict[str, Any]]]:
    agents = []
    for index in range(run.options.agents):
        name = DEVICE_NAMES[index] if index < len(DEVICE_NAMES) else f"camera-{index}"
        provisioned = add_device(db, config, name, SITE, actor="cli:demo")
        data = tomllib.loads(provisioned.config_path.read_text())
        data["mqtt"]["password_file"] = str(provisioned.credential_path)
        sections = demo_agent_sections(
            name, run.folder / "agents" / name, with_lockers=index == 0, video=run.options.video
        )
        data["device"].update(sections.pop("device"))
        data.update(sections)
        config_path = provisioned.folder / "agent.toml"
        config_path.write_text(dumps(data))
        agents.append((name, data))
        run.agents.append(AgentProcess(name, config_path, run.folder / f"{name}.log"))
    return agents


async def _serve(config: HubConfig, db: Database) -> web.AppRunner:
    from hub_server.app import create_app

    app = create_app(config, database=db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.http.host, config.http.port).start()
    return runner


async def run_demo(options: DemoOptions) -> dict[str, Any]:
    # Databases, logs, configs and passwords of this run are for its user alone: every file the demo and its
    # children (broker, agents) create is 0600, every folder 0700, in a --state-dir as in the temporary one.
    os.umask(0o077)
    owned = options.state_dir is None
    folder = Path(tempfile.mkdtemp(prefix="hub-demo-")) if owned else Path(options.state_dir or ".")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    run = DemoRun(options, folder)
    try:
        broker, config, db, operator_password = _setup(run)
    except BaseException:
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    runner: web.AppRunner | None = None
    residents: DemoResidents | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        agent_configs = _provision_agents(run, config, db)
        runner = await _serve(config, db)
        for agent in run.agents:
            agent.start()
        residents = DemoResidents(runner.app, run.agents, agent_configs, run.errors)
        residents.start()
        url = f"http://{config.http.host}:{config.http.port}/"
        print(f"Field lab running: dashboard {url}dashboard", flush=True)
        print(f"Operator login: {OPERATOR} / {operator_password}  (valid for this run only)", flush=True)
        print(f"Public transparency page: {url}sensors   State folder: {folder}", flush=True)
        print("Press Ctrl-C to stop." if options.seconds is None else f"Running for {options.seconds:g} s.", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=options.seconds)
        summary = hub_figures(runner.app, run.errors)
    finally:
        if residents is not None:
            await residents.stop()
        await asyncio.gather(*(asyncio.to_thread(agent.stop) for agent in run.agents))
        run.errors.extend(f for agent in run.agents if (f := agent.failure()) is not None)
        if runner is not None:
            await runner.cleanup()
        broker.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    summary["errors"] = sorted(set(run.errors))
    return summary


def main(options: DemoOptions) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    summary = asyncio.run(run_demo(options))
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0 if not summary["errors"] else 1
