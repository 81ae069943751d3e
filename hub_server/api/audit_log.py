"""The audit log, newest first (operators and admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.validation import StrictModel
from hub_server.accounts import audit
from hub_server.api.registry import ApiRoutes, Call, QueryDatetime
from hub_server.store.accounts import Role

routes = ApiRoutes("audit", "Audit log of operator actions")


class AuditQuery(StrictModel):
    actor: str | None = Field(default=None, max_length=100, description="e.g. user:alice or token:3")
    action: str | None = Field(default=None, max_length=100, description="Action or its prefix, e.g. device.")
    target: str | None = Field(default=None, max_length=200, description="e.g. device:dev-a")
    since: QueryDatetime | None = Field(default=None, description="From this time (inclusive)")
    until: QueryDatetime | None = Field(default=None, description="Before this time")
    before_id: int | None = Field(default=None, ge=1, le=2**53, description="Page on: entries older than this id")
    limit: int = Field(default=100, ge=1, le=1000, description="At most this many entries")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@routes.get("/audit", summary="Audit log, newest first", role=Role.OPERATOR, query=AuditQuery, response=list[AuditOut])
async def list_audit(call: Call) -> web.StreamResponse:
    q: AuditQuery = call.query
    entries = await call.db.read(
        audit.query,
        actor=q.actor,
        action=q.action,
        target=q.target,
        since=q.since,
        until=q.until,
        before_id=q.before_id,
        limit=q.limit,
    )
    return call.json([AuditOut(**vars_of(e)) for e in entries])


def vars_of(entry: audit.AuditEntry) -> dict[str, Any]:
    return {k: getattr(entry, k) for k in ("id", "at", "actor", "action", "target", "detail")}
