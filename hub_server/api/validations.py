"""Field validations: each sensor's published accuracy (validation by tally, see docs/setup.md); opening a
device's setup page, where validations are made.

Operators see every record of a device. The open endpoint serves the latest record of each device whose
records left it under a protection policy (threshold or dp), as the open flow counts do; revoked devices
are left out.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.accuracy import ValidationCell, ValidationLine
from hub_protocol.commands import MAX_SETUP_MINUTES
from hub_protocol.flows import PolicyKind, PrivacyPolicy
from hub_protocol.validation import Identifier, StrictModel
from hub_server.api.open_data import public
from hub_server.api.registry import ApiError, ApiRoutes, Call
from hub_server.fleet.device_setup import DEFAULT_MINUTES, open_setup
from hub_server.ingest.service import ingest_of
from hub_server.store import devices as device_store
from hub_server.store import provisioning, readings
from hub_server.store import validations as store
from hub_server.store.accounts import Role
from hub_server.store.validations import StoredValidation

routes = ApiRoutes("validations", "Field validations by tally: each sensor's published count error")


class ValidationOut(BaseModel):
    device: str
    site: str
    started_at: datetime = Field(description="Start of the validation period (to the minute)")
    minutes: float = Field(description="Length of the period")
    error: float | None = Field(
        description="Overall count error: sum of |counted - tallied| / sum of tallied; null when it cannot be said"
    )
    lines: list[ValidationLine] = Field(description="Per line and direction: counted, tallied and count error")
    cells: list[ValidationCell] = Field(description="Per line, direction and class: counted and tallied")
    policy: PrivacyPolicy = Field(description="Protection the device applied before publishing")
    received_at: datetime = Field(description="When the hub stored it")

    @classmethod
    def of(cls, found: StoredValidation) -> ValidationOut:
        r = found.record
        return cls(
            device=r.device,
            site=found.site,
            started_at=r.started_at,
            minutes=r.minutes,
            error=r.error,
            lines=r.lines,
            cells=r.cells,
            policy=r.policy,
            received_at=found.received_at,
        )


class DevicePath(StrictModel):
    device: Identifier = Field(description="Device id")


class HistoryQuery(StrictModel):
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many, newest first")


@routes.get(
    "/devices/{device}/validations",
    summary="Field validations of a device, newest first",
    role=Role.VIEWER,
    path_params=DevicePath,
    query=HistoryQuery,
    response=list[ValidationOut],
)
async def device_validations(call: Call) -> web.StreamResponse:
    path: DevicePath = call.path
    q: HistoryQuery = call.query

    def load() -> list[StoredValidation] | None:
        if readings.get_device(call.db.conn, path.device) is None:
            return None
        return store.history(call.db.conn, path.device, q.limit)

    found = await asyncio.to_thread(load)
    if found is None:
        raise ApiError(404, f"no device {path.device!r}")
    return call.json([ValidationOut.of(v) for v in found])


class SensorAccuracyOut(BaseModel):
    device: str
    site: str
    validated: bool = Field(
        description="False: never validated by hand (or only published without protection): the count error is unknown"
    )
    latest: ValidationOut | None = Field(description="Its latest validation published under protection")


@routes.get(
    "/open/validations",
    summary="Each counting sensor's latest field validation, or that it has none (public)",
    role=None,
    response=list[SensorAccuracyOut],
)
async def open_validations(call: Call) -> web.StreamResponse:
    """One entry per counting sensor in the register (revoked devices left out), with its most recent
    validation published under threshold or dp protection, as the open flow counts are."""

    def load() -> list[SensorAccuracyOut]:
        revoked = provisioning.revoked_devices(call.db.conn)
        latest = store.latest(call.db.conn)
        out = []
        for entry in sorted(device_store.register_entries(call.db.conn), key=lambda e: (e.site, e.device)):
            if entry.device in revoked or entry.privacy is None:
                continue  # not a counting sensor, or no longer one
            found = latest.get(entry.device)
            shown = found if found is not None and found.record.policy.kind is not PolicyKind.NONE else None
            out.append(
                SensorAccuracyOut(
                    device=entry.device,
                    site=entry.site,
                    validated=shown is not None,
                    latest=None if shown is None else ValidationOut.of(shown),
                )
            )
        return out

    return public(call.json(await asyncio.to_thread(load)), max_age_s=300)


class SetupIn(StrictModel):
    minutes: int = Field(default=DEFAULT_MINUTES, ge=1, le=MAX_SETUP_MINUTES, description="How long it stays open")


class SetupOut(BaseModel):
    command: str
    device: str
    minutes: int
    code: str = Field(description="One-time code for the setup page: shown this once, never stored in clear")
    expires_at: datetime = Field(description="The device refuses the command after this time")


@routes.post(
    "/devices/{device}/setup",
    summary="Open the device's setup page on its local network; returns the one-time code",
    role=Role.OPERATOR,
    path_params=DevicePath,
    body=SetupIn,
    response=SetupOut,
    status=202,
    statuses=(409,),
)
async def open_device_setup(call: Call) -> web.StreamResponse:
    path: DevicePath = call.path
    body: SetupIn = call.body
    ingest = ingest_of(call.request.app)
    if ingest is None:
        raise ApiError(409, "the hub's ingest is not running: commands cannot be sent")
    try:
        command, code = await asyncio.to_thread(open_setup, ingest, call.db, path.device, body.minutes, call.actor)
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except RuntimeError as exc:
        raise ApiError(409, str(exc)) from None
    out = SetupOut(
        command=command.id, device=path.device, minutes=body.minutes, code=code, expires_at=command.expires_at
    )
    return call.json(out, status=202)
