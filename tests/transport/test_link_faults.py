"""The network thread against faults of its own callbacks and of itself, on a real Mosquitto."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.transport.service import Transport
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_for
from tests.transport.helpers import alarm_fields, start_ingest


def _stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events WHERE channel = 'alarm'").fetchone()[0])


@pytest.fixture
def hub_db(broker: BrokerSetup, tmp_path: Path) -> Iterator[Path]:
    """A running hub ingest on the test broker; yields its database."""
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    yield db
    ingest.stop()


def test_an_ack_that_raises_once_does_not_end_the_link(
    broker: BrokerSetup, hub_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho re-raises a callback's exception out of loop(): unguarded, the first failed ack ended the thread."""
    db = hub_db
    transport = Transport(agent_config(broker, "dev-a", tmp_path))
    real_ack = transport.outbox.ack
    raised = threading.Event()

    def ack_once_broken(boot: str, upto: int) -> int:
        if not raised.is_set():
            raised.set()
            raise sqlite3.OperationalError("database is locked")
        return real_ack(boot, upto)

    monkeypatch.setattr(transport.outbox, "ack", ack_once_broken)
    try:
        transport.start()
        transport.sink.emit(Channel.ALARM, alarm_fields(0))
        wait_for(raised.is_set, 15, "the first ack")
        for n in range(1, 30):
            transport.sink.emit(Channel.ALARM, alarm_fields(n))
        wait_for(lambda: _stored(db) == 30, 20, "all 30 events at the hub")
        wait_for(lambda: transport.outbox.stats().depth == 0, 20, "the outbox emptied by later acks")
        assert transport.link.alive() and transport.link.connected
    finally:
        transport.stop()


class _ThreadKiller(BaseException):
    """Not an Exception: gets past every guard, as a bug in paho's own loop could."""


def test_a_dead_link_thread_is_detected_and_rebuilt(
    broker: BrokerSetup, hub_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = hub_db
    transport = Transport(agent_config(broker, "dev-a", tmp_path))
    link = transport.link
    real_session = link._session
    killed = threading.Event()

    def session_dies_once(client: object, generation: int) -> None:
        if not killed.is_set():
            killed.set()
            raise _ThreadKiller
        real_session(client, generation)  # type: ignore[arg-type]

    monkeypatch.setattr(link, "_session", session_dies_once)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the thread's death is the point
    try:
        transport.start()
        wait_for(killed.is_set, 15, "the link thread's first session")
        wait_for(lambda: not transport.progressing(), 5, "the dead thread to be seen as not progressing")
        for n in range(20):
            transport.sink.emit(Channel.ALARM, alarm_fields(n))
        # The transport's supervisor revives the link; nothing else in this test touches it.
        wait_for(lambda: _stored(db) == 20, 20, "all 20 events at the hub after the link was rebuilt")
        assert transport.progressing()
    finally:
        transport.stop()
