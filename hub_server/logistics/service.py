"""Locker logistics at the hub: compartments, deliveries and shares, codes, status, expiry, notifications.

Life cycle of a delivery (a share is the same, for an item a neighbour lends)::

    awaiting-dropoff --dropoff event--> ready-for-pickup --pickup event--> collected
          |                                  |  (pickup_days, + extend_days once)
          | dropoff_hours pass / cancel      +--expiry--> expired --return event--> returned
          v
      cancelled

Both codes are made at creation. The drop-off code (for the courier or lender) is shown once, in the answer
to ``create``; the pickup code is kept sealed until the resident reveals it once on their page, then only its
hash remains. The device gets the drop-off hash at once and the pickup hash when it reports the drop-off, so
it verifies both offline. Status follows the device's locker events
only: the hub never assumes a door opened. Commands are stored before they are published and published
again until the device answers, so a broker outage delays them but does not lose them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from hub_protocol.codec import decode, encode
from hub_protocol.commands import (
    CommandBase,
    LockerOpen,
    LockerSetService,
    ReservationCancel,
    ReservationSet,
    command_header,
)
from hub_protocol.envelope import CommandResult, ResultStatus
from hub_protocol.lockers import CodePurpose, CompartmentState, LockerEvent
from hub_protocol.topics import Channel
from hub_server.accounts import audit
from hub_server.config import LogisticsConfig
from hub_server.logistics import codes
from hub_server.logistics.models import (
    CommandPublisher,
    Compartment,
    CompartmentSpec,
    CreatedDelivery,
    Delivery,
    DeliveryRequest,
    DeliveryStatus,
    IssuedCode,
    LockerSpec,
    LogisticsError,
    NoCompartmentFree,
    NotFound,
    ResidentView,
    choose_compartment,
    compartment_out,
    delivery_out,
    erase_due_personal_data,
    token_hash,
)
from hub_server.logistics.notifications import Notification, NotificationError, NotificationEvent, Notifier
from hub_server.store import feed
from hub_server.store import logistics as store
from hub_server.store.db import Database

__all__ = [
    "RESIDENT_PATH",
    "CommandPublisher",
    "Compartment",
    "CompartmentSpec",
    "CreatedDelivery",
    "Delivery",
    "DeliveryRequest",
    "DeliveryStatus",
    "IssuedCode",
    "LockerSpec",
    "Logistics",
    "LogisticsError",
    "NoCompartmentFree",
    "NotFound",
    "ResidentView",
    "choose_compartment",
    "compartment_out",
    "delivery_out",
    "token_hash",
]

log = logging.getLogger(__name__)

RESIDENT_PATH = "/r/"
"""Residents' pages live under ``{public_url}/r/{token}``."""

RESEND_AFTER = timedelta(minutes=5)
NOTIFY_MAX_ATTEMPTS = 10


def _now() -> datetime:
    return datetime.now(UTC)


def _by_token(conn: Any, token: str) -> store.DeliveryRow | None:
    # A token of another length is no link of ours: no lookup.
    return store.delivery_by_token(conn, token_hash(token)) if 20 <= len(token) <= 100 else None


# --- the service --------------------------------------------------------------------------------------------


