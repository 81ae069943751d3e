"""The web layer's state on the app, and the seams to the hub's auth and stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Protocol

import jinja2
from aiohttp import web

from hub_server.web.live import LiveBus
from hub_server.web.model import Operator, Refusal, WebSource
from hub_server.web.render import render

CSRF_FIELD = "csrf_token"
"""Name of the hidden form field carrying the CSRF token (the hub's auth middleware checks it too)."""


class WebAuth(Protocol):
    """Sessions, CSRF and roles as the hub core provides them."""

    async def operator(self, request: web.Request) -> Operator | None: ...
    async def login(
        self, request: web.Request, response: web.StreamResponse, username: str, password: str
    ) -> Operator | Refusal: ...
    async def logout(self, request: web.Request, response: web.StreamResponse) -> None: ...
    async def csrf_token(self, request: web.Request) -> str: ...
    async def check_csrf(self, request: web.Request, token: str) -> bool: ...


@dataclass
class Web:
    env: jinja2.Environment
    bus: LiveBus
    source: WebSource
    auth: WebAuth
    zone: tzinfo

    def page(
        self,
        request: web.Request,
        template: str,
        context: dict[str, Any],
        status: int = 200,
        no_store: bool = False,
    ) -> web.Response:
        return render(self.env, request, template, context, self.zone, status, no_store)


WEB_KEY = web.AppKey("hub_web", Web)


def get_web(request: web.Request) -> Web:
    return request.app[WEB_KEY]
