"""Operator sessions over JSON: log in, see who you are, log out. Integrations use API tokens instead."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.validation import StrictModel
from hub_server.accounts.auth import LoginRefused, login, logout
from hub_server.api.registry import ApiError, ApiRoutes, Call
from hub_server.store.accounts import Role

routes = ApiRoutes("session", "Operator log-in with a session cookie")


class LoginIn(StrictModel):
    username: str = Field(min_length=1, max_length=64, description="User name")
    password: str = Field(min_length=1, max_length=1024, description="Password")


class SessionOut(BaseModel):
    username: str = Field(description="Who is logged in (token name for an API token)")
    role: Role = Field(description="viewer, operator or admin")
    kind: str = Field(description="user (session) or token")
    csrf_token: str | None = Field(description="Send as X-CSRF-Token on every state-changing request")


@routes.post(
    "/session",
    summary="Log in (sets the session cookie)",
    role=None,
    body=LoginIn,
    response=SessionOut,
    statuses=(401, 429),
)
async def create_session(call: Call) -> web.StreamResponse:
    """Wrong credentials give 401; too many failures for the name or the address give 429 with Retry-After."""
    body: LoginIn = call.body
    response = web.Response(content_type="application/json")
    try:
        principal = await login(call.request, response, body.username, body.password)
    except LoginRefused as exc:
        if exc.retry_after is not None:
            raise web.HTTPTooManyRequests(
                text=exc.reason, headers={"Retry-After": str(int(exc.retry_after) + 1)}
            ) from None
        raise ApiError(exc.status, exc.reason) from None
    out = SessionOut(username=principal.username, role=principal.role, kind="user", csrf_token=principal.csrf_token)
    response.body = out.model_dump_json().encode()
    return response


@routes.get("/session", summary="Who is asking", role=Role.VIEWER, response=SessionOut)
async def get_session(call: Call) -> web.StreamResponse:
    principal = call.principal
    assert principal is not None
    return call.json(
        SessionOut(
            username=principal.username, role=principal.role, kind=principal.kind, csrf_token=principal.csrf_token
        )
    )


@routes.delete("/session", summary="Log out", role=Role.VIEWER, status=204)
async def delete_session(call: Call) -> web.StreamResponse:
    response = web.Response(status=204)
    await logout(call.request, response)
    return response
