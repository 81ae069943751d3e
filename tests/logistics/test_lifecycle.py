"""A delivery from creation to collection or return, with commands checked on a real broker."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from hub_protocol.commands import ReservationCancel, ReservationSet
from hub_protocol.envelope import CommandResult, ResultStatus
from hub_protocol.lockers import CodePurpose, CompartmentSize, CompartmentState
from hub_server.logistics import codes
from hub_server.logistics.service import DeliveryRequest, DeliveryStatus, LogisticsError, NotFound
from hub_server.store import logistics as store
from tests.conftest import BrokerSetup
from tests.logistics.conftest import Bench
from tests.logistics.helpers import MqttCommandPublisher

RESERVED, OCCUPIED, FREE = CompartmentState.RESERVED, CompartmentState.OCCUPIED, CompartmentState.FREE


def _create(bench: Bench, kind: str = "delivery") -> tuple[str, str, str, int]:
    created = bench.logistics.create(
        DeliveryRequest(kind=kind, size=CompartmentSize.M, resident_name="Sam", resident_contact="sam@example.org")
    )
    token = created.resident_link.rsplit("/", 1)[1]
    return created.delivery.id, created.dropoff_code, token, created.delivery.compartment


def test_created_delivery_sends_the_dropoff_hash_and_keeps_no_digits(bench: Bench) -> None:
    created = bench.logistics.create(
        DeliveryRequest(size=CompartmentSize.M, resident_name="Sam", resident_contact="sam@example.org")
    )
    assert re.fullmatch(r"[0-9]{8}", created.dropoff_code)
    assert created.resident_link.startswith("https://hub.example.org/r/")
    assert created.delivery.status is DeliveryStatus.AWAITING_DROPOFF

    [command] = bench.device.wait_for(1)
    assert isinstance(command, ReservationSet)
    assert command.purpose is CodePurpose.DROPOFF and command.target_state is RESERVED
    assert command.reservation == created.delivery.id and command.compartment == created.delivery.compartment
    assert codes.matches(created.dropoff_code, codes.StoredHash(command.code.salt, command.code.sha256))
    assert command.code.expires_at == bench.clock() + timedelta(hours=72)

    # Nothing in the database holds either code in clear.
    dump = "\n".join(bench.logistics.db.conn.dump())
    assert created.dropoff_code not in dump
    token = created.resident_link.rsplit("/", 1)[1]
    assert token not in dump


def test_full_life_cycle_dropoff_pickup(bench: Bench) -> None:
    delivery, dropoff_code, token, n = _create(bench)
    bench.device.wait_for(1)
    bench.event(n, RESERVED, "reservation", delivery, previous=FREE)
    bench.event(n, RESERVED, "door", delivery, door_open=True)
    assert bench.logistics.get(delivery).status is DeliveryStatus.AWAITING_DROPOFF

    bench.clock.advance(minutes=3)
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    ready = bench.logistics.get(delivery)
    assert ready.status is DeliveryStatus.READY
    assert ready.dropped_at == bench.clock()
    assert ready.pickup_expires_at == bench.clock() + timedelta(days=7)

    commands = bench.device.wait_for(2)
    pickup = commands[1]
    assert isinstance(pickup, ReservationSet) and pickup.purpose is CodePurpose.PICKUP
    assert pickup.target_state is OCCUPIED and pickup.code.expires_at == ready.pickup_expires_at
    pickup_code = bench.logistics.reveal_pickup_code(token)
    assert re.fullmatch(r"[0-9]{8}", pickup_code) and pickup_code != dropoff_code
    assert codes.matches(pickup_code, codes.StoredHash(pickup.code.salt, pickup.code.sha256))
    with pytest.raises(LogisticsError, match="shown once already"):
        bench.logistics.reveal_pickup_code(token)
    view = bench.logistics.resident_view(token)
    assert view is not None and not view.code_available
    assert pickup_code not in "\n".join(bench.logistics.db.conn.dump())

    bench.clock.advance(hours=5)
    bench.event(n, FREE, "pickup", delivery, previous=OCCUPIED)
    done = bench.logistics.get(delivery)
    assert done.status is DeliveryStatus.COLLECTED and done.finished_at == bench.clock()
    compartment = next(c for c in bench.logistics.compartments("dev-a") if c.number == n)
    assert compartment.state is FREE and compartment.delivery is None


def test_replayed_events_apply_once(bench: Bench) -> None:
    delivery, _, _, n = _create(bench)
    event = bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    bench.device.wait_for(2)
    bench.logistics.on_event(event)  # the same (device, boot, seq) again
    bench.logistics.on_event(event)
    with pytest.raises(AssertionError):
        bench.device.wait_for(3, timeout=0.5)  # no second pickup command


def test_expiry_issues_a_return_code_and_return_ends_it(bench: Bench) -> None:
    delivery, _, token, n = _create(bench)
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    pickup_code = bench.logistics.reveal_pickup_code(token)
    bench.clock.advance(days=7, seconds=-1)
    assert bench.logistics.expire_due() == []
    bench.clock.advance(seconds=1)
    [issued] = bench.logistics.expire_due()
    assert issued.delivery == delivery and issued.purpose == "return" and len(issued.code) == 8
    assert bench.logistics.get(delivery).status is DeliveryStatus.EXPIRED

    commands = bench.device.wait_for(3)
    ret = commands[2]
    assert isinstance(ret, ReservationSet) and ret.purpose is CodePurpose.RETURN
    assert codes.matches(issued.code, codes.StoredHash(ret.code.salt, ret.code.sha256))
    assert not codes.matches(pickup_code, codes.StoredHash(ret.code.salt, ret.code.sha256))
    assert ret.code.expires_at == issued.expires_at

    # An operator can replace a lost return code; the old one stops being the device's return code.
    again = bench.logistics.issue_return_code(delivery, operator="op-1")
    assert again.code != issued.code
    newest = bench.device.wait_for(4)[3]
    assert newest.operator == "op-1" and codes.matches(
        again.code, codes.StoredHash(newest.code.salt, newest.code.sha256)
    )

    bench.event(n, FREE, "return", delivery, previous=OCCUPIED)
    assert bench.logistics.get(delivery).status is DeliveryStatus.RETURNED
    assert bench.logistics.expire_due() == []


def test_pickup_code_is_revealed_only_when_ready(bench: Bench) -> None:
    delivery, _, token, n = _create(bench)
    view = bench.logistics.resident_view(token)
    assert view is not None and not view.code_available
    with pytest.raises(LogisticsError, match="when the item is ready"):
        bench.logistics.reveal_pickup_code(token)
    with pytest.raises(NotFound):
        bench.logistics.reveal_pickup_code("y" * 43)
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    view = bench.logistics.resident_view(token)
    assert view is not None and view.code_available
    bench.clock.advance(days=8)
    bench.logistics.expire_due()
    with pytest.raises(LogisticsError, match="expired"):
        bench.logistics.reveal_pickup_code(token)


def test_unused_dropoff_is_cancelled_after_its_hours(bench: Bench) -> None:
    delivery, _, _, _n = _create(bench)
    bench.clock.advance(hours=72)
    assert bench.logistics.expire_due() == []
    assert bench.logistics.get(delivery).status is DeliveryStatus.CANCELLED
    commands = bench.device.wait_for(2)
    assert isinstance(commands[1], ReservationCancel) and commands[1].reservation == delivery


def _health(bench: Bench, at_offset_s: float, depth: int, oldest_s: float) -> None:
    from hub_protocol.envelope import CameraState, Health

    health = Health(
        device="dev-a",
        boot="b1",
        at=bench.clock() + timedelta(seconds=at_offset_s),
        uptime_s=10,
        version="0.1.0",
        load1=0.1,
        mem_used_fraction=0.2,
        disk_free_bytes=10**9,
        outbox_depth=depth,
        outbox_oldest_age_s=oldest_s,
        dropped_total=0,
        camera_state=CameraState.ABSENT,
        fps=0,
    )
    with bench.logistics.db.write() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO health_latest (device, at, received_at, payload) VALUES (?, ?, ?, ?)",
            ("dev-a", health.at.timestamp(), health.at.timestamp(), health.model_dump_json()),
        )


def test_expired_dropoff_waits_until_the_device_has_caught_up(bench: Bench) -> None:
    delivery, _, _, n = _create(bench)
    bench.clock.advance(hours=72, minutes=1)
    _health(bench, -120, depth=0, oldest_s=0)  # last heard before the code expired: the drop-off may be on its way
    assert bench.logistics.expire_due() == []
    assert bench.logistics.get(delivery).status is DeliveryStatus.AWAITING_DROPOFF
    _health(bench, 0, depth=2, oldest_s=300)  # back, with events from before the expiry still unacknowledged
    bench.logistics.expire_due()
    assert bench.logistics.get(delivery).status is DeliveryStatus.AWAITING_DROPOFF
    # The drop-off made offline arrives: the item is ready, not cancelled.
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED, at=bench.clock() - timedelta(minutes=3))
    assert bench.logistics.get(delivery).status is DeliveryStatus.READY
    assert not any(isinstance(c, ReservationCancel) for c in bench.device.wait_for(2))


def test_expired_dropoff_is_cancelled_once_the_device_has_caught_up(bench: Bench) -> None:
    delivery, _, _, _ = _create(bench)
    bench.clock.advance(hours=72, minutes=1)
    _health(bench, 0, depth=1, oldest_s=5)  # only a newer event is waiting: everything before expiry is stored
    bench.logistics.expire_due()
    assert bench.logistics.get(delivery).status is DeliveryStatus.CANCELLED


def test_pickup_reported_after_the_hub_expired_it_counts_as_collected(bench: Bench) -> None:
    delivery, _, _, n = _create(bench)
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    bench.clock.advance(days=7, minutes=1)
    bench.logistics.expire_due()
    assert bench.logistics.get(delivery).status is DeliveryStatus.EXPIRED
    ret = bench.device.wait_for(3)[2]
    bench.logistics.on_event(
        CommandResult(
            device="dev-a",
            boot="b1",
            seq=50,
            command_id=ret.id,
            status=ResultStatus.FAILED,
            detail="compartment 3 is free; a return code needs occupied",
            at=bench.clock(),
        )
    )
    assert bench.logistics.get(delivery).device_problem is not None
    bench.event(n, FREE, "pickup", delivery, previous=OCCUPIED, at=bench.clock() - timedelta(minutes=2))
    collected = bench.logistics.get(delivery)
    assert collected.status is DeliveryStatus.COLLECTED and collected.device_problem is None


def test_extend_once_by_resident_token(bench: Bench) -> None:
    created = bench.logistics.create(DeliveryRequest(size=CompartmentSize.S, resident_name="Kim"))
    token = created.resident_link.rsplit("/", 1)[1]
    delivery, n = created.delivery.id, created.delivery.compartment

    view = bench.logistics.resident_view(token)
    assert view is not None and view.status is DeliveryStatus.AWAITING_DROPOFF and not view.can_extend
    with pytest.raises(LogisticsError, match="only an item ready"):
        bench.logistics.extend_by_token(token)

    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    before = bench.logistics.get(delivery).pickup_expires_at
    assert before is not None
    view = bench.logistics.extend_by_token(token)
    assert view.pickup_expires_at == before + timedelta(days=3) and not view.can_extend
    extended = bench.device.wait_for(3)[2]
    assert extended.purpose is CodePurpose.PICKUP and extended.code.expires_at == view.pickup_expires_at
    first_pickup = bench.device.commands[1]
    assert (extended.code.salt, extended.code.sha256) == (first_pickup.code.salt, first_pickup.code.sha256)

    with pytest.raises(LogisticsError, match="extended once already"):
        bench.logistics.extend_by_token(token)
    assert bench.logistics.resident_view("x" * 43) is None
    with pytest.raises(NotFound):
        bench.logistics.extend_by_token("x" * 43)


def test_extending_can_be_switched_off(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(extend_days=0)
    delivery, _, _, n = _create(bench)
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)
    with pytest.raises(LogisticsError, match="switched off"):
        bench.logistics.extend(delivery)


def test_a_share_can_be_booked_without_extension(bench: Bench) -> None:
    created = bench.logistics.create(
        DeliveryRequest(kind="share", size=CompartmentSize.S, resident_name="Kim", extendable=False)
    )
    bench.event(created.delivery.compartment, OCCUPIED, "dropoff", created.delivery.id, previous=RESERVED)
    token = created.resident_link.rsplit("/", 1)[1]
    view = bench.logistics.resident_view(token)
    assert view is not None and view.status is DeliveryStatus.READY and not view.can_extend
    with pytest.raises(LogisticsError, match="cannot be extended"):
        bench.logistics.extend_by_token(token)


def test_cancel_by_operator(bench: Bench) -> None:
    delivery, _, _, _ = _create(bench, kind="share")
    cancelled = bench.logistics.cancel(delivery, operator="op-7")
    assert cancelled.status is DeliveryStatus.CANCELLED
    command = bench.device.wait_for(2)[1]
    assert isinstance(command, ReservationCancel) and command.operator == "op-7"
    with pytest.raises(LogisticsError, match="nothing to cancel"):
        bench.logistics.cancel(delivery)
    with pytest.raises(NotFound):
        bench.logistics.cancel("d-unknown")


def test_command_results_are_recorded(bench: Bench) -> None:
    delivery, _, _, _ = _create(bench)
    [command] = bench.device.wait_for(1)
    result = CommandResult(
        device="dev-a", boot="boot-1", seq=99, command_id=command.id, status=ResultStatus.DONE, at=bench.clock()
    )
    bench.logistics.on_event(result)
    [row] = store.commands_for(bench.logistics.db.conn, delivery)
    assert row.result == "done" and row.attempts == 1
    assert bench.logistics.get(delivery).device_problem is None
    # A result from another device for this id changes nothing.
    other = result.model_copy(update={"device": "dev-b", "status": ResultStatus.FAILED})
    bench.logistics.on_event(other)
    assert store.commands_for(bench.logistics.db.conn, delivery)[0].result == "done"


def test_a_refusal_is_shown_on_the_delivery_until_a_later_command_succeeds(bench: Bench) -> None:
    delivery, _, _, n = _create(bench)
    [dropoff] = bench.device.wait_for(1)

    def answer(command_id: str, status: ResultStatus, seq: int, detail: str = "") -> None:
        bench.logistics.on_event(
            CommandResult(
                device="dev-a",
                boot="b1",
                seq=seq,
                command_id=command_id,
                status=status,
                detail=detail,
                at=bench.clock(),
            )
        )

    answer(dropoff.id, ResultStatus.FAILED, 1, "compartment 3 is out of service")
    assert bench.logistics.get(delivery).device_problem == "dropoff: failed: compartment 3 is out of service"
    bench.event(n, OCCUPIED, "dropoff", delivery, previous=RESERVED)  # e.g. fixed on site, then used
    pickup = bench.device.wait_for(2)[1]
    answer(pickup.id, ResultStatus.DONE, 2)
    assert bench.logistics.get(delivery).device_problem is None


def test_commands_wait_for_the_broker_and_are_resent(bench: Bench, broker: BrokerSetup) -> None:
    bench.publisher.close()  # the hub lost its broker connection
    delivery, dropoff_code, _, _ = _create(bench)
    [row] = store.commands_for(bench.logistics.db.conn, delivery)
    assert row.sent_at is None and row.result is None
    assert bench.logistics.resend_pending() == 0  # still down

    bench.logistics.publisher = bench.publisher = MqttCommandPublisher(broker)
    assert bench.logistics.resend_pending() == 1
    [command] = bench.device.wait_for(1)
    assert codes.matches(dropoff_code, codes.StoredHash(command.code.salt, command.code.sha256))
    assert bench.logistics.resend_pending() == 0  # sent, now waiting for the device's answer
    bench.clock.advance(minutes=5)
    assert bench.logistics.resend_pending() == 1  # no answer for five minutes: again, same id
    assert bench.device.wait_for(2)[1].id == command.id
