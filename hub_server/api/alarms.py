"""Alarms: list (active or all), one alarm, and an operator's acknowledgement (written to the audit log)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import Field

from hub_protocol.validation import Identifier, StrictModel
from hub_server.api.registry import ApiError, ApiRoutes, Call
from hub_server.fleet.alarms import ALARMS_KEY, Alarm, AlarmNotFound, AlarmService
from hub_server.store.accounts import Role

routes = ApiRoutes("alarms", "Device and hub alarms with start, end and acknowledgement")


class AlarmQuery(StrictModel):
    active_only: bool = Field(default=False, description="Only alarms that have not ended")
    unacknowledged: bool = Field(default=False, description="Only alarms nobody acknowledged")
    device: Identifier | None = Field(default=None, description="Only this device")
    kind: str | None = Field(default=None, pattern=r"^[a-z-]{1,40}$", description="e.g. offline, door-left-open")
    before_id: int | None = Field(default=None, ge=1, le=2**53, description="Page on: alarms older than this id")
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many, newest first")


class AlarmPath(StrictModel):
    alarm_id: int = Field(ge=1, le=2**53, description="Alarm id")


def alarms_of(call: Call) -> AlarmService:
    return call.request.app[ALARMS_KEY]


@routes.get("/alarms", summary="Alarms, newest first", role=Role.VIEWER, query=AlarmQuery, response=list[Alarm])
async def list_alarms(call: Call) -> web.StreamResponse:
    q: AlarmQuery = call.query
    found = await asyncio.to_thread(
        lambda: alarms_of(call).list_alarms(
            active_only=q.active_only,
            unacknowledged=q.unacknowledged,
            device=q.device,
            kind=q.kind,
            before_id=q.before_id,
            limit=q.limit,
        )
    )
    return call.json(found)


@routes.get("/alarms/{alarm_id}", summary="One alarm", role=Role.VIEWER, path_params=AlarmPath, response=Alarm)
async def get_alarm(call: Call) -> web.StreamResponse:
    path: AlarmPath = call.path
    try:
        return call.json(await asyncio.to_thread(alarms_of(call).get, path.alarm_id))
    except AlarmNotFound as exc:
        raise ApiError(404, str(exc)) from None


@routes.post(
    "/alarms/{alarm_id}/ack",
    summary="Acknowledge an alarm (the first acknowledgement counts; it is audited)",
    role=Role.OPERATOR,
    path_params=AlarmPath,
    response=Alarm,
)
async def acknowledge_alarm(call: Call) -> web.StreamResponse:
    path: AlarmPath = call.path
    try:
        return call.json(await asyncio.to_thread(alarms_of(call).acknowledge, path.alarm_id, call.actor))
    except AlarmNotFound as exc:
        raise ApiError(404, str(exc)) from None
