"""Alarms: device alarms raised and cleared, the hub's own conclusions from what the ingest stored, and acks.

The ingest's own writer (``IngestCore``) stores the device messages, so the alarms read real tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub_protocol.alarms import AlarmKind, DeviceAlarm
from hub_protocol.codec import encode
from hub_protocol.envelope import Availability, AvailabilityState, CameraState, Health, OutboxGap
from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_protocol.topics import Channel, device_topic
from hub_server.accounts import audit
from hub_server.config import AlarmsConfig, IngestConfig
from hub_server.fleet.alarms import AlarmNotFound, AlarmService
from hub_server.ingest.live import LiveRegistry
from hub_server.ingest.service import IngestCore
from hub_server.logistics.notifications import WebhookNotifier
from hub_server.store.db import Database
from tests.logistics.helpers import Clock

SITE, DEVICE = "test-street", "dev-a"


@dataclass
class Rig:
    alarms: AlarmService
    ingest: IngestCore
    clock: Clock
    notices: list[tuple[str, dict[str, object]]]
    seq: int = 0

    def send(self, channel: Channel, model: object) -> None:
        topic = device_topic("cot", SITE, DEVICE, channel)
        self.ingest.process([(topic, encode(model), self.clock().timestamp())])  # type: ignore[arg-type]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def device_alarm(self, kind: AlarmKind, active: bool, compartment: int | None = None) -> None:
        self.send(
            Channel.ALARM,
            DeviceAlarm(
                device=DEVICE,
                boot="b1",
                seq=self.next_seq(),
                alarm=kind,
                active=active,
                at=self.clock(),
                compartment=compartment,
                detail="5 wrong codes" if kind is AlarmKind.LOCKOUT else "",
            ),
        )

    def health(self, camera: CameraState = CameraState.OK, oldest_s: float = 0) -> None:
        self.send(
            Channel.HEALTH,
            Health(
                device=DEVICE,
                boot="b1",
                at=self.clock(),
                uptime_s=100,
                version="0.1.0",
                load1=0.1,
                mem_used_fraction=0.2,
                disk_free_bytes=10**9,
                outbox_depth=3 if oldest_s else 0,
                outbox_oldest_age_s=oldest_s,
                dropped_total=0,
                camera_state=camera,
                fps=5,
            ),
        )

    def status(self, state: AvailabilityState) -> None:
        self.send(Channel.STATUS, Availability(device=DEVICE, boot="b1", state=state))

    def round(self) -> None:
        self.ingest.tick()
        self.alarms.poll_device_alarms()
        self.alarms.evaluate()

    def open_kinds(self) -> set[tuple[str, int | None]]:
        return {(a.kind, a.compartment) for a in self.alarms.list_alarms(active_only=True)}


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    db = Database(tmp_path / "hub.sqlite3")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    live = LiveRegistry()
    notices: list[tuple[str, dict[str, object]]] = []
    live.subscribe(lambda kind, data: notices.append((kind, data)))
    config = AlarmsConfig(offline_after_s=300, door_open_s=120, outbox_backlog_s=600, sequence_gap_s=60)
    ingest = IngestCore(
        db.location, "cot", IngestConfig(offline_after_s=180, gap_after_s=30), clock=lambda: clock().timestamp()
    )
    yield Rig(AlarmService(db, config, live, clock=clock), ingest, clock, notices)
    ingest.close()


def test_device_alarm_raised_refreshed_and_cleared(rig: Rig) -> None:
    rig.status(AvailabilityState.ONLINE)
    rig.device_alarm(AlarmKind.LOCKOUT, True)
    rig.round()
    [alarm] = rig.alarms.list_alarms(active_only=True)
    assert (alarm.kind, alarm.source, alarm.detail) == ("lockout", "device", "5 wrong codes")
    assert alarm.started_at == rig.clock()

    rig.clock.advance(seconds=30)
    rig.device_alarm(AlarmKind.LOCKOUT, True)  # raised again while open: the same alarm, seen later
    rig.round()
    [again] = rig.alarms.list_alarms()
    assert again.id == alarm.id and again.last_seen_at == rig.clock()

    rig.clock.advance(seconds=30)
    rig.device_alarm(AlarmKind.LOCKOUT, False)
    rig.round()
    assert rig.alarms.list_alarms(active_only=True) == []
    ended = rig.alarms.get(alarm.id)
    assert ended.ended_at == rig.clock() and not ended.active
    assert [(k, d["active"]) for k, d in rig.notices if d.get("origin") == "hub-alarms"] == [
        ("alarm", True),
        ("alarm", False),
    ]
    # Polling again applies nothing twice.
    assert rig.alarms.poll_device_alarms() == 0
    assert len(rig.alarms.list_alarms()) == 1


def test_compartment_alarms_are_separate(rig: Rig) -> None:
    rig.device_alarm(AlarmKind.FORCED_OPEN, True, compartment=2)
    rig.device_alarm(AlarmKind.FORCED_OPEN, True, compartment=3)
    rig.device_alarm(AlarmKind.FORCED_OPEN, False, compartment=2)
    rig.round()
    assert rig.open_kinds() == {("forced-open", 3)}


def test_offline_longer_than_the_limit(rig: Rig) -> None:
    rig.status(AvailabilityState.ONLINE)
    rig.round()
    rig.status(AvailabilityState.OFFLINE)  # last will
    went = rig.clock()
    rig.clock.advance(seconds=299)
    rig.round()
    assert ("offline", None) not in rig.open_kinds()
    rig.clock.advance(seconds=1)
    rig.round()
    [alarm] = rig.alarms.list_alarms(active_only=True, kind="offline")
    assert alarm.started_at == went and "connection lost" in alarm.detail
    assert alarm.last_seen_at == rig.clock()
    rig.clock.advance(seconds=30)
    rig.round()
    assert rig.alarms.get(alarm.id).last_seen_at == rig.clock()  # still offline, checked just now
    rig.status(AvailabilityState.ONLINE)
    rig.round()
    assert rig.alarms.get(alarm.id).ended_at == rig.clock()


def test_revoked_device_is_not_reported_offline(rig: Rig) -> None:
    rig.status(AvailabilityState.ONLINE)
    rig.round()
    rig.status(AvailabilityState.OFFLINE)
    rig.clock.advance(seconds=600)
    assert rig.alarms.live is not None
    rig.alarms.live.revoked = frozenset({DEVICE})
    rig.round()
    assert rig.open_kinds() == set()
    rig.alarms.live.revoked = frozenset()
    rig.round()
    assert rig.open_kinds() == {("offline", None)}


def test_silence_counts_as_offline(rig: Rig) -> None:
    rig.status(AvailabilityState.ONLINE)
    rig.round()
    rig.clock.advance(seconds=181)  # the ingest calls it offline by silence
    rig.round()
    rig.clock.advance(seconds=300)
    rig.round()
    [alarm] = rig.alarms.list_alarms(active_only=True, kind="offline")
    assert "no messages" in alarm.detail


def test_sequence_gap_then_filled(rig: Rig) -> None:
    def locker(seq: int) -> LockerEvent:
        return LockerEvent(
            device=DEVICE,
            boot="b1",
            seq=seq,
            at=rig.clock(),
            compartment=1,
            state=CompartmentState.FREE,
            previous=None,
            cause="recovered",
            door_open=False,
        )

    rig.status(AvailabilityState.ONLINE)
    rig.send(Channel.LOCKER, locker(1))
    rig.send(Channel.LOCKER, locker(4))  # 2 and 3 missing
    rig.round()
    rig.clock.advance(seconds=31)
    rig.round()  # the ingest sees the hole twice, 30 s apart: recorded as a gap
    rig.clock.advance(seconds=31)
    rig.round()
    assert ("sequence-gap", None) not in rig.open_kinds()  # recorded, not yet old enough for an alarm
    rig.clock.advance(seconds=60)
    rig.round()
    [alarm] = rig.alarms.list_alarms(active_only=True, kind="sequence-gap")
    assert "events 2-3 missing" in alarm.detail
    rig.send(Channel.LOCKER, locker(2))
    rig.send(Channel.LOCKER, locker(3))
    rig.round()
    assert rig.alarms.get(alarm.id).ended_at is not None


def test_outbox_dropping_ends_after_a_quiet_time(rig: Rig) -> None:
    rig.status(AvailabilityState.ONLINE)
    gap = OutboxGap(device=DEVICE, boot="b1", seq=1, dropped_boot="b0", first_seq=10, last_seq=19, dropped_total=10)
    rig.send(Channel.GAP, gap)
    rig.round()
    [alarm] = rig.alarms.list_alarms(active_only=True, kind="outbox-dropping")
    assert "10 since install" in alarm.detail
    rig.clock.advance(seconds=3599)
    rig.status(AvailabilityState.ONLINE)
    rig.round()
    assert rig.alarms.get(alarm.id).active
    rig.clock.advance(seconds=2)
    rig.round()
    assert not rig.alarms.get(alarm.id).active


def test_camera_down_and_backlog_from_health(rig: Rig) -> None:
    rig.status(AvailabilityState.ONLINE)
    rig.health(camera=CameraState.FAILED, oldest_s=900)
    rig.round()
    assert {("camera-down", None), ("outbox-backlog", None)} <= rig.open_kinds()
    rig.clock.advance(seconds=10)
    rig.health(camera=CameraState.OK, oldest_s=5)
    rig.round()
    assert rig.open_kinds() == set()


def test_door_left_open_by_locker_events(rig: Rig, tmp_path: Path) -> None:
    from hub_server.store import logistics as logistics_store

    db = rig.alarms.db
    opened = rig.clock()
    with db.write() as conn:
        logistics_store.record_compartment_state(conn, DEVICE, 2, "occupied", True, opened, "b1", 1)
    rig.clock.advance(seconds=119)
    rig.alarms.evaluate()
    assert rig.open_kinds() == set()
    rig.clock.advance(seconds=1)
    rig.alarms.evaluate()
    [alarm] = rig.alarms.list_alarms(active_only=True)
    assert (alarm.kind, alarm.compartment, alarm.started_at) == ("door-left-open", 2, opened)
    with db.write() as conn:
        logistics_store.record_compartment_state(conn, DEVICE, 2, "occupied", False, rig.clock(), "b1", 2)
    rig.alarms.evaluate()
    assert not rig.alarms.get(alarm.id).active


def test_acknowledge_goes_to_the_audit_log_once(rig: Rig) -> None:
    rig.device_alarm(AlarmKind.SENSOR_FAULT, True, compartment=4)
    rig.round()
    [alarm] = rig.alarms.list_alarms(unacknowledged=True)
    acked = rig.alarms.acknowledge(alarm.id, "user:alice")
    assert acked.acknowledged_by == "user:alice" and acked.acknowledged_at == rig.clock()
    assert acked.active  # acknowledged is not ended
    rig.clock.advance(seconds=5)
    again = rig.alarms.acknowledge(alarm.id, "user:bob")
    assert again.acknowledged_by == "user:alice"
    entries = audit.query(rig.alarms.db.conn, action="alarm.ack")
    assert [(e.actor, e.target, e.detail["kind"]) for e in entries] == [
        ("user:alice", f"alarm:{alarm.id}", "sensor-fault")
    ]
    assert rig.alarms.list_alarms(unacknowledged=True) == []
    with pytest.raises(AlarmNotFound):
        rig.alarms.acknowledge(alarm.id + 100, "user:alice")


def test_prune_keeps_open_and_recent(rig: Rig) -> None:
    rig.device_alarm(AlarmKind.LOCKOUT, True)
    rig.device_alarm(AlarmKind.SENSOR_FAULT, True, compartment=1)
    rig.round()
    rig.device_alarm(AlarmKind.LOCKOUT, False)
    rig.round()
    assert rig.alarms.prune(rig.clock() - timedelta(seconds=1)) == 0
    assert rig.alarms.prune(rig.clock() + timedelta(seconds=1)) == 1
    assert rig.open_kinds() == {("sensor-fault", 1)}


async def test_operators_get_alarm_start_and_end_on_the_webhook(rig: Rig) -> None:
    from tests.logistics.test_notifications import _receiver

    receiver = await _receiver()
    try:
        rig.alarms.notify = True
        notifier = WebhookNotifier(receiver.url)
        receiver.statuses = [503]  # the receiver is down at first: notices wait, in order
        rig.device_alarm(AlarmKind.FORCED_OPEN, True, compartment=2)
        rig.round()
        assert await rig.alarms.dispatch_notices(notifier) == 0
        rig.device_alarm(AlarmKind.FORCED_OPEN, False, compartment=2)
        rig.round()
        assert await rig.alarms.dispatch_notices(notifier) == 2
        assert await rig.alarms.dispatch_notices(notifier) == 0
        raised, ended = receiver.received
        assert (raised["event"], raised["kind"], raised["compartment"], raised["device"]) == (
            "alarm-raised",
            "forced-open",
            2,
            DEVICE,
        )
        assert ended["event"] == "alarm-ended" and ended["alarm"] == raised["alarm"] and "ended_at" in ended
    finally:
        await receiver.server.close()


async def test_no_notices_collected_without_a_webhook(rig: Rig) -> None:
    rig.device_alarm(AlarmKind.LOCKOUT, True)
    rig.round()
    assert rig.alarms.list_alarms(active_only=True)
    assert not rig.alarms._notices
