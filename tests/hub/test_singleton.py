"""Jobs that run in one hub instance at a time: advisory locks on a real PostgreSQL, held across processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub_server.app import create_app
from hub_server.config import HubConfig
from hub_server.records.retention import retention_ctx
from hub_server.store.db import Database
from hub_server.store.engine import connect
from hub_server.store.singleton import Singleton, lock_key
from tests import postgres
from tests.hub.conftest import ClientFactory, hub_config_data


@pytest.fixture
def url() -> str:
    postgres.require()
    return postgres.fresh_database()


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def test_one_of_two_holds_until_it_releases(url: str) -> None:
    first, second = Singleton(url, "job"), Singleton(url, "job")
    try:
        assert first.held() and not second.held()
        assert first.held() and not second.held(), "asking again changes nothing"
        assert Singleton(url, "another job").held(), "each name is its own job"
        first.release()
        assert second.held()
        assert not first.held()
    finally:
        first.release()
        second.release()


def test_a_killed_holder_frees_the_job(url: str) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from hub_server.store.singleton import Singleton\n"
            "job = Singleton(sys.argv[1], 'job')\n"
            "print(job.held(), flush=True)\n"
            "time.sleep(120)\n",
            url,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    waiting = Singleton(url, "job")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        assert not waiting.held()
        holder.send_signal(signal.SIGKILL)  # no release, no goodbye to the server
        holder.wait(timeout=10)
        assert eventually(waiting.held), "the server drops the dead session and its lock"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        waiting.release()


def test_a_broken_connection_is_no_and_then_a_new_try(url: str) -> None:
    first, second = Singleton(url, "job"), Singleton(url, "job")
    admin = connect(url)
    try:
        assert first.held()
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
        )
        assert eventually(lambda: not first.held()), "a dropped session no longer holds, and nothing is raised"
        assert second.held()
        assert not first.held()
        second.release()
        assert first.held(), "it connected again"
    finally:
        admin.close()
        first.release()
        second.release()


def test_on_sqlite_the_one_instance_always_holds(tmp_path: Path) -> None:
    job = Singleton(tmp_path / "hub.sqlite3", "job")
    assert job.held() and Singleton(tmp_path / "hub.sqlite3", "job").held()
    job.release()


async def test_of_two_hubs_on_one_database_only_one_runs_retention(
    url: str, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    config = HubConfig.model_validate(hub_config_data(tmp_path / "hub", store={"url": url}))
    clients = []
    for _ in range(2):
        app = create_app(config, database=Database(url), background=False, pages=False, extra_contexts=[retention_ctx])
        clients.append(await aiohttp_client(app))
    admin = Database(url)

    def runs() -> int:
        count: int = admin.conn.execute("SELECT count(*) FROM retention_runs").fetchone()[0]
        return count

    key = lock_key("retention") & (2**64 - 1)  # pg_locks shows a 64-bit key as two unsigned halves

    def holders() -> list[Any]:
        rows = admin.conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid::bigint = ? AND objid::bigint = ?",
            (key >> 32, key & 0xFFFFFFFF),
        ).fetchall()
        return [row[0] for row in rows]

    for _ in range(100):  # both start by purging, as no run is recorded yet
        if await asyncio.to_thread(runs):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # time for a second instance's purge, were there one
    assert await asyncio.to_thread(runs) == 1
    assert len(await asyncio.to_thread(holders)) == 1
    await clients[0].close()
    await clients[1].close()
    assert await asyncio.to_thread(holders) == [], "a stopped hub gives its jobs up"
