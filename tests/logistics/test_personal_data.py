"""Name, contact and the resident's link are deleted a set time after the item left the locker."""

from __future__ import annotations

from collections.abc import Callable

from hub_protocol.lockers import CompartmentSize, CompartmentState
from hub_server.logistics.service import DeliveryRequest, DeliveryStatus
from tests.logistics.conftest import Bench

OCCUPIED, FREE = CompartmentState.OCCUPIED, CompartmentState.FREE


def test_personal_data_goes_after_the_configured_days(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(personal_data_days=14, notify=True)
    created = bench.logistics.create(
        DeliveryRequest(size=CompartmentSize.S, resident_name="Noor Jansen", resident_contact="+31 6 1234 5678")
    )
    waiting = bench.logistics.create(
        DeliveryRequest(size=CompartmentSize.S, resident_name="Still Waiting", resident_contact="w@example.org")
    )
    token = created.resident_link.rsplit("/", 1)[1]
    n, delivery = created.delivery.compartment, created.delivery.id
    bench.event(n, OCCUPIED, "dropoff", delivery)
    bench.clock.advance(days=1)
    bench.event(n, FREE, "pickup", delivery)
    assert bench.logistics.get(delivery).status is DeliveryStatus.COLLECTED

    bench.clock.advance(days=14, seconds=-1)
    assert bench.logistics.purge_personal_data() == 0
    assert bench.logistics.get(delivery).resident_name == "Noor Jansen"
    assert bench.logistics.resident_view(token) is not None

    bench.clock.advance(seconds=1)
    assert bench.logistics.purge_personal_data() == 1
    erased = bench.logistics.get(delivery)
    assert erased.resident_name is None and erased.resident_contact is None
    assert erased.personal_data_deleted_at == bench.clock()
    assert erased.status is DeliveryStatus.COLLECTED  # the logistics record stays, without the person
    assert bench.logistics.resident_view(token) is None  # the link is dead
    dump = "\n".join(bench.logistics.db.conn.dump())
    assert "Noor Jansen" not in dump and "1234 5678" not in dump
    # An item still in the locker keeps its resident.
    assert bench.logistics.get(waiting.delivery.id).resident_name == "Still Waiting"
    assert bench.logistics.purge_personal_data() == 0


def test_cancelled_items_lose_personal_data_too(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(personal_data_days=0)
    created = bench.logistics.create(DeliveryRequest(size=CompartmentSize.L, resident_name="Ayla"))
    bench.logistics.cancel(created.delivery.id)
    assert bench.logistics.purge_personal_data() == 1
    assert bench.logistics.get(created.delivery.id).resident_name is None


def test_expired_items_nobody_returned_lose_personal_data_too(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(personal_data_days=14, return_days=7, pickup_days=7)
    created = bench.logistics.create(DeliveryRequest(size=CompartmentSize.S, resident_name="Lou"))
    bench.event(created.delivery.compartment, OCCUPIED, "dropoff", created.delivery.id)
    bench.clock.advance(days=7)
    bench.logistics.expire_due()
    bench.clock.advance(days=21, seconds=-1)
    assert bench.logistics.purge_personal_data() == 0
    bench.clock.advance(seconds=1)
    assert bench.logistics.purge_personal_data() == 1
    item = bench.logistics.get(created.delivery.id)
    assert item.resident_name is None and item.status.value == "expired"  # still to be returned, anonymously
