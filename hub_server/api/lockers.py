"""Locker banks and their compartments: sizes and reach (set by an operator), states (reported by the device),
remote open and out-of-service for maintenance (audited)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.validation import Identifier, StrictModel
from hub_server.api.logistics_calls import logistics_of, run_logistics
from hub_server.api.registry import ApiError, ApiRoutes, Call
from hub_server.logistics.service import Compartment, LockerSpec, Logistics
from hub_server.store.accounts import Role

routes = ApiRoutes("lockers", "Locker banks and compartments")


class Locker(BaseModel):
    device: str
    compartments: list[Compartment]


class LockerPath(StrictModel):
    device: Identifier = Field(description="Locker bank (device id)")


class CompartmentPath(StrictModel):
    device: Identifier = Field(description="Locker bank (device id)")
    number: int = Field(ge=1, le=999, description="Compartment number")


class ServiceIn(StrictModel):
    in_service: bool = Field(description="False takes the compartment out of service")


class CommandOut(BaseModel):
    command: str = Field(description="Command id; the device answers with a result for it")
    device: str
    result: str | None = Field(description="Device's answer so far (null while waiting)")
    sent_at: datetime | None


def _command_out(logistics: Logistics, command_id: str) -> CommandOut:
    row = logistics.command_status(command_id)
    assert row is not None
    return CommandOut(command=row.id, device=row.device, result=row.result, sent_at=row.sent_at)


@routes.get("/lockers", summary="Every locker bank with its compartments", role=Role.VIEWER, response=list[Locker])
async def list_lockers(call: Call) -> web.StreamResponse:
    banks = await asyncio.to_thread(logistics_of(call).lockers)
    return call.json([Locker(device=d, compartments=c) for d, c in banks.items()])


@routes.get("/lockers/{device}", summary="One locker bank", role=Role.VIEWER, path_params=LockerPath, response=Locker)
async def get_locker(call: Call) -> web.StreamResponse:
    path: LockerPath = call.path
    compartments = await asyncio.to_thread(logistics_of(call).compartments, path.device)
    if not compartments:
        raise ApiError(404, f"no locker bank {path.device!r}")
    return call.json(Locker(device=path.device, compartments=compartments))


@routes.put(
    "/lockers/{device}",
    summary="Describe (add or update) a locker bank's compartments: size, accessible; states come from the device",
    role=Role.ADMIN,
    path_params=LockerPath,
    body=LockerSpec,
    response=Locker,
    statuses=(409,),
)
async def put_locker(call: Call) -> web.StreamResponse:
    path: LockerPath = call.path
    body: LockerSpec = call.body
    compartments = await run_logistics(
        lambda: logistics_of(call).set_compartments(path.device, body, operator=call.actor)
    )
    return call.json(Locker(device=path.device, compartments=compartments))


@routes.post(
    "/lockers/{device}/compartments/{number}/open",
    summary="Open one compartment for maintenance (audited)",
    role=Role.OPERATOR,
    path_params=CompartmentPath,
    response=CommandOut,
    status=202,
)
async def open_compartment(call: Call) -> web.StreamResponse:
    path: CompartmentPath = call.path
    logistics = logistics_of(call)
    command = await run_logistics(lambda: logistics.remote_open(path.device, path.number, call.actor))
    return call.json(await asyncio.to_thread(_command_out, logistics, command), status=202)


@routes.post(
    "/lockers/{device}/compartments/{number}/service",
    summary="Take a compartment out of service, or back in (audited)",
    role=Role.OPERATOR,
    path_params=CompartmentPath,
    body=ServiceIn,
    response=CommandOut,
    status=202,
    statuses=(409,),
)
async def set_service(call: Call) -> web.StreamResponse:
    path: CompartmentPath = call.path
    body: ServiceIn = call.body
    logistics = logistics_of(call)
    command = await run_logistics(
        lambda: logistics.set_in_service(path.device, path.number, body.in_service, call.actor)
    )
    return call.json(await asyncio.to_thread(_command_out, logistics, command), status=202)
