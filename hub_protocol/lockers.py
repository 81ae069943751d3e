"""Locker-bank events, and the one way both sides turn a code into the hash the device stores.

A device never receives code digits: the hub sends ``hex(sha256(salt_bytes + code_digits))`` with a random
16-byte salt (see docs/lockers.md). Both sides call ``hash_code`` so they cannot disagree on the format.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from enum import StrEnum
from typing import Literal

from pydantic import Field

from hub_protocol.envelope import EventHeader
from hub_protocol.validation import Identifier, Time

CODE_MIN_DIGITS = 6
CODE_MAX_DIGITS = 12
SALT_BYTES = 16
_CODE = re.compile(rf"^[0-9]{{{CODE_MIN_DIGITS},{CODE_MAX_DIGITS}}}$")


def is_code_format(code: str) -> bool:
    """True for 6 to 12 ASCII digits (what a keypad can type)."""
    return _CODE.fullmatch(code) is not None


def hash_code(salt: bytes, code: str) -> str:
    """Lower-case hex SHA-256 of the raw salt bytes followed by the code's ASCII digits."""
    if not is_code_format(code):
        raise ValueError(f"a code is {CODE_MIN_DIGITS} to {CODE_MAX_DIGITS} digits")
    if len(salt) != SALT_BYTES:
        raise ValueError(f"the salt is {SALT_BYTES} bytes")
    return hashlib.sha256(salt + code.encode("ascii")).hexdigest()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


class CodePurpose(StrEnum):
    """What a code is for: it decides which state the compartment must be in and where it goes next."""

    DROPOFF = "dropoff"  # reserved -> occupied when the door closes again
    PICKUP = "pickup"  # occupied -> free
    RETURN = "return"  # occupied -> free (the sender takes back what was never collected)


class CompartmentState(StrEnum):
    FREE = "free"
    RESERVED = "reserved"
    OCCUPIED = "occupied"
    OUT_OF_SERVICE = "out-of-service"


class CompartmentSize(StrEnum):
    S = "S"
    M = "M"
    L = "L"


class LockerEvent(EventHeader):
    """Event on ``locker``: one compartment changed state, or its door or lock did something worth telling."""

    kind: Literal["locker"] = Field(default="locker", description="Payload kind")
    at: Time = Field(description="When it happened on the device, in whole seconds")
    compartment: int = Field(ge=1, le=999, description="Compartment number, 1-based")
    state: CompartmentState = Field(description="State after the event")
    previous: CompartmentState | None = Field(description="State before the event (null at first report)")
    cause: str = Field(
        max_length=64,
        description="What drove it: dropoff, pickup, reservation, cancel, service, recovered, remote-open, ...",
    )
    reservation: Identifier | None = Field(
        default=None, description="Reservation id involved, if any: a pseudonym the hub links to a delivery"
    )
    operator: str | None = Field(default=None, max_length=64, description="Operator id for hub commands")
    door_open: bool = Field(description="Door sensor reading after the event")
