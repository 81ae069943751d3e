"""A real full disk (a tiny tmpfs) under a running agent with lockers, a real broker and the hub.

The disk fills while a producer emits events and a resident types codes, then is freed. Every event the
producer was told was stored arrives exactly once, the outbox drains (no sequence number was burned), the
keypad answered throughout and opens again, and the hub holds the raised and cleared ``disk-full`` alarm.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge_agent.agent import Agent
from edge_agent.deploy.sdnotify import SystemdNotifier
from edge_agent.lockers.machine import CodeOutcome
from edge_agent.lockers.sim import prepare
from hub_protocol.commands import CodeHash, ReservationSet, command_header
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import Channel
from tests.conftest import BrokerSetup, agent_config, wait_for, wait_until
from tests.lockers.conftest import CONFIG
from tests.storage_faults import tiny_tmpfs
from tests.transport.helpers import alarm_fields, report, start_ingest

pytestmark = pytest.mark.slow

DISK_BYTES = 3 * 1024 * 1024


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs: needs the right to mount (root in CI's container); skipped otherwise."""
    with tiny_tmpfs(tmp_path / "disk", DISK_BYTES) as mount:
        yield mount


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:  # closing a full file raises too
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    with contextlib.suppress(OSError), (disk / "filler-tail").open("wb") as out:  # the last partial blocks
        while True:
            out.write(b"\0" * 512)
            out.flush()
    return filler


def test_a_full_disk_day_loses_nothing_and_the_keypad_answers_again(
    broker: BrokerSetup, tmp_path: Path, tiny_disk: Path
) -> None:
    db = tmp_path / "hub.sqlite3"
    ingest = start_ingest(broker, db)
    config = agent_config(broker, "dev-a", tiny_disk, lockers=dict(CONFIG))
    pins = MockFactory()
    assert config.lockers is not None
    doors, matrix = prepare(pins, config.lockers)
    doors.close_all()
    agent = Agent(config, pin_factory=pins, notifier=SystemdNotifier({}))
    agent.watch.quiet_s = 2.0
    bank = agent.lockers
    assert bank is not None and matrix is not None
    outcomes: list[CodeOutcome] = []
    bank.machine.listeners.append(outcomes.append)
    agent.start()
    server = threading.Thread(target=agent.serve, daemon=True)
    server.start()

    produced: list[int] = []
    refused = [0]
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.wait(0.01):
            try:
                agent.transport.sink.emit(Channel.ALARM, alarm_fields(n))
            except sqlite3.Error:
                refused[0] += 1
                continue  # the same n again: the producer's own record says what was stored
            produced.append(n)
            n += 1

    producer = threading.Thread(target=produce, daemon=True)
    try:
        header = command_header("dev-a", timedelta(hours=1), "op-anna", prefix="cmd")
        code = CodeHash.for_code("482913", bank.now() + timedelta(hours=4))
        status, detail = bank.handlers()["reservation-set"](
            ReservationSet(
                action="reservation-set", **header, compartment=1, reservation="parcel-1", purpose="dropoff", code=code
            )  # type: ignore[arg-type]
        )
        assert status is ResultStatus.DONE, detail
        producer.start()
        wait_for(lambda: len(produced) > 20, 10, "events before the disk fills")

        filler = _fill(tiny_disk)
        wait_for(lambda: refused[0] > 0, 30, "the outbox to meet the full disk")
        assert agent.transport.health.sample().disk_full, "health reports the full disk while it lasts"
        matrix.type("482913#")
        wait_for(lambda: len(outcomes) == 1, 10, "an answer to a code typed on the full disk")
        matrix.type("111111#")
        wait_for(lambda: len(outcomes) == 2, 10, "an answer to a second code")
        # Using the code up needs a write, which the full disk refuses: nothing opens, the resident is told.
        assert [o.result for o in outcomes] == ["unavailable", "unavailable"]
        assert not bank.hardware.lock_energised(1)
        assert bank.keypad is not None and bank.keypad._thread is not None and bank.keypad._thread.is_alive()
        time.sleep(1.0)

        filler.unlink()
        (tiny_disk / "filler-tail").unlink()
        count_at_free = len(produced)
        wait_for(lambda: len(produced) > count_at_free + 20, 20, "events stored again once the disk has room")
        matrix.type("482913#")
        wait_for(lambda: len(outcomes) == 3, 10, "the keypad to answer once the disk has room")
        assert outcomes[-1].result == "opened", outcomes[-1]
        doors.set_door(1, closed=False)
        doors.set_door(1, closed=True)
        stop.set()
        producer.join(5)

        depth = lambda: agent.transport.outbox.stats().depth  # noqa: E731
        assert wait_until(lambda: depth() == 0 and not agent.watch.disk_full, 40), (
            f"outbox not drained ({depth()} left): a burned number would hold the hub's watermark"
        )
        assert wait_until(lambda: _disk_alarms(db) == [1, 0], 20), _disk_alarms(db)
        assert wait_until(lambda: depth() == 0, 60), _left_over(agent, db)
        with sqlite3.connect(db) as conn:
            details = [d for (d,) in conn.execute("SELECT detail FROM device_alarms WHERE alarm = 'sensor-fault'")]
            hub_locker = sorted(
                (at, comp, cause)
                for at, comp, cause in conn.execute("SELECT at, compartment, cause FROM locker_events")
            )
            gaps = conn.execute("SELECT COUNT(*) FROM sequence_gaps").fetchone()[0]
        got = [int(d.removeprefix("n=")) for d in details]
        figures = report("disk full for a while", set(produced), got, ingest.stats().duplicates)
        print(
            f"[disk full] emits refused: {refused[0]}, storage failures: {agent.watch.failures}, keypad: {[o.result for o in outcomes]}"
        )
        assert figures["missing"] == 0 and figures["extra"] == 0 and figures["stored_twice"] == 0
        assert gaps == 0, "no hole in the sequence ever reached the hub"
        local = sorted(
            (_ts(h["at"]), h["compartment"], h["cause"]) for h in bank.machine.history() if h["cause"] != "recovered"
        )
        assert [x for x in hub_locker if x[2] != "recovered"] == local, "every locker event once"
    finally:
        stop.set()
        agent.request_stop()
        server.join(15)
        ingest.stop()


def _left_over(agent: Agent, db: Path) -> str:
    """What the outbox still holds against what the hub stored: says where an acknowledgement stopped."""
    with agent.transport.outbox._lock:
        held = agent.transport.outbox._conn.execute("SELECT boot, seq, channel FROM events ORDER BY id").fetchall()
    with sqlite3.connect(db) as conn:
        marks = conn.execute("SELECT device, boot, upto, max_seq FROM boot_watermarks").fetchall()
    return f"outbox holds {held}; link {agent.transport.link.stats}; hub marks {marks}"


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _disk_alarms(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        return [a for (a,) in conn.execute("SELECT active FROM device_alarms WHERE alarm = 'disk-full' ORDER BY seq")]
