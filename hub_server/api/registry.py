"""The API's route registry: each resource module declares its operations with pydantic models, and the same
declarations drive the routing, the input validation, the role checks and the OpenAPI 3.1 document.

A resource module (``hub_server/api/<name>.py``) looks like::

    routes = ApiRoutes("devices", "Devices and their health")

    class DeviceQuery(StrictModel):
        site: Identifier | None = None

    @routes.get("/devices", summary="List devices", role=Role.VIEWER, query=DeviceQuery, response=list[DeviceOut])
    async def list_devices(call: Call) -> web.StreamResponse:
        query: DeviceQuery = call.query
        return call.json([...])

and is named in ``hub_server.api.MODULES``. Handlers get validated ``call.query``, ``call.path`` and
``call.body``; a bad query or path gives 400, a bad body 422, each with one ``problems`` line per mistake.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pydantic_core
from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, TypeAdapter, ValidationError

from hub_protocol.validation import describe_errors
from hub_server.accounts.auth import Principal, check_role, current_principal
from hub_server.appkeys import CONFIG_KEY, DB_KEY, LIVE_KEY
from hub_server.config import HubConfig
from hub_server.ingest.live import LiveRegistry
from hub_server.store.accounts import Role
from hub_server.store.db import Database

API_PREFIX = "/api/v1"
API_DESCRIPTION = (
    "The neighbourhood hub's REST API. Operations marked public need nothing; every other one needs "
    "`Authorization: Bearer hubt_...` (an API token from `hub-server user token-add` or POST /api/v1/tokens) "
    "or the session cookie from POST /api/v1/session, which must then send `X-CSRF-Token` on every "
    "state-changing request. `x-required-role` names the least role (viewer < operator < admin). Errors are "
    "JSON problems with one `problems` line per mistake."
)
JSON = "application/json"
_PATH_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339_only(value: object) -> object:
    # Query strings are validated leniently (they are all text), which would read "0.5" as a Unix time.
    if isinstance(value, str) and not _RFC3339.fullmatch(value):
        raise ValueError("give a date and time with zone, like 2026-05-04T08:00:00Z")
    return value


def _in_utc(value: datetime) -> datetime:
    # Any RFC 3339 time bounds a search; one that a zone carries past year 9999 or before year 1 is that end.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.max if value.year > 1 else datetime.min).replace(tzinfo=UTC)


QueryDatetime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_in_utc)]
"""A time in a query string: RFC 3339 with a zone, nothing else; in UTC, within what datetime holds."""


def utc_text(value: datetime) -> str:
    """A time in the text fields of users, tokens and revoked devices, as they have always read: UTC, fixed width,
    microseconds, ``Z`` (the store keeps Unix seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def earlier(value: datetime, delta: timedelta) -> datetime:
    """``value - delta``, or the earliest time there is (a query may end on 0001-01-01)."""
    try:
        return value - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


class ApiError(Exception):
    """Raise from a handler: becomes a JSON problem with this status, detail and problem lines."""

    def __init__(self, status: int, detail: str, problems: list[str] | None = None) -> None:
        self.status = status
        self.detail = detail
        self.problems = problems or []
        super().__init__(detail)


class Problem(BaseModel):
    """Every error answer of the API."""

    status: int
    title: str
    detail: str
    problems: list[str]


@dataclass
class Call:
    """One validated API request."""

    request: web.Request
    principal: Principal | None
    query: Any
    path: Any
    body: Any

    @property
    def db(self) -> Database:
        return self.request.app[DB_KEY]

    @property
    def config(self) -> HubConfig:
        return self.request.app[CONFIG_KEY]

    @property
    def live(self) -> LiveRegistry:
        return self.request.app[LIVE_KEY]

    @property
    def actor(self) -> str:
        """Audit name of who asked (only on operations that need a role, so never anonymous there)."""
        return self.principal.actor if self.principal else "anonymous"

    def json(self, value: Any, status: int = 200) -> web.Response:
        """Pydantic models, dataclasses, datetimes and plain values, serialised the way the schema says."""
        return web.Response(body=pydantic_core.to_json(value), status=status, content_type=JSON)


ApiHandler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: ApiHandler
    summary: str
    tag: str
    role: Role | None
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    csv: bool = False
    statuses: tuple[int, ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def all_statuses(self) -> list[int]:
        found = {self.status, 400, 401}  # 401 also on public operations when a wrong token is sent
        if self.role is not None:
            found |= {403}
        if self.method not in ("GET", "HEAD"):
            found |= {403}  # CSRF refusal
        if self.path_params is not None:
            found.add(404)
        if self.body is not None:
            found |= {413, 415, 422}
        found |= set(self.statuses)
        return sorted(found)


@dataclass
class ApiRoutes:
    """The operations of one resource module, collected by decorators."""

    tag: str
    description: str = ""
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        role: Role | None,
        query: type[BaseModel] | None = None,
        path_params: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        csv: bool = False,
        statuses: tuple[int, ...] = (),
    ) -> Callable[[ApiHandler], ApiHandler]:
        names = _PATH_PARAM.findall(path)
        declared = set(path_params.model_fields) if path_params else set()
        if set(names) != declared:
            raise ValueError(f"{method} {path}: path parameters {names} do not match the model's {sorted(declared)}")

        def decorate(handler: ApiHandler) -> ApiHandler:
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    self.tag,
                    role,
                    query,
                    path_params,
                    body,
                    response,
                    status,
                    csv,
                    statuses,
                )
            )
            return handler

        return decorate

    def get(self, path: str, **kwargs: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[ApiHandler], ApiHandler]:
        return self.route("DELETE", path, **kwargs)


