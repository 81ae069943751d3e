"""The device page's "open the setup page" button: sends ``open-setup`` and shows the one-time code once.

The code is on this one response only (no-store), never in a URL, a log or the database.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub_server.web.context import get_web
from hub_server.web.dashboard import _ID, _base, _csrf_ok, _forbidden, _not_found, login_required
from hub_server.web.model import Operator, Refusal


@login_required
async def open_setup(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    device_id = request.match_info["device"]
    form = {k: str(v) for k, v in (await request.post()).items()}
    if not await _csrf_ok(request, form) or not operator.can_act:
        return _forbidden(request)
    if not _ID.fullmatch(device_id) or await asyncio.to_thread(wb.source.device, device_id) is None:
        return await _not_found(request, operator)
    opened = await asyncio.to_thread(wb.source.open_setup, device_id, operator)
    context = await _base(request, operator, "/dashboard")
    context.update(device_id=device_id)
    if isinstance(opened, Refusal):
        context.update(error=opened)
        return wb.page(request, "setup_code.html", context, status=409, no_store=True)
    context.update(code=opened.code, minutes=opened.minutes)
    return wb.page(request, "setup_code.html", context, no_store=True)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/dashboard/devices/{device}/setup", open_setup)