class Logistics:
    def __init__(
        self,
        db: Database,
        config: LogisticsConfig,
        publisher: CommandPublisher | None,
        public_url: str,
        link_key: bytes,
        notify: bool | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.config = config
        self.publisher = publisher
        self.public_url = public_url.rstrip("/")
        if len(link_key) < 16:
            raise ValueError("link_key needs at least 16 bytes")
        self._link_key = link_key
        self.notify = config.webhook_url is not None if notify is None else notify
        self.clock = clock

    # compartments

    def set_compartments(self, device: str, spec: LockerSpec, operator: str | None = None) -> list[Compartment]:
        numbers = [c.number for c in spec.compartments]
        if len(numbers) != len(set(numbers)):
            raise LogisticsError("compartments: a number appears twice")
        with self.db.write() as conn:
            for c in spec.compartments:
                store.upsert_compartment(conn, device, c.number, c.size.value, c.accessible)
            if operator is not None:
                audit.record(conn, operator, "locker.configure", f"locker:{device}", {"compartments": len(numbers)})
        return self.compartments(device)

    def compartments(self, device: str | None = None) -> list[Compartment]:
        return [compartment_out(r) for r in store.compartments(self.db.conn, device)]

    def lockers(self) -> dict[str, list[Compartment]]:
        result: dict[str, list[Compartment]] = {}
        for c in self.compartments():
            result.setdefault(c.device, []).append(c)
        return result

    # deliveries

    def create(self, request: DeliveryRequest, operator: str | None = None) -> CreatedDelivery:
        now = self.clock()
        delivery_id = "d-" + secrets.token_hex(8)
        token = self._token_for(delivery_id)
        with self.db.write() as conn:
            chosen = choose_compartment(store.compartments(conn, request.device), request.size, request.accessible)
            if chosen is None:
                where = f" in locker {request.device}" if request.device else ""
                need = " accessible" if request.accessible else ""
                raise NoCompartmentFree(f"no free{need} compartment of size {request.size.value} or larger{where}")
            live = store.live_codes(conn, chosen.device)
            dropoff_code = codes.generate_code(self.config.code_digits, live)
            dropoff = codes.hash_code(dropoff_code)
            pickup_code = codes.generate_code(self.config.code_digits, [*live, dropoff])
            pickup = codes.hash_code(pickup_code)
            dropoff_expires = now + timedelta(hours=self.config.dropoff_hours)
            store.insert_delivery(
                conn,
                {
                    "id": delivery_id,
                    "kind": request.kind,
                    "device": chosen.device,
                    "compartment": chosen.number,
                    "size": request.size.value,
                    "status": DeliveryStatus.AWAITING_DROPOFF.value,
                    "created_at": store.ts(now),
                    "created_by": operator,
                    "dropoff_expires_at": store.ts(dropoff_expires),
                    "resident_name": request.resident_name,
                    "resident_contact": request.resident_contact,
                    "token_hash": token_hash(token),
                    "pickup_sealed": self._seal(delivery_id, pickup_code),
                    "extendable": int(request.extendable),
                },
            )
            store.put_code(conn, delivery_id, "dropoff", dropoff, now)
            store.put_code(conn, delivery_id, "pickup", pickup, now)
            command = self._reservation(
                conn, delivery_id, chosen.device, chosen.number, "dropoff", dropoff, dropoff_expires, operator
            )
            row = store.delivery(conn, delivery_id)
            self._audit(
                conn,
                operator,
                f"{request.kind}.create",
                delivery_id,
                {"device": chosen.device, "compartment": chosen.number, "size": request.size.value},
            )
        assert row is not None
        self._publish([command])
        return CreatedDelivery(
            delivery=delivery_out(row), dropoff_code=dropoff_code, resident_link=self.resident_link(token)
        )

    def resident_link(self, token: str) -> str:
        return f"{self.public_url}{RESIDENT_PATH}{token}"

    def get(self, delivery_id: str) -> Delivery:
        row = store.delivery(self.db.conn, delivery_id)
        if row is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        return delivery_out(row)

    def list_deliveries(
        self, status: DeliveryStatus | None = None, device: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Delivery]:
        rows = store.deliveries(self.db.conn, None if status is None else status.value, device, limit, offset)
        return [delivery_out(r) for r in rows]

    def cancel(self, delivery_id: str, operator: str | None = None) -> Delivery:
        now = self.clock()
        with self.db.write() as conn:
            row = self._row(conn, delivery_id)
            if row.status not in (DeliveryStatus.AWAITING_DROPOFF, DeliveryStatus.READY, DeliveryStatus.EXPIRED):
                raise LogisticsError(f"delivery {delivery_id} is {row.status}: nothing to cancel")
            store.update_delivery(
                conn, delivery_id, status=DeliveryStatus.CANCELLED.value, finished_at=store.ts(now), pickup_sealed=None
            )
            command = self._cancel_command(conn, row, operator)
            updated = self._row(conn, delivery_id)
            self._audit(conn, operator, "delivery.cancel", delivery_id, {"was": row.status})
        self._publish([command])
        return delivery_out(updated)

    def issue_return_code(self, delivery_id: str, operator: str | None = None) -> IssuedCode:
        """A fresh return code for an expired item (replaces the previous one on the device); shown once."""
        with self.db.write() as conn:
            row = self._row(conn, delivery_id)
            if row.status != DeliveryStatus.EXPIRED:
                raise LogisticsError(f"delivery {delivery_id} is {row.status}: return codes are for expired items")
            issued, command = self._new_return_code(conn, row, operator)
            self._audit(conn, operator, "code.issue", delivery_id, {"purpose": "return"})
        self._publish([command])
        return issued

    def extend(self, delivery_id: str, operator: str | None = None) -> Delivery:
        """Extend once on the resident's behalf (same rules as their page)."""
        with self.db.write() as conn:
            row = self._row(conn, delivery_id)
            command = self._extend(conn, row)
            updated = self._row(conn, delivery_id)
            self._audit(conn, operator, "delivery.extend", delivery_id, {"until": str(updated.pickup_expires_at)})
        self._publish([command])
        return delivery_out(updated)

    # operator actions on compartments

    def remote_open(self, device: str, number: int, operator: str) -> str:
        """Open one compartment for maintenance (audited); returns the command id."""
        now = self.clock()
        with self.db.write() as conn:
            if store.compartment(conn, device, number) is None:
                raise NotFound(f"no compartment {number} in locker {device}")
            command = LockerOpen(action="locker-open", **self._header(device, operator, now), compartment=number)
            self._store_command(conn, command, None, "open")
            audit.record(conn, operator, "locker.remote-open", f"locker:{device}/{number}", {"command": command.id})
        self._publish([command])
        return command.id

    def set_in_service(self, device: str, number: int, in_service: bool, operator: str) -> str:
        """Take a compartment out of service or back in (audited); returns the command id."""
        now = self.clock()
        with self.db.write() as conn:
            current = store.compartment(conn, device, number)
            if current is None:
                raise NotFound(f"no compartment {number} in locker {device}")
            if not in_service and current.delivery is not None:
                raise LogisticsError(f"compartment {number} holds {current.delivery}: cancel or finish it first")
            command = LockerSetService(
                action="locker-service",
                **self._header(device, operator, now),
                compartment=number,
                in_service=in_service,
            )
            self._store_command(conn, command, None, "service")
            audit.record(
                conn,
                operator,
                "locker.service",
                f"locker:{device}/{number}",
                {"command": command.id, "in_service": in_service},
            )
        self._publish([command])
        return command.id

    def command_status(self, command_id: str) -> store.CommandRow | None:
        return store.command(self.db.conn, command_id)

    # residents

    def resident_view(self, token: str) -> ResidentView | None:
        """The data of a resident's page, or None for an unknown or erased token (show one 'not found')."""
        row = _by_token(self.db.conn, token)
        return None if row is None else self._view(row)

    def reveal_pickup_code(self, token: str) -> str:
        """The pickup code, once, to the resident's page when the item is ready; the hub forgets it right after."""
        with self.db.write() as conn:
            row = _by_token(conn, token)
            if row is None:
                raise NotFound("unknown link")
            if row.status != DeliveryStatus.READY:
                raise LogisticsError(f"the code is shown when the item is ready for pickup; it is {row.status}")
            if row.pickup_sealed is None:
                raise LogisticsError("the pickup code was shown once already; ask the hub's operator for help")
            code = self._unseal(row.id, row.pickup_sealed)
            stored = store.get_code(conn, row.id, "pickup")
            if stored is None or not codes.matches(code, stored):
                raise LogisticsError("the pickup code cannot be recovered (the hub's key changed); ask the operator")
            store.update_delivery(conn, row.id, pickup_sealed=None, pickup_revealed_at=store.ts(self.clock()))
        return code

    def extend_by_token(self, token: str) -> ResidentView:
        """The resident's 'extend once' button; raises LogisticsError when not allowed (page shows the reason)."""
        with self.db.write() as conn:
            row = _by_token(conn, token)
            if row is None:
                raise NotFound("unknown link")
            command = self._extend(conn, row)
            updated = self._row(conn, row.id)
        self._publish([command])
        return self._view(updated)

    def _view(self, row: store.DeliveryRow) -> ResidentView:
        return ResidentView(
            delivery=row.id,
            kind=row.kind,
            status=DeliveryStatus(row.status),
            locker=row.device,
            compartment=row.compartment,
            dropped_at=row.dropped_at,
            pickup_expires_at=row.pickup_expires_at,
            can_extend=self._can_extend(row),
            extend_days=self.config.extend_days,
            code_available=row.status == DeliveryStatus.READY and row.pickup_sealed is not None,
        )

    def _can_extend(self, row: store.DeliveryRow) -> bool:
        return (
            row.status == DeliveryStatus.READY and row.extendable and not row.extended and self.config.extend_days > 0
        )

    def _extend(self, conn: Any, row: store.DeliveryRow) -> CommandBase:
        if self.config.extend_days == 0:
            raise LogisticsError("extending is switched off at this hub")
        if not row.extendable:
            raise LogisticsError("this item cannot be extended (decided when it was booked)")
        if row.status != DeliveryStatus.READY:
            raise LogisticsError(f"only an item ready for pickup can be extended; this one is {row.status}")
        if row.extended:
            raise LogisticsError("this item was extended once already")
        assert row.pickup_expires_at is not None
        new_expiry = row.pickup_expires_at + timedelta(days=self.config.extend_days)
        pickup = store.get_code(conn, row.id, "pickup")
        assert pickup is not None
        store.update_delivery(conn, row.id, extended=1, pickup_expires_at=store.ts(new_expiry))
        return self._reservation(conn, row.id, row.device, row.compartment, "pickup", pickup, new_expiry, None)

    # device events

    def on_event(self, event: Any) -> None:
        """Apply one event from ingest (LockerEvent, CommandResult; others are ignored). Never raises on content."""
        try:
            if isinstance(event, LockerEvent):
                self.on_locker_event(event)
            elif isinstance(event, CommandResult):
                self.on_command_result(event)
        except Exception:  # an event handler must not break ingest
            log.exception("logistics could not apply event %s/%s/%s", event.device, event.boot, event.seq)

    def on_command_result(self, result: CommandResult) -> None:
        carried_out = result.status in (ResultStatus.DONE, ResultStatus.REFUSED_REPLAY)
        with self.db.write() as conn:
            command = store.record_command_result(
                conn, result.command_id, result.device, result.status.value, result.detail, result.at
            )
            if command is not None and command.delivery_id is not None:
                # Operators see the latest refusal on the delivery until a later command succeeds.
                problem = None if carried_out else f"{command.purpose}: {result.status.value}: {result.detail}"[:500]
                store.update_delivery(conn, command.delivery_id, device_problem=problem)
        if not carried_out:
            log.warning(
                "device %s refused command %s: %s %s", result.device, result.command_id, result.status, result.detail
            )

    def on_locker_event(self, event: LockerEvent) -> None:
        now = self.clock()
        commands: list[CommandBase] = []
        with self.db.write() as conn:
            if not store.mark_event_seen(conn, event.device, event.boot, event.seq, now):
                return
            store.record_compartment_state(
                conn,
                event.device,
                event.compartment,
                event.state.value,
                event.door_open,
                event.at,
                event.boot,
                event.seq,
            )
            if event.reservation is None:
                return
            row = store.delivery_on_device(conn, event.device, event.reservation)
            if row is None or row.compartment != event.compartment:
                log.warning("locker event for unknown reservation %s on %s", event.reservation, event.device)
                return
            status = DeliveryStatus(row.status)
            if status == DeliveryStatus.AWAITING_DROPOFF and event.state == CompartmentState.OCCUPIED:
                commands.append(self._mark_ready(conn, row, event, now))
            elif event.state == CompartmentState.FREE and status in (DeliveryStatus.READY, DeliveryStatus.EXPIRED):
                # The cause tells who emptied it: a pickup reported after the hub expired the item (the
                # resident came just in time while the device was offline) is still a collection.
                final = DeliveryStatus.COLLECTED if status == DeliveryStatus.READY else DeliveryStatus.RETURNED
                if event.cause == "pickup":
                    final = DeliveryStatus.COLLECTED
                elif event.cause == "return":
                    final = DeliveryStatus.RETURNED
                store.update_delivery(
                    conn,
                    row.id,
                    status=final.value,
                    finished_at=store.ts(event.at),
                    pickup_sealed=None,
                    device_problem=None,  # e.g. a return code refused because it was collected meanwhile
                )
            elif event.state == CompartmentState.FREE and status == DeliveryStatus.AWAITING_DROPOFF:
                # Freed before any drop-off: cancelled on the device (operator at the locker, or expiry there).
                store.update_delivery(
                    conn,
                    row.id,
                    status=DeliveryStatus.CANCELLED.value,
                    finished_at=store.ts(event.at),
                    pickup_sealed=None,
                )
        self._publish(commands)

    def _mark_ready(self, conn: Any, row: store.DeliveryRow, event: LockerEvent, now: datetime) -> CommandBase:
        pickup_expires = now + timedelta(days=self.config.pickup_days)
        store.update_delivery(
            conn,
            row.id,
            status=DeliveryStatus.READY.value,
            dropped_at=store.ts(event.at),
            pickup_expires_at=store.ts(pickup_expires),
        )
        pickup = store.get_code(conn, row.id, "pickup")
        assert pickup is not None
        command = self._reservation(conn, row.id, row.device, row.compartment, "pickup", pickup, pickup_expires, None)
        self._queue(conn, row, NotificationEvent.READY, pickup_expires, now)
        return command

    # periodic work

    def expire_due(self) -> list[IssuedCode]:
        """Cancel unused drop-offs past their time and expire uncollected items; returns the new return codes."""
        now = self.clock()
        commands: list[CommandBase] = []
        issued: list[IssuedCode] = []
        with self.db.write() as conn:
            for row in store.due(conn, DeliveryStatus.AWAITING_DROPOFF.value, "dropoff_expires_at", now):
                if not feed.caught_up(conn, row.device, row.dropoff_expires_at):
                    # A drop-off made offline just in time may still be in the device's outbox; cancelling now
                    # would free a compartment with a parcel inside. Wait until the device has caught up.
                    continue
                store.update_delivery(
                    conn, row.id, status=DeliveryStatus.CANCELLED.value, finished_at=store.ts(now), pickup_sealed=None
                )
                commands.append(self._cancel_command(conn, row, None))
            for row in store.due(conn, DeliveryStatus.READY.value, "pickup_expires_at", now):
                store.update_delivery(
                    conn, row.id, status=DeliveryStatus.EXPIRED.value, expired_at=store.ts(now), pickup_sealed=None
                )
                code, command = self._new_return_code(conn, row, None)
                issued.append(code)
                commands.append(command)
                self._queue(conn, row, NotificationEvent.EXPIRED, None, now)
            store.expire_commands(conn, now)
        self._publish(commands)
        return issued

    def resend_pending(self) -> int:
        """Publish commands never sent (broker was down) or sent long ago without an answer; returns how many."""
        if self.publisher is None:
            return 0
        now = self.clock()
        pending = store.commands_to_send(self.db.conn, now, now - RESEND_AFTER)
        return sum(self._send(decode(Channel.COMMAND, row.payload.encode())) for row in pending)

    def purge_personal_data(self) -> int:
        """Delete name, contact and page link of items finished more than ``personal_data_days`` ago."""
        now = self.clock()
        with self.db.write() as conn:
            erased = erase_due_personal_data(conn, self.config, now)
            store.forget_seen_events(conn, now - timedelta(days=30))
        return len(erased)

    async def dispatch_notifications(self, notifier: Notifier) -> int:
        """Send queued messages; failures are retried later with growing delays. Returns how many went out."""
        now = self.clock()
        sent = 0
        for item in await self.db.read(store.notifications_due, now):
            assert item.payload is not None
            try:
                message = Notification.from_json(item.payload)
            except (TypeError, ValueError, KeyError) as exc:  # written by another version: never sendable
                await self.db.transact(store.notification_failed, item.id, f"unreadable message: {exc}", None, now)
                continue
            try:
                await notifier.send(message)
            except NotificationError as exc:
                retry = None
                if item.attempts + 1 < NOTIFY_MAX_ATTEMPTS:
                    retry = now + min(timedelta(seconds=30 * 2**item.attempts), timedelta(hours=1))
                await self.db.transact(store.notification_failed, item.id, str(exc), retry, now)
                log.warning("notification %s for %s not delivered: %s", item.id, item.delivery_id, exc)
                continue
            await self.db.transact(store.notification_sent, item.id, now)
            sent += 1
        return sent

    async def tick(self, notifier: Notifier | None) -> None:
        """One round of the periodic work: expiry, command resends, return codes and queued messages."""
        issued = await asyncio.to_thread(self.expire_due)
        await asyncio.to_thread(self.resend_pending)
        if notifier is not None:
            await self._hand_over_return_codes(notifier, issued)
            await self.dispatch_notifications(notifier)

    async def _hand_over_return_codes(self, notifier: Notifier, issued: list[IssuedCode]) -> None:
        # Return codes go to the operators' receiver straight from memory and are never queued in clear;
        # if that fails an operator issues a new one (POST /api/v1/deliveries/{id}/return-code).
        for code in issued:
            row = await self.db.read(store.delivery, code.delivery)
            if row is None:
                continue
            message = Notification(
                event=NotificationEvent.RETURN_CODE,
                delivery=row.id,
                kind=row.kind,
                locker=row.device,
                compartment=row.compartment,
                return_code=code.code,
                pickup_by=code.expires_at.isoformat(),
            )
            try:
                await notifier.send(message)
            except NotificationError as exc:
                log.warning("return code for %s not handed over (%s): issue a new one", row.id, exc)

    # helpers

    @staticmethod
    def _audit(conn: Any, operator: str | None, action: str, delivery_id: str, detail: dict[str, Any]) -> None:
        # Only actions someone asked for are audited (not the hub's own expiry); ids only, never names.
        if operator is not None:
            audit.record(conn, operator, action, f"delivery:{delivery_id}", detail)

    def _row(self, conn: Any, delivery_id: str) -> store.DeliveryRow:
        row = store.delivery(conn, delivery_id)
        if row is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        return row

    def _queue(
        self, conn: Any, row: store.DeliveryRow, event: NotificationEvent, pickup_by: datetime | None, now: datetime
    ) -> None:
        if not self.notify or row.resident_contact is None:
            return
        message = Notification(
            event=event,
            delivery=row.id,
            kind=row.kind,
            locker=row.device,
            compartment=row.compartment,
            link=self._link_for(row),
            resident_name=row.resident_name,
            resident_contact=row.resident_contact,
            pickup_by=None if pickup_by is None else pickup_by.isoformat(),
        )
        store.queue_notification(conn, row.id, event.value, message.to_json(), now)

    def _token_for(self, delivery_id: str) -> str:
        return codes.link_token(self._link_key, delivery_id)

    def _seal(self, delivery_id: str, code: str) -> str:
        return codes.seal(self._link_key, delivery_id, code)

    def _unseal(self, delivery_id: str, sealed: str) -> str:
        return codes.unseal(self._link_key, delivery_id, sealed)

    def _link_for(self, row: store.DeliveryRow) -> str | None:
        if row.personal_data_deleted_at is not None:
            return None
        return self.resident_link(self._token_for(row.id))

    def _new_return_code(
        self, conn: Any, row: store.DeliveryRow, operator: str | None
    ) -> tuple[IssuedCode, CommandBase]:
        now = self.clock()
        code = codes.generate_code(self.config.code_digits, store.live_codes(conn, row.device))
        stored = codes.hash_code(code)
        store.put_code(conn, row.id, "return", stored, now)
        expires = now + timedelta(days=self.config.return_days)
        command = self._reservation(conn, row.id, row.device, row.compartment, "return", stored, expires, operator)
        return IssuedCode(delivery=row.id, purpose="return", code=code, expires_at=expires), command

    def _reservation(
        self,
        conn: Any,
        delivery_id: str,
        device: str,
        compartment: int,
        purpose: Literal["dropoff", "pickup", "return"],
        code: codes.StoredHash,
        code_expires: datetime,
        operator: str | None,
    ) -> CommandBase:
        command = ReservationSet(
            action="reservation-set",
            **self._header(device, operator, self.clock()),
            compartment=compartment,
            reservation=delivery_id,
            purpose=CodePurpose(purpose),
            code=code.to_wire(code_expires),
        )
        store.set_code_expiry(conn, delivery_id, purpose, code_expires)
        self._store_command(conn, command, delivery_id, purpose)
        return command

    def _cancel_command(self, conn: Any, row: store.DeliveryRow, operator: str | None) -> CommandBase:
        command = ReservationCancel(
            action="reservation-cancel", **self._header(row.device, operator, self.clock()), reservation=row.id
        )
        self._store_command(conn, command, row.id, "cancel")
        return command

    def _header(self, device: str, operator: str | None, now: datetime) -> dict[str, Any]:
        return command_header(device, timedelta(seconds=self.config.command_ttl_s), operator, now=now)

    def _store_command(self, conn: Any, command: CommandBase, delivery_id: str | None, purpose: str) -> None:
        store.insert_command(
            conn,
            command.id,
            delivery_id,
            purpose,
            command.device,
            encode(command).decode(),
            command.issued_at,
            command.expires_at,
        )

    def _publish(self, commands: list[CommandBase]) -> None:
        for command in commands:
            self._send(command)

    def _send(self, command: CommandBase) -> bool:
        if self.publisher is None:
            return False
        try:
            self.publisher.publish_command(command)
        except Exception as exc:  # broker down: the resend loop tries again
            log.warning("command %s to %s not published: %s", command.id, command.device, exc)
            return False
        with self.db.write() as conn:
            store.mark_command_sent(conn, command.id, self.clock())
        return True


LOGISTICS_KEY: web.AppKey[Logistics] = web.AppKey("logistics")
