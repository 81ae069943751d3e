"""Flow windows as stored: filter by device, site, line, class, direction and time; JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.flows import Direction, ObjectClass
from hub_protocol.validation import Identifier, StrictModel
from hub_server.api.registry import ApiRoutes, Call, QueryDatetime, earlier
from hub_server.store import readings
from hub_server.store import retention as retention_store
from hub_server.store.accounts import Role
from hub_server.store.readings import FlowCellRow

routes = ApiRoutes("flows", "Counts per line, direction and class and window (operators' view)")


class FlowQuery(StrictModel):
    device: Identifier | None = Field(default=None, description="Only this device")
    site: Identifier | None = Field(default=None, description="Only this site")
    line: Identifier | None = Field(default=None, description="Only this line")
    object_class: ObjectClass | None = Field(default=None, description="pedestrian or cyclist")
    direction: Direction | None = Field(default=None, description="in or out")
    since: QueryDatetime | None = Field(default=None, description="Windows starting at or after (default: 24 h ago)")
    until: QueryDatetime | None = Field(default=None, description="Windows starting before (default: now)")
    format: Literal["json", "csv"] = Field(default="json", description="json or csv")
    limit: int = Field(default=5000, ge=1, le=100_000, description="At most this many cells")

    def time_range(self) -> tuple[datetime, datetime]:
        until = self.until or datetime.now(UTC)
        return self.since or earlier(until, timedelta(hours=24)), until


class FlowCellOut(BaseModel):
    window_start: datetime
    window_seconds: int
    site: str
    device: str
    line: str
    direction: Direction
    object_class: ObjectClass
    count: int | None = Field(
        description="null when the device's privacy policy suppressed the cell; under dp a noisy count, which "
        "may be negative (sums stay unbiased); a day-long dp window is the day's correction (docs/privacy.md)"
    )
    policy: str = Field(description="Protection applied on the device: none, threshold or dp")
    observed_fraction: float = Field(description="Share of the window the camera was observing")


def cell_out(row: FlowCellRow) -> FlowCellOut:
    return FlowCellOut(
        window_start=row.window_start,
        window_seconds=row.window_seconds,
        site=row.site,
        device=row.device,
        line=row.line,
        direction=Direction(row.direction),
        object_class=ObjectClass(row.object_class),
        count=row.count,
        policy=row.policy_kind,
        observed_fraction=row.observed_fraction,
    )


def csv_response(model: type[BaseModel], rows: Sequence[BaseModel], filename: str) -> web.Response:
    """One column per field of ``model``, in its order; null is an empty cell."""
    columns = list(model.model_fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow([data[c] for c in columns])
    return web.Response(
        text=buffer.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def query_cells(call: Call, q: FlowQuery, *, protected_only: bool) -> list[FlowCellOut]:
    since, until = q.time_range()
    rows = await call.db.read(
        readings.flow_cells,
        device=q.device,
        site=q.site,
        line=q.line,
        object_class=q.object_class.value if q.object_class else None,
        direction=q.direction.value if q.direction else None,
        since=since,
        until=until,
        protected_only=protected_only,
        limit=q.limit,
    )
    return [cell_out(r) for r in rows]


@routes.get(
    "/flows",
    summary="Flow cells of stored windows (JSON or CSV)",
    role=Role.VIEWER,
    query=FlowQuery,
    response=list[FlowCellOut],
    csv=True,
)
async def list_flows(call: Call) -> web.StreamResponse:
    """Oldest first. A suppressed cell has count null (empty in CSV). An empty time range gives no cells."""
    q: FlowQuery = call.query
    cells = await query_cells(call, q, protected_only=False)
    return csv_response(FlowCellOut, cells, "flows.csv") if q.format == "csv" else call.json(cells)


# --- hourly and daily totals (kept after raw windows age out) ---------------------------------------------


class TotalsQuery(StrictModel):
    resolution: Literal["hour", "day"] = Field(default="hour", description="hour or day buckets (UTC)")
    device: Identifier | None = Field(default=None, description="Only this device")
    site: Identifier | None = Field(default=None, description="Only this site")
    line: Identifier | None = Field(default=None, description="Only this line")
    object_class: ObjectClass | None = Field(default=None, description="Only this class (leaves out margins)")
    direction: Direction | None = Field(default=None, description="Only this direction (leaves out margins)")
    since: QueryDatetime | None = Field(default=None, description="Buckets starting at or after (default: 7 days ago)")
    until: QueryDatetime | None = Field(default=None, description="Buckets starting before (default: now)")
    format: Literal["json", "csv"] = Field(default="json", description="json or csv")
    limit: int = Field(default=10_000, ge=1, le=100_000, description="At most this many rows")

    def time_range(self) -> tuple[datetime, datetime]:
        until = self.until or datetime.now(UTC)
        return self.since or earlier(until, timedelta(days=7)), until


class FlowTotalOut(BaseModel):
    bucket_start: datetime
    resolution: str
    site: str
    device: str
    line: str
    direction: str = Field(description="in, out, or * for a margin over both directions")
    object_class: str = Field(description="pedestrian, cyclist, or * for a margin over both classes")
    count: int = Field(description="Sum of the published counts (under dp noisy, possibly negative, unbiased)")
    lower_bound: bool = Field(description="Some parts were suppressed: the true total is at least count")
    windows: int = Field(description="Windows added up")
    suppressed_cells: int
    policy: str = Field(description="Protection applied on the device")
    observed_seconds: float = Field(description="Seconds the camera was observing within the bucket")


async def query_totals(call: Call, q: TotalsQuery, *, protected_only: bool) -> list[FlowTotalOut]:
    since, until = q.time_range()
    rows = await call.db.read(
        retention_store.rollups,
        q.resolution,
        since=since,
        until=until,
        device=q.device,
        site=q.site,
        line=q.line,
        direction=q.direction.value if q.direction else None,
        object_class=q.object_class.value if q.object_class else None,
        protected_only=protected_only,
        limit=q.limit,
    )
    return [
        FlowTotalOut(
            bucket_start=r.bucket_start,
            resolution=r.resolution,
            site=r.site,
            device=r.device,
            line=r.line,
            direction=r.direction,
            object_class=r.object_class,
            count=r.count,
            lower_bound=r.lower_bound,
            windows=r.cells,
            suppressed_cells=r.suppressed_cells,
            policy=r.policy_kind,
            observed_seconds=r.observed_seconds,
        )
        for r in rows
    ]


@routes.get(
    "/flows/totals",
    summary="Hourly or daily totals per line, direction and class (JSON or CSV)",
    role=Role.VIEWER,
    query=TotalsQuery,
    response=list[FlowTotalOut],
    csv=True,
)
async def list_flow_totals(call: Call) -> web.StreamResponse:
    """Kept after the raw windows age out. Margins (direction or class '*') add the totals devices sent, each only
    where all the cells it sums were published (else it counts as suppressed: beside hidden cells it would
    give them away)."""
    q: TotalsQuery = call.query
    totals = await query_totals(call, q, protected_only=False)
    return (
        csv_response(FlowTotalOut, totals, f"flow-totals-{q.resolution}.csv")
        if q.format == "csv"
        else call.json(totals)
    )
