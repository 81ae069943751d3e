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

The service is one class built by job, each in a module of its own, each on top of the one before:
``lockers`` (compartments, operator actions, commands and their answers), ``locker_codes`` (link tokens, sealed
pickup codes, return codes), ``messages`` (residents' notifications), ``deliveries`` (booking, status, expiry);
``Logistics`` adds what ties them together: applying the ingest's events and the periodic round.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from hub_protocol.envelope import CommandResult
from hub_protocol.lockers import LockerEvent
from hub_server.logistics.deliveries import Deliveries
from hub_server.logistics.locker_codes import RESIDENT_PATH
from hub_server.logistics.lockers import log
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
    token_hash,
)
from hub_server.logistics.notifications import Notifier

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


class Logistics(Deliveries):
    def on_event(self, event: Any) -> None:
        """Apply one event from ingest (LockerEvent, CommandResult; others are ignored). Never raises on content."""
        try:
            if isinstance(event, LockerEvent):
                self.on_locker_event(event)
            elif isinstance(event, CommandResult):
                self.on_command_result(event)
        except Exception:  # an event handler must not break ingest
            log.exception("logistics could not apply event %s/%s/%s", event.device, event.boot, event.seq)

    async def tick(self, notifier: Notifier | None) -> None:
        """One round of the periodic work: expiry, command resends, return codes and queued messages."""
        issued = await asyncio.to_thread(self.expire_due)
        await asyncio.to_thread(self.resend_pending)
        if notifier is not None:
            await self._hand_over_return_codes(notifier, issued)
            await self.dispatch_notifications(notifier)


LOGISTICS_KEY: web.AppKey[Logistics] = web.AppKey("logistics")
