"""Public endpoints about the hub itself: liveness and the API description."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hub_server import __version__
from hub_server.api.registry import API_KEY, ApiRoutes, Call

routes = ApiRoutes("meta", "The hub itself")


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded when the database does not answer")
    version: str = Field(description="Hub server version")
    time: datetime = Field(description="The hub's clock (UTC)")
    database: bool = Field(description="The database answers")
    broker_connected: bool | None = Field(description="The ingest is connected to the broker (null: not running)")


@routes.get("/health", summary="Liveness and version (public)", role=None, response=HealthOut, statuses=(503,))
async def get_health(call: Call) -> web.StreamResponse:
    """For monitoring: 200 while the hub serves and its database answers, else 503."""

    database = await asyncio.to_thread(call.db.answers)
    out = HealthOut(
        status="ok" if database else "degraded",
        version=__version__,
        time=datetime.now(UTC),
        database=database,
        broker_connected=call.live.broker_connected,
    )
    return call.json(out, status=200 if database else 503)


@routes.get("/openapi.json", summary="This API's OpenAPI 3.1 document (public)", role=None)
async def get_openapi(call: Call) -> web.StreamResponse:
    """Generated from the route registry and its pydantic models."""
    document = call.request.app[API_KEY].openapi("Neighbourhood hub API", __version__)
    return call.json(document)
