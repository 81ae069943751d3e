"""Messages to residents (item ready, item expired), queued in the transaction of the change that causes them
and sent with growing delays between retries; return codes go to the operators' receiver from memory only."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from hub_server.logistics.locker_codes import LockerCodes
from hub_server.logistics.models import IssuedCode
from hub_server.logistics.notifications import Notification, NotificationError, NotificationEvent, Notifier
from hub_server.store import logistics as store

log = logging.getLogger("hub_server.logistics.service")  # one logger for the whole service

NOTIFY_MAX_ATTEMPTS = 10


class ResidentMessages(LockerCodes):
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
