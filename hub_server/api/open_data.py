"""Open data for anyone in the neighbourhood: the aggregated, privacy-protected counts, without login.

Only windows that left their device under a protection policy (threshold suppression or differential
privacy) are published here; suppressed cells stay suppressed.
"""

from __future__ import annotations

from aiohttp import web

from hub_server.api.flows import (
    FlowCellOut,
    FlowQuery,
    FlowTotalOut,
    TotalsQuery,
    csv_response,
    query_cells,
    query_totals,
    totals_csv,
)
from hub_server.api.registry import ApiRoutes, Call

routes = ApiRoutes("open-data", "Public, privacy-protected counts")


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
    response = csv_response(cells, "open-flows.csv") if q.format == "csv" else call.json(cells)
    response.headers["Access-Control-Allow-Origin"] = "*"  # public data: any site may use it
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


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
    response = totals_csv(totals, f"open-flow-totals-{q.resolution}.csv") if q.format == "csv" else call.json(totals)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
