"""API tokens for integrations (admins only): shown once at creation, stored as a hash, revocable."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.validation import StrictModel
from hub_server.accounts import audit
from hub_server.accounts.auth import new_api_token
from hub_server.api.registry import ApiError, ApiRoutes, Call, utc_text
from hub_server.store import accounts
from hub_server.store.accounts import AccountError, ApiToken, Role

routes = ApiRoutes("tokens", "API tokens for integrations (admin)")


class TokenOut(BaseModel):
    id: int
    name: str
    role: Role
    created_by: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            role=token.role,
            created_by=token.created_by,
            created_at=utc_text(token.created_at),
            last_used_at=None if token.last_used_at is None else utc_text(token.last_used_at),
            revoked_at=None if token.revoked_at is None else utc_text(token.revoked_at),
        )


class NewTokenOut(TokenOut):
    token: str = Field(description="The token itself: shown this once, send it as 'Authorization: Bearer ...'")


class TokenIn(StrictModel):
    name: str = Field(min_length=1, max_length=100, description="What the integration is")
    role: Role = Field(description="Role the token acts with")


class TokenPath(StrictModel):
    token_id: int = Field(ge=1, le=2**53, description="Token id")


@routes.get("/tokens", summary="List API tokens", role=Role.ADMIN, response=list[TokenOut])
async def list_tokens(call: Call) -> web.StreamResponse:
    tokens = await call.db.read(accounts.list_tokens)
    return call.json([TokenOut.of(t) for t in tokens])


@routes.post("/tokens", summary="Create an API token", role=Role.ADMIN, body=TokenIn, response=NewTokenOut, status=201)
async def create_token(call: Call) -> web.StreamResponse:
    body: TokenIn = call.body
    secret = new_api_token()

    def create() -> ApiToken:
        with call.db.write() as conn:
            token = accounts.add_token(conn, body.name, body.role, secret, call.actor)
            audit.record(conn, call.actor, "token.add", f"token:{token.id}", {"name": token.name, "role": token.role})
            return token

    token = await asyncio.to_thread(create)
    return call.json(NewTokenOut(**TokenOut.of(token).model_dump(), token=secret), status=201)


@routes.delete(
    "/tokens/{token_id}", summary="Revoke an API token", role=Role.ADMIN, path_params=TokenPath, response=TokenOut
)
async def revoke_token(call: Call) -> web.StreamResponse:
    path: TokenPath = call.path

    def revoke() -> ApiToken:
        with call.db.write() as conn:
            token = accounts.revoke_token(conn, path.token_id)
            audit.record(conn, call.actor, "token.revoke", f"token:{token.id}")
            return token

    try:
        token = await asyncio.to_thread(revoke)
    except AccountError as exc:
        raise ApiError(404, str(exc)) from None
    return call.json(TokenOut.of(token))
