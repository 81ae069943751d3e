"""Deliveries and shares: booking (a compartment and both codes), cancel, extend, the resident's page, the
status that follows the device's locker events, expiry, and erasing personal data when it is due."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from hub_protocol.commands import CommandBase
from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_server.logistics import codes
from hub_server.logistics.locker_codes import delivery_by_token
from hub_server.logistics.messages import ResidentMessages
from hub_server.logistics.models import (
    CreatedDelivery,
    Delivery,
    DeliveryRequest,
    DeliveryStatus,
    IssuedCode,
    LogisticsError,
    NoCompartmentFree,
    NotFound,
    ResidentView,
    choose_compartment,
    delivery_out,
    erase_due_personal_data,
    token_hash,
)
from hub_server.logistics.notifications import NotificationEvent
from hub_server.store import feed
from hub_server.store import logistics as store

log = logging.getLogger("hub_server.logistics.service")  # one logger for the whole service


class Deliveries(ResidentMessages):
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
                    "created_at": now,
                    "created_by": operator,
                    "dropoff_expires_at": dropoff_expires,
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
                conn, delivery_id, status=DeliveryStatus.CANCELLED.value, finished_at=now, pickup_sealed=None
            )
            command = self._cancel_command(conn, row, operator)
            updated = self._row(conn, delivery_id)
            self._audit(conn, operator, "delivery.cancel", delivery_id, {"was": row.status})
        self._publish([command])
        return delivery_out(updated)

    def extend(self, delivery_id: str, operator: str | None = None) -> Delivery:
        """Extend once on the resident's behalf (same rules as their page)."""
        with self.db.write() as conn:
            row = self._row(conn, delivery_id)
            command = self._extend(conn, row)
            updated = self._row(conn, delivery_id)
            self._audit(conn, operator, "delivery.extend", delivery_id, {"until": str(updated.pickup_expires_at)})
        self._publish([command])
        return delivery_out(updated)

    def resident_view(self, token: str) -> ResidentView | None:
        """The data of a resident's page, or None for an unknown or erased token (show one 'not found')."""
        row = delivery_by_token(self.db.conn, token)
        return None if row is None else self._view(row)

    def extend_by_token(self, token: str) -> ResidentView:
        """The resident's 'extend once' button; raises LogisticsError when not allowed (page shows the reason)."""
        with self.db.write() as conn:
            row = delivery_by_token(conn, token)
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
        store.update_delivery(conn, row.id, extended=1, pickup_expires_at=new_expiry)
        return self._reservation(conn, row.id, row.device, row.compartment, "pickup", pickup, new_expiry, None)

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
                    finished_at=event.at,
                    pickup_sealed=None,
                    device_problem=None,  # e.g. a return code refused because it was collected meanwhile
                )
            elif event.state == CompartmentState.FREE and status == DeliveryStatus.AWAITING_DROPOFF:
                # Freed before any drop-off: cancelled on the device (operator at the locker, or expiry there).
                store.update_delivery(
                    conn,
                    row.id,
                    status=DeliveryStatus.CANCELLED.value,
                    finished_at=event.at,
                    pickup_sealed=None,
                )
        self._publish(commands)

    def _mark_ready(self, conn: Any, row: store.DeliveryRow, event: LockerEvent, now: datetime) -> CommandBase:
        pickup_expires = now + timedelta(days=self.config.pickup_days)
        store.update_delivery(
            conn,
            row.id,
            status=DeliveryStatus.READY.value,
            dropped_at=event.at,
            pickup_expires_at=pickup_expires,
        )
        pickup = store.get_code(conn, row.id, "pickup")
        assert pickup is not None
        command = self._reservation(conn, row.id, row.device, row.compartment, "pickup", pickup, pickup_expires, None)
        self._queue(conn, row, NotificationEvent.READY, pickup_expires, now)
        return command

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
                    conn, row.id, status=DeliveryStatus.CANCELLED.value, finished_at=now, pickup_sealed=None
                )
                commands.append(self._cancel_command(conn, row, None))
            for row in store.due(conn, DeliveryStatus.READY.value, "pickup_expires_at", now):
                store.update_delivery(
                    conn, row.id, status=DeliveryStatus.EXPIRED.value, expired_at=now, pickup_sealed=None
                )
                code, command = self._new_return_code(conn, row, None)
                issued.append(code)
                commands.append(command)
                self._queue(conn, row, NotificationEvent.EXPIRED, None, now)
            store.expire_commands(conn, now)
        self._publish(commands)
        return issued

    def purge_personal_data(self) -> int:
        """Delete name, contact and page link of items finished more than ``personal_data_days`` ago."""
        now = self.clock()
        with self.db.write() as conn:
            erased = erase_due_personal_data(conn, self.config, now)
            store.forget_seen_events(conn, now - timedelta(days=30))
        return len(erased)