def _validate(model: type[BaseModel], data: Any, where: str, status: int) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}.{line}" if not line.startswith("(") else f"{where}: {line}" for line in describe_errors(exc)]
        raise ApiError(status, f"invalid {where}", lines) from None


def _query_dict(request: web.Request) -> dict[str, str]:
    data: dict[str, str] = {}
    for key in request.query:
        values = request.query.getall(key)
        if len(values) > 1:
            raise ApiError(400, "invalid query", [f"query.{key}: given {len(values)} times, give it once"])
        data[key] = values[0]
    return data


async def _read_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if request.content_type != JSON:
        raise ApiError(415, f"send the body as {JSON}", [f"Content-Type: got {request.content_type!r}"])
    raw = await request.read()  # aiohttp enforces client_max_size (413)
    try:
        # Strict JSON: 0 is not false and 5 is not a time; strings still give enums and ISO 8601 times.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "the body is not valid JSON", [f"body: {exc.errors()[0]['msg']}"]) from None
        raise ApiError(422, "invalid body", [f"body.{line}" for line in describe_errors(exc)]) from None


def _wrap(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal = check_role(request, op.role) if op.role is not None else current_principal(request)
        path = _validate(op.path_params, dict(request.match_info), "path", 404) if op.path_params else None
        query = _validate(op.query, _query_dict(request), "query", 400) if op.query else None
        if op.query is None and request.query:
            raise ApiError(400, "invalid query", [f"query.{k}: not expected here" for k in request.query])
        body = await _read_body(request, op.body) if op.body else None
        return await op.handler(Call(request, principal, query, path, body))

    handle.__name__ = op.operation_id
    handle.__doc__ = op.handler.__doc__
    return handle


# --- the registry and the OpenAPI document ----------------------------------------------------------------


@dataclass
class ApiRegistry:
    groups: list[ApiRoutes] = field(default_factory=list)
    _documents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    def include(self, routes: ApiRoutes) -> None:
        self.groups.append(routes)
        self._documents.clear()

    @property
    def operations(self) -> list[Operation]:
        return [op for group in self.groups for op in group.operations]

    def add_to(self, app: web.Application) -> None:
        seen: set[tuple[str, str]] = set()
        for op in self.operations:
            if (op.method, op.path) in seen:
                raise ValueError(f"two operations for {op.method} {op.path}")
            seen.add((op.method, op.path))
            app.router.add_route(op.method, API_PREFIX + op.path, _wrap(op), name=op.operation_id)

    def openapi(self, title: str, version: str) -> dict[str, Any]:
        """The OpenAPI document, built once (it takes tens of milliseconds and /openapi.json is public)."""
        key = (title, version)
        if key not in self._documents:
            self._documents[key] = self._build_openapi(title, version)
        return self._documents[key]

    def _build_openapi(self, title: str, version: str) -> dict[str, Any]:
        components: dict[str, Any] = {}
        at = ""  # the operation being described, for the error below

        def schema(type_: Any, mode: str = "serialization") -> dict[str, Any]:
            found = TypeAdapter(type_).json_schema(
                mode=mode,  # type: ignore[arg-type]
                ref_template="#/components/schemas/{model}",
            )
            for name, definition in found.pop("$defs", {}).items():
                # Definitions are keyed by bare class name: a second model of that name would silently replace
                # the first, and every reference to it would describe the wrong thing.
                known = components.setdefault(name, definition)
                if known != definition:
                    raise ValueError(f"OpenAPI: two different schemas are named {name!r}{at}; rename one of the models")
            return found

        problem = {"$ref": "#/components/schemas/Problem"}
        components["Problem"] = schema(Problem)
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            at = f" (the second at {op.method} {op.path})"
            entry: dict[str, Any] = {
                "operationId": op.operation_id,
                "summary": op.summary,
                "tags": [op.tag],
                "security": [] if op.role is None else [{"bearerAuth": []}, {"sessionCookie": []}],
            }
            if op.handler.__doc__:
                entry["description"] = " ".join(op.handler.__doc__.split())
            if op.role is not None:
                entry["x-required-role"] = op.role.value
            params = []
            for where, model in (("path", op.path_params), ("query", op.query)):
                if model is None:
                    continue
                model_schema = schema(model, "validation")
                required = set(model_schema.get("required", []))
                for name, prop in model_schema.get("properties", {}).items():
                    param = {"name": name, "in": where, "required": where == "path" or name in required}
                    if "description" in prop:
                        param["description"] = prop["description"]
                    param["schema"] = prop
                    params.append(param)
            if params:
                entry["parameters"] = params
            if op.body is not None:
                entry["requestBody"] = {"required": True, "content": {JSON: {"schema": schema(op.body, "validation")}}}
            responses: dict[str, Any] = {}
            for status in op.all_statuses():
                if status == op.status:
                    content: dict[str, Any] = {}
                    if op.response is not None:
                        content[JSON] = {"schema": schema(op.response)}
                    if op.csv:
                        content["text/csv"] = {"schema": {"type": "string"}}
                    responses[str(status)] = {"description": "Success", **({"content": content} if content else {})}
                else:
                    responses[str(status)] = {
                        "description": _reason(status),
                        "content": {JSON: {"schema": problem}},
                    }
            entry["responses"] = responses
            # aiohttp's {name} is already OpenAPI's path parameter syntax.
            paths.setdefault(API_PREFIX + op.path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version, "description": API_DESCRIPTION},
            "tags": [{"name": g.tag, "description": g.description} for g in self.groups],
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API token (hubt_...)"},
                    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "hub_session"},
                },
            },
        }


API_KEY: web.AppKey[ApiRegistry] = web.AppKey("api")


def _reason(status: int) -> str:
    from http import HTTPStatus

    return HTTPStatus(status).phrase
