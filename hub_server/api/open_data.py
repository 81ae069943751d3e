"""Open data for anyone in the neighbourhood: the aggregated, privacy-protected counts, without login.

Only windows that left their device under a protection policy (threshold suppression or differential
privacy) are published here; suppressed cells stay suppressed.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub_protocol.register import RegisterEntry
from hub_server.api.flows import (
    FlowCellOut,
    FlowQuery,
    FlowTotalOut,
    TotalsQuery,
    csv_response,
    query_cells,
    query_totals,
)
from hub_server.api.registry import ApiRoutes, Call
from hub_server.fleet.register import public_entries


def public(response: web.StreamResponse, max_age_s: int) -> web.StreamResponse:
    """Open data: any site may use it (CORS), and caches may keep it a little while."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = f"public, max-age={max_age_s}"
    return response


routes = ApiRoutes("open-data", "Public: privacy-protected counts and the sensor register")


@routes.get(
    "/open/flows",
    summary="Protected flow counts (public; JSON or CSV)",
    role=None,
    query=FlowQuery,
    response=list[FlowCellOut],
    csv=True,
)
async def open_flows(call: Call) -> web.StreamResponse:
    """The same cells as /flows, restricted to windows published under threshold or dp protection."""
    q: FlowQuery = call.query
    cells = await query_cells(call, q, protected_only=True)
    response = csv_response(FlowCellOut, cells, "open-flows.csv") if q.format == "csv" else call.json(cells)
    return public(response, max_age_s=60)


@routes.get(
    "/open/flows/totals",
    summary="Protected hourly or daily totals (public; JSON or CSV)",
    role=None,
    query=TotalsQuery,
    response=list[FlowTotalOut],
    csv=True,
)
async def open_flow_totals(call: Call) -> web.StreamResponse:
    """The same rows as /flows/totals, restricted to windows published under threshold or dp protection."""
    q: TotalsQuery = call.query
    totals = await query_totals(call, q, protected_only=True)
    response = (
        csv_response(FlowTotalOut, totals, f"open-flow-totals-{q.resolution}.csv")
        if q.format == "csv"
        else call.json(totals)
    )
    return public(response, max_age_s=300)


@routes.get(
    "/open/register",
    summary="Every sensor's register entry, as the city's register wants it (public)",
    role=None,
    response=list[RegisterEntry],
)
async def open_register(call: Call) -> web.StreamResponse:
    """What each device measures, why, who runs it, what leaves it and what never does; revoked devices left out."""

    def load() -> list[RegisterEntry]:
        return public_entries(call.db.conn, call.config)

    response = call.json(await asyncio.to_thread(load))
    return public(response, max_age_s=300)
