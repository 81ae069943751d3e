"""The logistics domain's vocabulary: statuses, errors, the API's input and output models, and allocation.

Kept apart from the service (``hub_server.logistics.service``), which re-exports every name here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from hub_protocol.commands import CommandBase
from hub_protocol.lockers import CompartmentSize, CompartmentState
from hub_protocol.validation import Identifier, StrictModel
from hub_server.config import LogisticsConfig
from hub_server.store import logistics as store
from hub_server.store.engine import Connection

_SIZES = [CompartmentSize.S, CompartmentSize.M, CompartmentSize.L]


class DeliveryStatus(StrEnum):
    AWAITING_DROPOFF = "awaiting-dropoff"
    READY = "ready-for-pickup"
    COLLECTED = "collected"
    EXPIRED = "expired"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class CommandPublisher(Protocol):
    """Sends one command to its device (the hub's MQTT client); raises when it cannot hand it to the broker."""

    def publish_command(self, command: CommandBase) -> None: ...


class LogisticsError(ValueError):
    """A request that cannot be done in the current state; ``status`` is the HTTP status that fits."""

    status = 409


class NotFound(LogisticsError):
    status = 404


class NoCompartmentFree(LogisticsError):
    status = 409


# --- input and output models --------------------------------------------------------------------------------


class CompartmentSpec(StrictModel):
    number: int = Field(ge=1, le=999, description="Compartment number, as wired on the device")
    size: CompartmentSize = Field(description="S, M or L")
    accessible: bool = Field(default=False, description="Within easy reach from a wheelchair")


class LockerSpec(StrictModel):
    compartments: list[CompartmentSpec] = Field(min_length=1, max_length=999, description="Every compartment")


class DeliveryRequest(StrictModel):
    kind: Literal["delivery", "share"] = Field(default="delivery", description="A parcel, or an item a neighbour lends")
    size: CompartmentSize = Field(description="Smallest compartment size the item fits in")
    accessible: bool = Field(default=False, description="The resident needs a compartment within easy reach")
    device: Identifier | None = Field(default=None, description="Locker bank to use (any when omitted)")
    resident_name: str = Field(min_length=1, max_length=100, description="Name on the parcel (deleted later)")
    resident_contact: str | None = Field(
        default=None, min_length=3, max_length=200, description="E-mail or phone for the 'ready' message"
    )
    extendable: bool = Field(default=True, description="The resident may extend the pickup time once")


class Compartment(BaseModel):
    device: str
    number: int
    size: CompartmentSize | None
    accessible: bool
    state: CompartmentState | None = Field(description="As last reported by the device; null before any report")
    door_open: bool | None
    reported_at: datetime | None
    delivery: str | None = Field(description="Delivery or share holding it")


class Delivery(BaseModel):
    id: str
    kind: str
    device: str
    compartment: int
    size: CompartmentSize
    status: DeliveryStatus
    created_at: datetime
    created_by: str | None
    dropoff_expires_at: datetime
    dropped_at: datetime | None
    pickup_expires_at: datetime | None
    extended: bool
    extendable: bool
    finished_at: datetime | None
    expired_at: datetime | None
    resident_name: str | None = Field(description="Null once personal data is deleted")
    resident_contact: str | None
    personal_data_deleted_at: datetime | None
    device_problem: str | None = Field(description="The device's latest refusal of a command for it, if any")


class CreatedDelivery(BaseModel):
    """Returned once at creation: the drop-off code is not stored anywhere in clear and cannot be shown again.

    The pickup code is for the resident only: their page reveals it once (``Logistics.reveal_pickup_code``)."""

    delivery: Delivery
    dropoff_code: str = Field(description="For the carrier or lender; shown this once")
    resident_link: str = Field(description="The resident's page: status, pickup code (once), extend")


class IssuedCode(BaseModel):
    delivery: str
    purpose: Literal["dropoff", "pickup", "return"]
    code: str
    expires_at: datetime


class ResidentView(BaseModel):
    """What a resident's page shows: no contact data, no codes."""

    delivery: str
    kind: str
    status: DeliveryStatus
    locker: str
    compartment: int
    dropped_at: datetime | None
    pickup_expires_at: datetime | None
    can_extend: bool
    extend_days: int
    code_available: bool = Field(description="The pickup code can be revealed (once) on this page now")


def delivery_out(row: store.DeliveryRow) -> Delivery:
    # Reads only Delivery's fields: the sealed pickup code and its reveal time stay in the row.
    return Delivery.model_validate(row, from_attributes=True)


def compartment_out(row: store.CompartmentRow) -> Compartment:
    return Compartment.model_validate(row, from_attributes=True)


def token_hash(token: str) -> str:
    # The token has 256 random bits: a plain hash suffices, no salt or slow hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


def choose_compartment(
    candidates: list[store.CompartmentRow], size: CompartmentSize, accessible: bool
) -> store.CompartmentRow | None:
    """Smallest free compartment the item fits in; accessible ones only when asked, and last otherwise."""
    wanted = _SIZES.index(size)
    fitting = [
        c
        for c in candidates
        if c.size is not None
        and _SIZES.index(CompartmentSize(c.size)) >= wanted
        and c.state == CompartmentState.FREE
        and c.delivery is None
        and (c.accessible or not accessible)
    ]
    if not fitting:
        return None
    # Keep accessible compartments for residents who need them: use them for others only when nothing else fits.
    return min(fitting, key=lambda c: (_SIZES.index(CompartmentSize(c.size or "L")), c.accessible, c.device, c.number))


def erase_due_personal_data(conn: Connection, config: LogisticsConfig, now: datetime) -> list[str]:
    """Residents' data goes ``personal_data_days`` after the item left the locker; for an expired item nobody
    returned, ``return_days + personal_data_days`` after it expired (the resident has no say in it any more)."""
    keep = timedelta(days=config.personal_data_days)
    return store.erase_personal_data(
        conn, now - keep, now, expired_before=now - keep - timedelta(days=config.return_days)
    )
