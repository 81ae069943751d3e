"""Resident messages: queued with the status change, posted to a real local webhook, retried, then forgotten."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from hub_protocol.lockers import CompartmentSize, CompartmentState
from hub_server.logistics.notifications import SIGNATURE_HEADER, Notification, NotificationEvent, WebhookNotifier, sign
from hub_server.logistics.service import DeliveryRequest
from hub_server.store import logistics as store
from tests.logistics.conftest import Bench


class Receiver:
    """A local webhook receiver that answers with the queued statuses (200 when none is left)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.signatures: list[str | None] = []
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.server = TestServer(app)

    async def _hook(self, request: web.Request) -> web.Response:
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.bodies.append(await request.read())
            self.signatures.append(request.headers.get(SIGNATURE_HEADER))
            self.received.append(await request.json())
        return web.Response(status=status)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))


async def _receiver() -> Receiver:
    receiver = Receiver()
    await receiver.server.start_server()
    return receiver


def _ready(bench: Bench, contact: str | None = "kim@example.org") -> tuple[str, str]:
    created = bench.logistics.create(
        DeliveryRequest(size=CompartmentSize.S, resident_name="Kim", resident_contact=contact)
    )
    bench.event(created.delivery.compartment, CompartmentState.OCCUPIED, "dropoff", created.delivery.id)
    return created.delivery.id, created.resident_link


async def test_ready_message_reaches_the_webhook_with_the_page_link(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    try:
        delivery, link = _ready(bench)
        sent = await bench.logistics.dispatch_notifications(WebhookNotifier(receiver.url))
        assert sent == 1
        [message] = receiver.received
        assert message["event"] == "parcel-ready" and message["delivery"] == delivery
        assert message["link"] == link and message["resident_contact"] == "kim@example.org"
        assert message["resident_name"] == "Kim" and message["locker"] == "dev-a"
        assert message["pickup_by"] == bench.logistics.get(delivery).pickup_expires_at.isoformat()  # type: ignore[union-attr]
        assert "return_code" not in message
        # Sent once: the queue is empty and the stored copy no longer carries the contact.
        assert await bench.logistics.dispatch_notifications(WebhookNotifier(receiver.url)) == 0
        [row] = store.notifications_for(bench.logistics.db.conn, delivery)
        assert row["sent_at"] is not None and row["payload"] is None
        # The link in the message opens the resident's page.
        view = bench.logistics.resident_view(link.rsplit("/", 1)[1])
        assert view is not None and view.delivery == delivery and view.can_extend
    finally:
        await receiver.server.close()


async def test_failed_posts_are_retried_later(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    try:
        receiver.statuses = [500, 503]
        delivery, _ = _ready(bench)
        notifier = WebhookNotifier(receiver.url)
        assert await bench.logistics.dispatch_notifications(notifier) == 0
        assert await bench.logistics.dispatch_notifications(notifier) == 0  # not due yet: waits 30 s
        bench.clock.advance(seconds=30)
        assert await bench.logistics.dispatch_notifications(notifier) == 0  # 503
        bench.clock.advance(seconds=59)
        assert await bench.logistics.dispatch_notifications(notifier) == 0  # second wait is 60 s
        bench.clock.advance(seconds=1)
        assert await bench.logistics.dispatch_notifications(notifier) == 1
        assert [m["delivery"] for m in receiver.received] == [delivery]
        [row] = store.notifications_for(bench.logistics.db.conn, delivery)
        assert row["attempts"] == 3 and "503" in row["last_error"]
    finally:
        await receiver.server.close()


async def test_unreachable_webhook_gives_up_and_drops_the_contact(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    url = receiver.url
    await receiver.server.close()  # nobody listens there any more
    delivery, _ = _ready(bench)
    notifier = WebhookNotifier(url, timeout_s=2)
    for _ in range(10):
        await bench.logistics.dispatch_notifications(notifier)
        bench.clock.advance(hours=1)
    [row] = store.notifications_for(bench.logistics.db.conn, delivery)
    assert row["failed_at"] is not None and row["payload"] is None and row["attempts"] == 10
    assert "unreachable" in row["last_error"]


def test_no_contact_or_no_webhook_queues_nothing(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    delivery, _ = _ready(bench, contact=None)
    assert store.notifications_for(bench.logistics.db.conn, delivery) == []
    bench.logistics.notify = False
    other, _ = _ready(bench)
    assert store.notifications_for(bench.logistics.db.conn, other) == []


async def test_expiry_tells_the_resident_and_hands_the_return_code_to_operators(
    make_bench: Callable[..., Bench],
) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    try:
        _delivery, _ = _ready(bench)
        bench.clock.advance(days=8)
        await bench.logistics.tick(WebhookNotifier(receiver.url))
        events = sorted(m["event"] for m in receiver.received)
        assert events == ["parcel-expired", "parcel-ready", "return-code"]
        code_message = next(m for m in receiver.received if m["event"] == "return-code")
        assert len(code_message["return_code"]) == 8 and "resident_contact" not in code_message
        # The return code was never queued in clear.
        assert code_message["return_code"] not in "\n".join(bench.logistics.db.conn.dump())
    finally:
        await receiver.server.close()


def test_notification_json_round_trip() -> None:
    message = Notification(NotificationEvent.READY, "d-1", "share", "dev-a", 3, link="https://x/r/t")
    assert Notification.from_json(message.to_json()) == message


async def test_signed_webhook_lets_the_receiver_check_the_sender(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    try:
        _ready(bench)
        key = b"shared-secret-of-the-receiver"
        assert await bench.logistics.dispatch_notifications(WebhookNotifier(receiver.url, key=key)) == 1
        [body], [signature] = receiver.bodies, receiver.signatures
        assert signature == sign(key, body)
        assert signature != sign(b"another key", body)
        expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()  # what a receiver computes
        assert signature == expected
    finally:
        await receiver.server.close()


async def test_unsigned_by_default(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    try:
        _ready(bench)
        await bench.logistics.dispatch_notifications(WebhookNotifier(receiver.url))
        assert receiver.signatures == [None]
    finally:
        await receiver.server.close()


async def test_an_unreadable_queued_message_is_set_aside(make_bench: Callable[..., Bench]) -> None:
    bench = make_bench(notify=True)
    receiver = await _receiver()
    try:
        delivery, _ = _ready(bench)
        with bench.logistics.db.write() as conn:
            store.queue_notification(
                conn, delivery, "parcel-ready", {"event": "parcel-ready", "bogus": 1}, bench.clock()
            )
        assert await bench.logistics.dispatch_notifications(WebhookNotifier(receiver.url)) == 1  # the good one
        rows = store.notifications_for(bench.logistics.db.conn, delivery)
        assert [(r["sent_at"] is not None, r["failed_at"] is not None) for r in rows] == [(True, False), (False, True)]
        assert "unreadable" in rows[1]["last_error"]
    finally:
        await receiver.server.close()
