"""Deliveries and shares: create (codes shown once), list, cancel, extend, issue a return code; residents' page data."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import Field

from hub_protocol.validation import Identifier, StrictModel
from hub_server.api.logistics_calls import logistics_of, run_logistics
from hub_server.api.registry import ApiError, ApiRoutes, Call
from hub_server.logistics.service import (
    CreatedDelivery,
    Delivery,
    DeliveryRequest,
    DeliveryStatus,
    IssuedCode,
    ResidentView,
)
from hub_server.store.accounts import Role

routes = ApiRoutes("deliveries", "Parcel deliveries and neighbour shares through the locker banks")


class DeliveryQuery(StrictModel):
    status: DeliveryStatus | None = Field(default=None, description="Only this status")
    device: Identifier | None = Field(default=None, description="Only this locker bank")
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many, newest first")
    offset: int = Field(default=0, ge=0, le=1_000_000, description="Skip this many")


class DeliveryPath(StrictModel):
    delivery: Identifier = Field(description="Delivery id")


class TokenPath(StrictModel):
    token: str = Field(pattern=r"^[A-Za-z0-9_-]{20,100}$", description="The resident's link token")


@routes.get(
    "/deliveries",
    summary="List deliveries and shares, newest first",
    role=Role.OPERATOR,
    query=DeliveryQuery,
    response=list[Delivery],
)
async def list_deliveries(call: Call) -> web.StreamResponse:
    q: DeliveryQuery = call.query
    found = await run_logistics(lambda: logistics_of(call).list_deliveries(q.status, q.device, q.limit, q.offset))
    return call.json(found)


@routes.post(
    "/deliveries",
    summary="Create a delivery or share: allocates a compartment; the drop-off code is shown only in this answer",
    role=Role.OPERATOR,
    body=DeliveryRequest,
    response=CreatedDelivery,
    status=201,
    statuses=(409,),
)
async def create_delivery(call: Call) -> web.StreamResponse:
    body: DeliveryRequest = call.body
    created = await run_logistics(lambda: logistics_of(call).create(body, operator=call.actor))
    return call.json(created, status=201)


@routes.get(
    "/deliveries/{delivery}",
    summary="One delivery or share",
    role=Role.OPERATOR,
    path_params=DeliveryPath,
    response=Delivery,
)
async def get_delivery(call: Call) -> web.StreamResponse:
    path: DeliveryPath = call.path
    return call.json(await run_logistics(lambda: logistics_of(call).get(path.delivery)))


@routes.post(
    "/deliveries/{delivery}/cancel",
    summary="Cancel: the device frees the compartment",
    role=Role.OPERATOR,
    path_params=DeliveryPath,
    response=Delivery,
    statuses=(409,),
)
async def cancel_delivery(call: Call) -> web.StreamResponse:
    path: DeliveryPath = call.path
    return call.json(await run_logistics(lambda: logistics_of(call).cancel(path.delivery, operator=call.actor)))


@routes.post(
    "/deliveries/{delivery}/extend",
    summary="Extend the pickup time once (where the hub allows it)",
    role=Role.OPERATOR,
    path_params=DeliveryPath,
    response=Delivery,
    statuses=(409,),
)
async def extend_delivery(call: Call) -> web.StreamResponse:
    path: DeliveryPath = call.path
    return call.json(await run_logistics(lambda: logistics_of(call).extend(path.delivery, operator=call.actor)))


@routes.post(
    "/deliveries/{delivery}/return-code",
    summary="Issue a new return code for an expired item (shown only in this answer; replaces the previous one)",
    role=Role.OPERATOR,
    path_params=DeliveryPath,
    response=IssuedCode,
    statuses=(409,),
)
async def issue_return_code(call: Call) -> web.StreamResponse:
    path: DeliveryPath = call.path
    return call.json(
        await run_logistics(lambda: logistics_of(call).issue_return_code(path.delivery, operator=call.actor))
    )


@routes.get(
    "/resident/{token}",
    summary="What a resident's page shows (status, compartment, deadline); no codes, no contact data",
    role=None,
    path_params=TokenPath,
    response=ResidentView,
)
async def resident_view(call: Call) -> web.StreamResponse:
    path: TokenPath = call.path
    view = await asyncio.to_thread(logistics_of(call).resident_view, path.token)
    if view is None:
        raise ApiError(404, "unknown or expired link")
    return call.json(view)
