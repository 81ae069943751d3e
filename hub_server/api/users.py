"""Operator accounts (admins only). Every change is written to the audit log."""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel, Field

from hub_protocol.validation import StrictModel
from hub_server.accounts import audit
from hub_server.api.registry import ApiError, ApiRoutes, Call, utc_text
from hub_server.store import accounts
from hub_server.store.accounts import USERNAME_PATTERN, AccountError, Role, User

routes = ApiRoutes("users", "Operator accounts (admin)")


class UserOut(BaseModel):
    username: str
    role: Role
    disabled: bool
    created_at: str = Field(description="UTC, ISO 8601")

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(username=user.username, role=user.role, disabled=user.disabled, created_at=utc_text(user.created_at))


class UserPath(StrictModel):
    username: str = Field(pattern=USERNAME_PATTERN, description="User name")


class UserIn(StrictModel):
    username: str = Field(pattern=USERNAME_PATTERN, description="1-64 of a-z 0-9 . _ -")
    role: Role = Field(description="viewer, operator or admin")
    password: str = Field(min_length=accounts.MIN_PASSWORD_LENGTH, max_length=1024, description="Initial password")


class UserPatch(StrictModel):
    role: Role | None = Field(default=None, description="New role")
    disabled: bool | None = Field(default=None, description="Disable (logs out) or enable the account")
    password: str | None = Field(
        default=None, min_length=accounts.MIN_PASSWORD_LENGTH, max_length=1024, description="New password"
    )


@routes.get("/users", summary="List operator accounts", role=Role.ADMIN, response=list[UserOut])
async def list_users(call: Call) -> web.StreamResponse:
    users = await call.db.read(accounts.list_users)
    return call.json([UserOut.of(u) for u in users])


@routes.post(
    "/users",
    summary="Create an operator account",
    role=Role.ADMIN,
    body=UserIn,
    response=UserOut,
    status=201,
    statuses=(409,),
)
async def create_user(call: Call) -> web.StreamResponse:
    body: UserIn = call.body

    def create() -> User:
        with call.db.write() as conn:
            user = accounts.add_user(conn, body.username, body.role, body.password)
            audit.record(conn, call.actor, "user.add", f"user:{user.username}", {"role": user.role.value})
            return user

    try:
        user = await asyncio.to_thread(create)
    except AccountError as exc:
        raise ApiError(409, str(exc)) from None
    return call.json(UserOut.of(user), status=201)


@routes.patch(
    "/users/{username}",
    summary="Change role, disable or set password",
    role=Role.ADMIN,
    path_params=UserPath,
    body=UserPatch,
    response=UserOut,
    statuses=(409,),
)
async def update_user(call: Call) -> web.StreamResponse:
    """Disabling or changing the role ends the user's sessions; the last active admin cannot be demoted."""
    path: UserPath = call.path
    body: UserPatch = call.body

    def change() -> User:
        with call.db.write() as conn:
            if accounts.get_user(conn, path.username) is None:
                raise ApiError(404, f"no user {path.username!r}")
            if body.password is not None:
                accounts.set_password(conn, path.username, body.password)
            user = accounts.update_user(conn, path.username, role=body.role, disabled=body.disabled)
            detail = {k: v for k, v in body.model_dump(exclude_none=True).items() if k != "password"}
            if body.password is not None:
                detail["password"] = "changed"  # noqa: S105 - a note, not a password
            audit.record(conn, call.actor, "user.update", f"user:{user.username}", detail)
            return user

    try:
        user = await asyncio.to_thread(change)
    except AccountError as exc:
        raise ApiError(409, str(exc)) from None
    return call.json(UserOut.of(user))
