"""The dashboard's event stream: each raw ingest event becomes text for the elements marked ``data-live``.

The server does the formatting, in the reader's language, so the page script only copies text into place.
Element ids: ``status-<device>``, ``seen-<device>``, ``outbox-<device>``, ``today-<device>``,
``line-<device>-<line>-<direction>-<class>``, ``comp-<device>-<n>``, ``alarm-count``. A page region marked
``data-live-grow="<device>"`` is redrawn when a flow brings a ``line-<device>-...`` figure it has no element for.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hub_server.web import flowstats, i18n
from hub_server.web.context import Web, get_web
from hub_server.web.live import LiveEvent, stream
from hub_server.web.model import DeviceStatus


def device_fields(wb: Web, device: DeviceStatus | None, lang: str) -> dict[str, Any]:
    text: dict[str, str] = {}
    state: dict[str, str] = {}
    if device is None:
        return {"text": text, "state": state}
    device_id = device.device
    status = "online" if device.online else "offline"
    text[f"status-{device_id}"] = i18n.translate(lang, f"status.{status}")
    state[f"status-{device_id}"] = status
    text[f"seen-{device_id}"] = i18n.format_datetime(device.last_seen, lang, wb.zone)
    if device.health is not None:
        text[f"outbox-{device_id}"] = i18n.format_number(device.health.outbox_depth, lang)
    return {"text": text, "state": state}


def flow_fields(sums: flowstats.FlowSums, device_id: str, lang: str) -> dict[str, str]:
    text = {f"today-{device_id}": i18n.format_number(sums.device_total(device_id), lang)}
    for table in flowstats.line_tables(sums, device_id):
        for direction, cls, value in table.cells:
            text[f"line-{device_id}-{table.line}-{direction}-{cls}"] = i18n.format_number(value, lang)
        text[f"line-{device_id}-{table.line}-total"] = i18n.format_number(table.total, lang)
    return text


@dataclass(frozen=True, slots=True)
class Facts:
    """The store's answers an event needs, read once per event whatever the number of open pages."""

    devices: list[DeviceStatus]
    today: flowstats.FlowSums | None
    active_alarms: int


_DEVICE_KINDS = ("availability", "health", "register", "flow")
_KINDS = (*_DEVICE_KINDS, "locker", "alarm", "delivery")


def _read_facts(wb: Web, event: LiveEvent, device_id: str) -> Facts:
    # A worker thread: the reads never run on the loop.
    devices = wb.source.devices() if event.kind in _DEVICE_KINDS and device_id else []
    today = None
    if event.kind == "flow" and device_id:
        now = datetime.now(UTC)
        today = wb.source.flow_sums(flowstats.today_start(now, wb.zone), now, device_id)
    return Facts(devices, today, len(wb.source.alarms(active_only=True)))


async def event_facts(wb: Web, event: LiveEvent) -> Facts:
    """The event's facts: the first page to format it starts the read, the others wait for the same one."""
    task: asyncio.Future[Facts] | None = event.shared.get("facts")
    if task is None:
        task = asyncio.ensure_future(asyncio.to_thread(_read_facts, wb, event, str(event.data.get("device", ""))))
        event.shared["facts"] = task
    # Shielded: a page that closes while waiting must not cancel the read the other pages wait for.
    return await asyncio.shield(task)


async def format_event(wb: Web, event: LiveEvent, lang: str) -> dict[str, Any] | None:
    device_id = str(event.data.get("device", ""))
    update: dict[str, Any] = {"kind": event.kind, "device": device_id, "text": {}, "state": {}}
    if event.kind not in _KINDS:
        return None
    facts = await event_facts(wb, event)
    if event.kind in ("availability", "health", "register") and device_id:
        # One device listing serves both the row and the online count (it is the costly read here).
        devices = facts.devices
        fields = device_fields(wb, next((d for d in devices if d.device == device_id), None), lang)
        update["text"].update(fields["text"])
        update["state"].update(fields["state"])
        if event.kind == "availability":
            update["text"]["online-count"] = f"{sum(1 for d in devices if d.online)}/{len(devices)}"
            online = update["state"].get(f"status-{device_id}") == "online"
            update["announce"] = i18n.translate(lang, "live.online" if online else "live.offline", device=device_id)
    elif event.kind == "flow" and device_id and facts.today is not None:
        update["text"].update(flow_fields(facts.today, device_id, lang))
        device = next((d for d in facts.devices if d.device == device_id), None)
        update["text"].update(device_fields(wb, device, lang)["text"])
    elif event.kind == "locker" and device_id:
        # The event itself carries the new state: the logistics loop may not have applied it to its table yet.
        number, state = event.data.get("compartment"), event.data.get("state")
        if isinstance(number, int) and isinstance(state, str):
            key = f"comp-{device_id}-{number}"
            update["text"][key] = i18n.label(lang, "comp", state)
            update["state"][key] = state
    elif event.kind in ("alarm", "delivery"):
        pass
    else:
        return None
    update["text"]["alarm-count"] = i18n.format_number(facts.active_alarms, lang)
    if event.kind == "alarm":
        if event.data.get("active", True):
            update["announce"] = i18n.translate(
                lang, "live.alarm", device=device_id, kind=i18n.label(lang, "alarm", str(event.data.get("alarm", "")))
            )
        update["reload_hint"] = True
    return update


async def live(request: web.Request) -> web.StreamResponse:
    wb = get_web(request)
    if await wb.auth.operator(request) is None:
        # Not a redirect: an event stream answered with anything but 200 stops retrying, which is what a
        # page left open after logout should do.
        return web.Response(status=401, text="log in first")
    lang = i18n.negotiate(request)

    async def formatter(event: LiveEvent) -> dict[str, Any] | None:
        return await format_event(wb, event, lang)

    try:
        return await stream(request, wb.bus, formatter)
    except (ConnectionResetError, ConnectionError):
        return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/live", live)
