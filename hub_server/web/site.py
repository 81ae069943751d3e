"""Wiring of the web layer into the hub's aiohttp app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import tzinfo
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from hub_server.appkeys import LIVE_KEY
from hub_server.web import dashboard, live_view, public, setup_access
from hub_server.web.context import WEB_KEY, Web, WebAuth
from hub_server.web.live import LiveBus
from hub_server.web.model import WebSource
from hub_server.web.render import make_environment

STATIC_PREFIX = "/static/web"
DEFAULT_ZONE = "Europe/Amsterdam"


def local_zone(name: str = DEFAULT_ZONE) -> tzinfo:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # a system without tzdata still serves pages, in UTC
        return ZoneInfo("UTC")


def setup_web(
    app: web.Application,
    source: WebSource | None = None,
    auth: WebAuth | None = None,
    bus: LiveBus | None = None,
    zone: tzinfo | None = None,
) -> Web:
    """Add the pages to ``app``. Without ``source``/``auth`` the hub's own stores and sessions are used."""
    if source is None or auth is None:
        from hub_server.web.sources import hub_auth, hub_source

        source = source or hub_source(app)
        auth = auth or hub_auth(app)
    wb = Web(
        env=make_environment(),
        bus=bus or LiveBus(),
        source=source,
        auth=auth,
        zone=zone or local_zone(),
    )
    app[WEB_KEY] = wb
    public.add_routes(app)
    dashboard.add_routes(app)
    live_view.add_routes(app)
    setup_access.add_routes(app)
    static = Path(str(resources.files("hub_server.web").joinpath("static")))
    app.router.add_static(STATIC_PREFIX, static, append_version=False)
    app.cleanup_ctx.append(_live_bus(wb.bus))
    app.on_shutdown.append(_close_streams)
    return wb


def _live_bus(bus: LiveBus) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        bus.attach(asyncio.get_running_loop())
        # The hub's live registry is the one bus every domain notifies; the pages listen to it.
        unsubscribe = app[LIVE_KEY].subscribe(bus.publish) if LIVE_KEY in app else None
        yield
        if unsubscribe is not None:
            unsubscribe()
        bus.close()

    return context


async def _close_streams(app: web.Application) -> None:
    # on_shutdown runs before the server waits for handlers: open event streams must end now.
    app[WEB_KEY].bus.close()
