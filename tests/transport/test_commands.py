"""Commands: expiry, replay and at-most-once across restarts, answered through the outbox; end to end via the hub."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.events import MemorySink
from edge_agent.transport.commands import CommandRouter
from edge_agent.transport.service import Transport
from hub_protocol.codec import encode
from hub_protocol.commands import LockerOpen, ReloadConfig
from hub_protocol.envelope import CommandResult, ResultStatus
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_until
from tests.transport.helpers import start_ingest

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _open(cid: str, *, expires_in: float = 60, device: str = "dev-a") -> bytes:
    return encode(
        LockerOpen(
            id=cid,
            device=device,
            issued_at=NOW - timedelta(seconds=120),
            expires_at=NOW + timedelta(seconds=expires_in),
            action="locker-open",
            compartment=3,
        )
    )


def _router(tmp_path: Path, sink: MemorySink, calls: list[Any]) -> CommandRouter:
    router = CommandRouter("dev-a", sink, tmp_path / "commands.sqlite3", clock=lambda: NOW)

    def open_locker(command: LockerOpen) -> tuple[ResultStatus, str]:
        calls.append(command.id)
        return ResultStatus.DONE, f"opened {command.compartment}"

    router.register("locker-open", open_locker)
    return router


def test_executes_once_refuses_replay_even_after_restart_and_refuses_expired(tmp_path: Path) -> None:
    sink, calls = MemorySink("dev-a"), []
    router = _router(tmp_path, sink, calls)
    assert router.handle(_open("c-1")).status is ResultStatus.DONE
    assert router.handle(_open("c-1")).status is ResultStatus.REFUSED_REPLAY
    router.close()
    restarted = _router(tmp_path, sink, calls)
    assert restarted.handle(_open("c-1")).status is ResultStatus.REFUSED_REPLAY, "seen ids survive a restart"
    assert restarted.handle(_open("c-2", expires_in=-1)).status is ResultStatus.REFUSED_EXPIRED
    assert calls == ["c-1"], "executed exactly once; expired and replayed commands never run"
    results: list[CommandResult] = sink.of(Channel.RESULT)
    assert [(r.command_id, r.status) for r in results] == [
        ("c-1", ResultStatus.DONE),
        ("c-1", ResultStatus.REFUSED_REPLAY),
        ("c-1", ResultStatus.REFUSED_REPLAY),
        ("c-2", ResultStatus.REFUSED_EXPIRED),
    ]


def test_invalid_foreign_unknown_and_failing_commands_are_answered(tmp_path: Path) -> None:
    sink, calls = MemorySink("dev-a"), []
    router = _router(tmp_path, sink, calls)

    def broken(command: ReloadConfig) -> tuple[ResultStatus, str]:
        raise OSError("disk gone")

    router.register("reload-config", broken)
    bad = router.handle(_open("c-3").replace(b'"compartment":3', b'"compartment":0'))
    assert bad.status is ResultStatus.REFUSED_INVALID and bad.command_id == "c-3" and "compartment" in bad.detail
    assert router.handle(b"not json").command_id is None
    assert router.handle(_open("c-4", device="dev-b")).status is ResultStatus.REFUSED_INVALID
    reload = encode(
        ReloadConfig(
            id="c-5", device="dev-a", issued_at=NOW, expires_at=NOW + timedelta(minutes=1), action="reload-config"
        )
    )
    failed = router.handle(reload)
    assert failed.status is ResultStatus.FAILED and "disk gone" in failed.detail
    assert router.handle(reload).status is ResultStatus.REFUSED_REPLAY, "a failed command is not retried by replay"
    assert calls == []
    assert len(sink.of(Channel.RESULT)) == 4  # the unparseable one has no id to answer


def test_hub_command_reaches_the_device_and_its_result_comes_back(broker: BrokerSetup, tmp_path: Path) -> None:
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db, writer_process=False)
    transport = Transport(agent_config(broker, "dev-a", tmp_path))
    opened: list[int] = []
    transport.router.register("locker-open", lambda c: (opened.append(c.compartment), (ResultStatus.DONE, "ok"))[1])
    transport.start()
    try:
        assert transport.link.wait_connected(10)
        assert wait_until(lambda: ingest.site_of("dev-a") is not None, 10)
        now = datetime.now(UTC)
        command = LockerOpen(
            id="cmd-1",
            device="dev-a",
            issued_at=now,
            expires_at=now + timedelta(minutes=1),
            action="locker-open",
            compartment=7,
        )
        ingest.publish_command(command)
        ingest.publish_command(command)  # a replay on the wire

        def results() -> list[tuple[str, str]]:
            with sqlite3.connect(db) as conn:
                return [tuple(r) for r in conn.execute("SELECT command_id, status FROM command_results ORDER BY seq")]

        assert wait_until(lambda: len(results()) == 2, 15), results()
        assert results() == [("cmd-1", "done"), ("cmd-1", "refused-replay")]
        assert opened == [7]
    finally:
        transport.stop()
        ingest.stop()
