"""Fixtures for the logistics tests: a fresh database, a real broker, the service wired to both."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub_protocol.lockers import CompartmentSize, CompartmentState, LockerEvent
from hub_server.config import LogisticsConfig
from hub_server.logistics.service import CompartmentSpec, LockerSpec, Logistics
from hub_server.store.db import Database
from tests.conftest import BrokerSetup
from tests.logistics.helpers import Clock, DeviceListener, MqttCommandPublisher

DEVICE = "dev-a"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "hub.sqlite3")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Bench:
    """The service under test with everything it talks to."""

    logistics: Logistics
    publisher: MqttCommandPublisher
    device: DeviceListener
    clock: Clock
    boot: str = "boot-1"
    seq: int = 0

    def event(
        self,
        compartment: int,
        state: CompartmentState,
        cause: str,
        reservation: str | None = None,
        previous: CompartmentState | None = None,
        door_open: bool = False,
        at: datetime | None = None,
        device: str = DEVICE,
    ) -> LockerEvent:
        """Feed the service one locker event as ingest would, numbered like a device's outbox."""
        self.seq += 1
        event = LockerEvent(
            device=device,
            boot=self.boot,
            seq=self.seq,
            at=at or self.clock(),
            compartment=compartment,
            state=state,
            previous=previous,
            cause=cause,
            reservation=reservation,
            door_open=door_open,
        )
        self.logistics.on_event(event)
        return event

    def report_all_free(self, numbers: range, device: str = DEVICE) -> None:
        for n in numbers:
            self.event(n, CompartmentState.FREE, "recovered", device=device)


STANDARD_BANK = LockerSpec(
    compartments=[
        CompartmentSpec(number=1, size=CompartmentSize.S),
        CompartmentSpec(number=2, size=CompartmentSize.S, accessible=True),
        CompartmentSpec(number=3, size=CompartmentSize.M),
        CompartmentSpec(number=4, size=CompartmentSize.M, accessible=True),
        CompartmentSpec(number=5, size=CompartmentSize.L),
    ]
)


@pytest.fixture
def make_bench(db: Database, broker: BrokerSetup, clock: Clock) -> Iterator[Callable[..., Bench]]:
    opened: list[Bench] = []

    def factory(notify: bool = False, **config: Any) -> Bench:
        publisher = MqttCommandPublisher(broker)
        device = DeviceListener(broker, DEVICE)
        logistics = Logistics(
            db,
            LogisticsConfig(**config),
            publisher,
            "https://hub.example.org/",
            link_key=secrets.token_bytes(32),
            notify=notify,
            clock=clock,
        )
        logistics.set_compartments(DEVICE, STANDARD_BANK)
        bench = Bench(logistics, publisher, device, clock)
        bench.report_all_free(range(1, 6))
        opened.append(bench)
        return bench

    yield factory
    for bench in opened:
        bench.publisher.close()
        bench.device.close()


@pytest.fixture
def bench(make_bench: Callable[..., Bench]) -> Bench:
    return make_bench()
