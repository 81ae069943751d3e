"""The hub's application factory: ``create_app(config)`` builds the aiohttp app, its API and its background tasks.

What is on the app (typed keys, see ``hub_server.appkeys`` and each service's module): ``CONFIG_KEY`` (HubConfig), ``DB_KEY``
(Database, migrated), ``LIVE_KEY`` (LiveRegistry: live device state the ingest fills, with listeners),
``AUTH_KEY`` and ``API_KEY``.

Background tasks are cleanup contexts (``async def ctx(app) -> AsyncIterator[None]``: start, ``yield``, stop).
Domain modules that have one are found by name in ``BACKGROUND`` and added when the module exists, so each
owner ships its task with its module; more can be passed as ``extra_contexts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from hub_protocol.validation import ConfigError, describe_errors
from hub_server import api
from hub_server.accounts.auth import AUTH_KEY, AuthState, Handler, auth_middleware, problem_response
from hub_server.api.registry import API_KEY, ApiError, ApiRegistry
from hub_server.appkeys import CONFIG_KEY, DB_KEY, LIVE_KEY
from hub_server.config import HubConfig
from hub_server.ingest.live import LiveRegistry
from hub_server.store import accounts, provisioning
from hub_server.store.db import Database, serving_request
from hub_server.store.singleton import Singleton, singleton

__all__ = ["API_KEY", "AUTH_KEY", "BACKGROUND", "CONFIG_KEY", "DB_KEY", "LIVE_KEY", "create_app"]

log = logging.getLogger(__name__)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

BACKGROUND: list[tuple[str, str]] = [
    ("hub_server.ingest.fanout", "fanout_ctx"),  # first: listening before the ingest publishes, stopped after it
    ("hub_server.ingest.service", "ingest_ctx"),
    ("hub_server.logistics.wiring", "logistics_ctx"),
    ("hub_server.fleet.alarms", "alarms_ctx"),
    ("hub_server.records.retention", "retention_ctx"),
]
"""(module, function) of each domain's background task; a module that does not exist yet is skipped."""

REVOCATION_REFRESH_S = 2.0


def create_app(
    config: HubConfig,
    *,
    database: Database | None = None,
    background: bool = True,
    pages: bool = True,
    extra_contexts: Sequence[CleanupCtx] = (),
) -> web.Application:
    """The hub. ``background=False`` leaves out the domain tasks of ``BACKGROUND`` (API tests without a broker);
    ``pages=False`` leaves out the web pages (``hub_server.web.setup_web``)."""
    database = database or Database(config.store.location)
    # The request marker serves only a store that refuses calls on the loop (the tests' check).
    serving = [_serving_middleware] if database.refuse_on_loop else []
    app = web.Application(
        client_max_size=config.http.max_body_bytes,
        middlewares=[*serving, _error_middleware, auth_middleware],
    )
    app[CONFIG_KEY] = config
    app[DB_KEY] = database
    app[LIVE_KEY] = LiveRegistry()
    app[AUTH_KEY] = AuthState.from_config(config)
    registry = ApiRegistry()
    for name in api.MODULES:
        registry.include(importlib.import_module(f"hub_server.api.{name}").routes)
    registry.add_to(app)
    app[API_KEY] = registry
    if importlib.util.find_spec("hub_server.logistics.wiring") is not None:
        importlib.import_module("hub_server.logistics.wiring").setup_logistics(app)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_housekeeping_ctx)
    if background:
        for module_name, function in BACKGROUND:
            if importlib.util.find_spec(module_name) is not None:
                app.cleanup_ctx.append(getattr(importlib.import_module(module_name), function))
    app.cleanup_ctx.extend(extra_contexts)
    if pages and importlib.util.find_spec("hub_server.web") is not None:
        web_module = importlib.import_module("hub_server.web")
        if hasattr(web_module, "setup_web"):
            web_module.setup_web(app)
    return app


async def _housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    """Keeps the revoked-device list fresh for the ingest (a CLI revoke runs in another process) in every
    instance; purges ended sessions in one."""
    db = app[DB_KEY]
    live = app[LIVE_KEY]

    def refresh() -> None:
        live.revoked = frozenset(provisioning.revoked_devices(db.conn))

    def purge() -> None:
        with db.write() as conn:
            accounts.purge_sessions(conn)

    async def loop(purge_job: Singleton) -> None:
        rounds = 0
        while True:
            try:
                await asyncio.to_thread(refresh)
                if rounds % 1800 == 0 and await asyncio.to_thread(purge_job.held):
                    await asyncio.to_thread(purge)
            except Exception:
                log.exception("housekeeping failed; retrying")
            rounds += 1
            await asyncio.sleep(REVOCATION_REFRESH_S)

    refresh()
    async with singleton(db.location, "session purge") as purge_job:
        task = asyncio.create_task(loop(purge_job), name="hub-housekeeping")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


_KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")


@web.middleware
async def _serving_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    with serving_request():
        return await handler(request)


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api every error is a JSON problem with the reason; nowhere does a traceback reach the client."""
    is_api = request.path.startswith("/api/")
    try:
        return await handler(request)
    except ApiError as exc:
        return problem_response(exc.status, exc.detail, exc.problems)
    except web.HTTPException as exc:
        if not is_api or exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in _KEPT_HEADERS}
        text = exc.text or ""
        detail = text if text and not text.startswith(f"{exc.status}:") else exc.reason
        return problem_response(exc.status, detail, headers=headers)
    except ValidationError as exc:
        return problem_response(422, "invalid input", describe_errors(exc))
    except ConfigError as exc:
        return problem_response(400, exc.source, exc.problems)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if is_api:
            return problem_response(500, "internal error; the hub's log has the details")
        raise web.HTTPInternalServerError(text="Internal error; the hub's log has the details.") from None


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/") and request.path not in _PUBLIC_CACHEABLE:
        headers.setdefault("Cache-Control", "no-store")


_PUBLIC_CACHEABLE: frozenset[str] = frozenset({"/api/v1/openapi.json"})


def run(config: HubConfig, **kwargs: Any) -> None:
    """Serve until interrupted (``hub-server serve``)."""
    app = create_app(config, **kwargs)
    web.run_app(app, host=config.http.host, port=config.http.port, access_log=None, print=None)
