"""The operator dashboard: fleet, device, flows, lockers, deliveries, alarms, audit (login required)."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from hub_protocol.lockers import CompartmentSize
from hub_protocol.validation import EARLIEST_TIME, IDENTIFIER_PATTERN, LATEST_TIME
from hub_server.web import charts, flowstats
from hub_server.web.context import CSRF_FIELD, Web, get_web
from hub_server.web.i18n import negotiate, translator
from hub_server.web.model import DeliveryRequest, Operator, Refusal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OperatorHandler = Callable[[web.Request, Operator], Awaitable[web.StreamResponse]]

NAV = (
    ("/dashboard", "nav.fleet"),
    ("/dashboard/flows", "nav.flows"),
    ("/dashboard/lockers", "nav.lockers"),
    ("/dashboard/deliveries", "nav.deliveries"),
    ("/dashboard/alarms", "nav.alarms"),
    ("/dashboard/audit", "nav.audit"),
)
_ID = re.compile(IDENTIFIER_PATTERN)


def login_required(handler: OperatorHandler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        operator = await get_web(request).auth.operator(request)
        if operator is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
            raise web.HTTPUnauthorized(text="log in first")
        return await handler(request, operator)

    return wrapper


async def _base(request: web.Request, operator: Operator, active: str) -> dict[str, Any]:
    wb = get_web(request)
    return {
        "lang_path": active or "/dashboard",
        "operator": operator,
        "nav": NAV,
        "active": active,
        "csrf": await wb.auth.csrf_token(request),
        "live": True,
        "active_alarm_count": sum(1 for a in await asyncio.to_thread(wb.source.alarms, active_only=True)),
    }


def _today(wb: Web) -> date:
    return datetime.now(wb.zone).date()


@login_required
async def fleet(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    devices = await asyncio.to_thread(wb.source.devices)
    now = datetime.now(UTC)
    sums = await asyncio.to_thread(wb.source.flow_sums, flowstats.today_start(now, wb.zone), now)
    today = {d.device: sums.device_total(d.device) for d in devices}
    context = await _base(request, operator, "/dashboard")
    context.update(
        devices=devices,
        counts_today=today,
        online=sum(1 for d in devices if d.online),
        backlog=sum(d.health.outbox_depth for d in devices if d.health),
        alarms=await asyncio.to_thread(wb.source.alarms, active_only=True, limit=10),
    )
    return wb.page(request, "fleet.html", context)


@login_required
async def device_page(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    device_id = request.match_info["device"]
    device = await asyncio.to_thread(wb.source.device, device_id) if _ID.fullmatch(device_id) else None
    if device is None:
        return await _not_found(request, operator)
    _ = translator(negotiate(request))
    now = datetime.now(UTC)
    # Half-hour slots over the last 24 hours: time runs evenly along the axis and an outage shows as a gap.
    since = now - timedelta(hours=24)
    history = await asyncio.to_thread(wb.source.health_history, device_id, since)
    health_charts = []
    if history:
        step, slots = timedelta(minutes=30), 48
        labels = [(since + step * i).astimezone(wb.zone).strftime("%H:%M") for i in range(slots)]
        for key, pick in (
            ("health.outbox_depth", lambda h: float(h.outbox_depth)),
            ("health.load1", lambda h: h.load1),
            ("health.mem", lambda h: h.mem_used_fraction * 100),
            ("health.cpu_temp", lambda h: h.cpu_temp_c),
            ("health.fps", lambda h: h.fps),
        ):
            values = _slot_means([(h.at, pick(h)) for h in history], since, step, slots)
            if all(v is None for v in values):
                continue
            title = _(key)
            health_charts.append(
                charts.line_chart(title, _("chart.health_desc", what=title), labels, [charts.Series(title, values)])
            )
    lines = flowstats.line_tables(
        await asyncio.to_thread(wb.source.flow_sums, flowstats.today_start(now, wb.zone), now, device_id), device_id
    )
    banks = [b for b in await asyncio.to_thread(wb.source.locker_banks) if b.device == device_id]
    register = next((r for r in await asyncio.to_thread(wb.source.register) if r.device == device_id), None)
    context = await _base(request, operator, "/dashboard")
    context.update(
        device=device,
        health_charts=health_charts,
        lines=lines,
        banks=banks,
        register=register,
        validation=(await asyncio.to_thread(wb.source.validations)).get(device_id),
        alarms=await asyncio.to_thread(wb.source.alarms, limit=50, device=device_id),
    )
    return wb.page(request, "device.html", context)


def _slot_means(
    samples: list[tuple[datetime, float | None]], start: datetime, step: timedelta, slots: int
) -> list[float | None]:
    sums: list[float] = [0.0] * slots
    counts: list[int] = [0] * slots
    for at, value in samples:
        slot = int((at - start) / step)
        if value is not None and 0 <= slot < slots:
            sums[slot] += value
            counts[slot] += 1
    return [sums[i] / counts[i] if counts[i] else None for i in range(slots)]


def _parse_day(value: str, fallback: date) -> date:
    try:
        day = date.fromisoformat(value) if value else fallback
    except ValueError:
        return fallback
    # The page reaches a week back and a day on: near year 1 or 9999 that overflows; shown like a typo.
    return day if EARLIEST_TIME.date() <= day < LATEST_TIME.date() else fallback


@login_required
async def flows(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    _ = translator(negotiate(request))
    devices = await asyncio.to_thread(wb.source.devices)
    device_id = request.query.get("device", "")
    if device_id and not any(d.device == device_id for d in devices):
        device_id = ""
    day = _parse_day(request.query.get("day", ""), _today(wb))
    start = flowstats.day_start(day, wb.zone)
    week_start = flowstats.day_start(day - timedelta(days=6), wb.zone)
    now = datetime.now(UTC)
    spans = []
    for span_start, step, slots, label in (
        (start, timedelta(hours=1), 24, "%H"),
        (week_start, timedelta(days=1), 7, "%a %d"),
    ):
        aggregate = await asyncio.to_thread(wb.source.flow_aggregate, span_start, step, slots, device_id or None)
        bucketed = flowstats.assemble(aggregate, span_start, step, slots, wb.zone, label)
        bucketed.quality.expected_windows = flowstats.expected_from_first(
            aggregate.first_windows, min(now, span_start + step * slots)
        )
        spans.append(bucketed)
    day_b, week_b = spans

    def series_name(key: tuple[str, str]) -> str:
        if key == flowstats.ALL:
            return _("flows.line_total")
        return f"{_('dir.' + key[0])} · {_('class.' + key[1])}"

    sections = []
    for line in sorted(set(day_b.lines) | set(week_b.lines)):
        block: dict[str, Any] = {"line": line}
        for name, bucketed, maker, label in (
            ("day", day_b, charts.line_chart, "flows.day_title"),
            ("week", week_b, charts.bar_chart, "flows.week_title"),
        ):
            buckets = bucketed.lines.get(line)
            series = (
                [] if buckets is None else [charts.Series(series_name(k), v) for k, v in sorted(buckets.series.items())]
            )
            title = _(label, line=line)
            block[name] = {
                "chart": maker(title, _("chart.flow_desc", line=line), bucketed.labels, series) if series else None,
                "labels": bucketed.labels,
                "series": series,
            }
        sections.append(block)
    context = await _base(request, operator, "/dashboard/flows")
    context.update(
        devices=devices,
        device_id=device_id,
        day=day.isoformat(),
        sections=sections,
        day_quality=day_b.quality,
        week_quality=week_b.quality,
        prev_day=(day - timedelta(days=1)).isoformat(),
        next_day=(day + timedelta(days=1)).isoformat(),
    )
    return wb.page(request, "flows.html", context)


@login_required
async def lockers(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    context = await _base(request, operator, "/dashboard/lockers")
    context.update(banks=await asyncio.to_thread(wb.source.locker_banks))
    return wb.page(request, "lockers.html", context)


@login_required
async def deliveries(request: web.Request, operator: Operator) -> web.StreamResponse:
    return await _deliveries_page(request, operator, None, {})


async def _deliveries_page(
    request: web.Request, operator: Operator, error: Refusal | None, form: dict[str, str], status: int = 200
) -> web.StreamResponse:
    wb = get_web(request)
    context = await _base(request, operator, "/dashboard/deliveries")
    context.update(
        deliveries=await asyncio.to_thread(wb.source.deliveries),
        banks=await asyncio.to_thread(wb.source.locker_banks),
        sizes=[s.value for s in CompartmentSize],
        error=error,
        form=form,
    )
    return wb.page(request, "deliveries.html", context, status=status)


async def _csrf_ok(request: web.Request, form: dict[str, str]) -> bool:
    return await get_web(request).auth.check_csrf(request, form.get(CSRF_FIELD, ""))


def _forbidden(request: web.Request) -> web.Response:
    wb = get_web(request)
    return wb.page(request, "error.html", {"message_key": "error.forbidden"}, status=403)


@login_required
async def create_delivery(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    form = {k: str(v) for k, v in (await request.post()).items()}
    if not await _csrf_ok(request, form):
        return _forbidden(request)
    if not operator.can_act:
        return await _deliveries_page(request, operator, Refusal("error.role"), form, 403)
    device = form.get("device", "")
    size = form.get("size", "")
    kind = form.get("kind", "delivery")
    name = form.get("resident_name", "").strip()
    contact = form.get("resident_contact", "").strip()
    problem = None
    if not _ID.fullmatch(device):
        problem = "deliveries.error_device"
    elif size not in {s.value for s in CompartmentSize}:
        problem = "deliveries.error_size"
    elif kind not in ("delivery", "share"):
        problem = "deliveries.error_kind"
    elif not 1 <= len(name) <= 100:
        problem = "deliveries.error_name"
    elif contact and not 3 <= len(contact) <= 200:
        problem = "deliveries.error_contact"
    if problem is not None:
        return await _deliveries_page(request, operator, Refusal(problem), form, 400)
    result = await asyncio.to_thread(
        wb.source.create_delivery,
        DeliveryRequest(
            device=device,
            size=size,
            resident_name=name,
            resident_contact=contact or None,
            accessible=form.get("accessible") == "on",
            kind=kind,
        ),
        operator,
    )
    if isinstance(result, Refusal):
        return await _deliveries_page(request, operator, result, form, 409)
    context = await _base(request, operator, "/dashboard/deliveries")
    context.update(created=result)
    # Codes are shown once: never cached, never shown again by any page.
    return wb.page(request, "delivery_created.html", context, no_store=True)


@login_required
async def alarms(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    context = await _base(request, operator, "/dashboard/alarms")
    context.update(alarms=await asyncio.to_thread(wb.source.alarms, limit=200), notice=request.query.get("done", ""))
    return wb.page(request, "alarms.html", context)


@login_required
async def acknowledge(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    form = {k: str(v) for k, v in (await request.post()).items()}
    if not await _csrf_ok(request, form):
        return _forbidden(request)
    if not operator.can_act:
        return _forbidden(request)
    refusal = await asyncio.to_thread(wb.source.acknowledge_alarm, request.match_info["alarm"], operator)
    if refusal is not None:
        context = await _base(request, operator, "/dashboard/alarms")
        context.update(alarms=await asyncio.to_thread(wb.source.alarms, limit=200), notice="", error=refusal)
        return wb.page(request, "alarms.html", context, status=409)
    raise web.HTTPSeeOther("/dashboard/alarms?done=ack")


@login_required
async def audit(request: web.Request, operator: Operator) -> web.StreamResponse:
    wb = get_web(request)
    try:
        page = max(0, min(10_000, int(request.query.get("page", "0"))))
    except ValueError:
        page = 0
    size = 50
    entries = await asyncio.to_thread(wb.source.audit, limit=size + 1, offset=page * size)
    context = await _base(request, operator, "/dashboard/audit")
    context.update(entries=entries[:size], page=page, more=len(entries) > size)
    return wb.page(request, "audit.html", context)


async def _not_found(request: web.Request, operator: Operator | None) -> web.Response:
    wb = get_web(request)
    context: dict[str, Any] = {"message_key": "error.not_found"}
    if operator is not None:
        context.update(await _base(request, operator, ""))
    return wb.page(request, "error.html", context, status=404)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard", fleet, name="web-fleet")
    app.router.add_get("/dashboard/devices/{device}", device_page)
    app.router.add_get("/dashboard/flows", flows)
    app.router.add_get("/dashboard/lockers", lockers)
    app.router.add_get("/dashboard/deliveries", deliveries)
    app.router.add_post("/dashboard/deliveries", create_delivery)
    app.router.add_get("/dashboard/alarms", alarms)
    app.router.add_post("/dashboard/alarms/{alarm}/ack", acknowledge)
    app.router.add_get("/dashboard/audit", audit)
