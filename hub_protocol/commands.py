"""Commands from the hub to one device, on that device's ``cmd`` topic.

Every command carries an id and an expiry: the device refuses expired or already-seen ids, executes each
id at most once, and answers with a ``CommandResult`` event.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from hub_protocol.lockers import CodePurpose, CompartmentState, hash_code, new_salt
from hub_protocol.validation import Identifier, StrictModel, Time

HASH_PATTERN = r"^[0-9a-f]{64}$"


class CommandBase(StrictModel):
    v: Literal[1] = Field(default=1, description="Payload version")
    id: Identifier = Field(description="Unique command id; a device executes each id at most once")
    device: Identifier = Field(description="Device the command is for")
    issued_at: Time = Field(description="When the hub issued it")
    expires_at: Time = Field(description="The device refuses it after this time")
    operator: str | None = Field(default=None, max_length=64, description="Operator id, for the audit trail")

    @model_validator(mode="after")
    def _expiry_after_issue(self) -> CommandBase:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


class ReloadConfig(CommandBase):
    action: Literal["reload-config"] = Field(description="Re-read the config file from disk")


class PushConfig(CommandBase):
    action: Literal["push-config"] = Field(description="Validate, apply, roll back if the agent fails")
    config_toml: str = Field(max_length=32_000, description="The complete new agent config as TOML text")


class LockerOpen(CommandBase):
    action: Literal["locker-open"] = Field(description="Open one compartment for maintenance")
    compartment: int = Field(ge=1, le=999, description="Compartment number")


class LockerSetService(CommandBase):
    action: Literal["locker-service"] = Field(description="Take a compartment out of service or back in")
    compartment: int = Field(ge=1, le=999, description="Compartment number")
    in_service: bool = Field(description="False marks it out of service")


SETUP_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud or copied from a screen
MAX_SETUP_MINUTES = 240


def new_setup_code() -> str:
    """A one-time setup code: ten characters (about 50 bits) in two groups, ``k7mwp-x3q9d``."""
    chars = "".join(secrets.choice(SETUP_CODE_ALPHABET) for _ in range(10))
    return f"{chars[:5]}-{chars[5:]}"


def setup_code_hash(code: str) -> str:
    """What the device keeps of a setup code (and what ``open-setup`` carries): its SHA-256, lower-case hex."""
    return hashlib.sha256(code.strip().lower().encode("utf-8")).hexdigest()


class OpenSetup(CommandBase):
    action: Literal["open-setup"] = Field(description="Open the technician's setup page on the local network")
    minutes: int = Field(ge=1, le=MAX_SETUP_MINUTES, description="How long the page stays open")
    code_sha256: str = Field(
        pattern=HASH_PATTERN, description="SHA-256 of the one-time code the hub shows the operator (never the code)"
    )


class CodeHash(StrictModel):
    """A code as the device sees it: a salted hash, never the digits."""

    salt: str = Field(pattern=r"^[0-9a-f]{32}$", description="Random 16-byte salt, lower-case hex")
    sha256: str = Field(
        pattern=HASH_PATTERN, description="hex(sha256(salt_bytes + code_digits)), see hub_protocol.lockers.hash_code"
    )
    expires_at: Time = Field(description="The code is refused after this time")

    @classmethod
    def for_code(cls, code: str, expires_at: datetime) -> CodeHash:
        """Hash ``code`` with a fresh salt: what the hub puts in a ReservationSet."""
        salt = new_salt()
        return cls(salt=salt.hex(), sha256=hash_code(salt, code), expires_at=expires_at)


PURPOSE_STATE = {
    CodePurpose.DROPOFF: CompartmentState.RESERVED,
    CodePurpose.PICKUP: CompartmentState.OCCUPIED,
    CodePurpose.RETURN: CompartmentState.OCCUPIED,
}
"""The state a compartment is in while a code of each purpose can open it."""


class ReservationSet(CommandBase):
    action: Literal["reservation-set"] = Field(description="Reserve a compartment with drop-off/pickup codes")
    compartment: int = Field(ge=1, le=999, description="Compartment number")
    reservation: Identifier = Field(description="Reservation id (the hub's delivery id)")
    purpose: CodePurpose = Field(description="Which code the hub is issuing now")
    code: CodeHash = Field(description="Hash of the code that opens the compartment for this purpose")
    state_after: CompartmentState | None = Field(
        default=None,
        description="State to enter; null means the purpose's state (reserved for dropoff, occupied otherwise)",
    )

    @model_validator(mode="after")
    def _state_fits_purpose(self) -> ReservationSet:
        expected = PURPOSE_STATE[self.purpose]
        if self.state_after is not None and self.state_after is not expected:
            raise ValueError(f"state_after for a {self.purpose.value} code must be {expected.value}")
        return self

    @property
    def target_state(self) -> CompartmentState:
        return PURPOSE_STATE[self.purpose]


class ReservationCancel(CommandBase):
    action: Literal["reservation-cancel"] = Field(description="Cancel a reservation and free its compartment")
    reservation: Identifier = Field(description="Reservation id")


def command_header(
    device: str, ttl: timedelta, operator: str | None, *, prefix: str = "c", now: datetime | None = None
) -> dict[str, Any]:
    """Fields every new command needs: a fresh unguessable id, the device, issue and expiry times, the operator."""
    issued = now or datetime.now(UTC)
    return {
        "id": f"{prefix}-{secrets.token_hex(8)}",
        "device": device,
        "issued_at": issued,
        "expires_at": issued + ttl,
        "operator": None if operator is None else operator[:64],
    }


Command = Annotated[
    ReloadConfig | PushConfig | LockerOpen | LockerSetService | ReservationSet | ReservationCancel | OpenSetup,
    Field(discriminator="action"),
]
