"""The pages' view of the hub: sessions from ``hub_server.accounts.auth``, data from the domain services and stores.

Parts of the hub arrive as separate modules (ingest store, alarms, logistics service); each is looked up when
used, so the pages show what exists and an empty state for the rest instead of failing at import.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from hub_protocol.flows import PrivacyPolicy
from hub_protocol.lockers import CompartmentSize
from hub_protocol.register import RegisterEntry
from hub_protocol.validation import describe_errors
from hub_server import appkeys
from hub_server.accounts import audit as audit_log
from hub_server.accounts import auth as hub_auth_module
from hub_server.fleet import device_setup
from hub_server.fleet import register as hub_register
from hub_server.fleet.alarms import ALARMS_KEY
from hub_server.fleet.device_setup import DEFAULT_MINUTES
from hub_server.ingest.service import ingest_of
from hub_server.logistics.service import LOGISTICS_KEY, Logistics, LogisticsError, NoCompartmentFree
from hub_server.logistics.service import DeliveryRequest as LogisticsRequest
from hub_server.store import devices as store_devices
from hub_server.store import flow_summaries, provisioning, readings, validations
from hub_server.store import logistics as logistics_store
from hub_server.web import flowstats
from hub_server.web.model import (
    AlarmView,
    AuditEntry,
    CompartmentView,
    CreatedDelivery,
    DeliveryRequest,
    DeliveryView,
    DeviceStatus,
    HealthPoint,
    LockerBank,
    Operator,
    Parcel,
    Refusal,
    SetupOpened,
    ValidationView,
)

log = logging.getLogger(__name__)


class HubAuth:
    """Operator sessions through the hub core's auth (cookies, CSRF, roles, login limits)."""

    async def operator(self, request: web.Request) -> Operator | None:
        principal = hub_auth_module.current_principal(request)
        if principal is None or principal.kind != "user":
            return None
        return Operator(str(principal.id), principal.username, principal.role.value)

    async def login(
        self, request: web.Request, response: web.StreamResponse, username: str, password: str
    ) -> Operator | Refusal:
        try:
            principal = await hub_auth_module.login(request, response, username, password)
        except hub_auth_module.LoginRefused as exc:
            if exc.status == 429:
                return Refusal("login.rate_limited", {"seconds": str(int(exc.retry_after or 60) + 1)})
            return Refusal("login.failed")
        return Operator(str(principal.id), principal.username, principal.role.value)

    async def logout(self, request: web.Request, response: web.StreamResponse) -> None:
        await hub_auth_module.logout(request, response)

    async def csrf_token(self, request: web.Request) -> str:
        return hub_auth_module.csrf_token(request)

    async def check_csrf(self, request: web.Request, token: str) -> bool:
        # The middleware has already refused a wrong token; checking again keeps each handler safe on its own.
        expected = hub_auth_module.csrf_token(request)
        return bool(token) and hmac.compare_digest(token, expected)


def hub_auth(app: web.Application) -> HubAuth:
    return HubAuth()


def _person(actor: str | None) -> str | None:
    """``user:olga`` reads as ``olga``; tokens and the command line keep their prefix."""
    return actor.removeprefix("user:") if actor else actor


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


class HubSource:
    """Reads the hub's state for the pages; writes go through the domain services (which audit them)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    @property
    def _conn(self) -> Any:
        return self.app[appkeys.DB_KEY].conn

    # devices

    def devices(self) -> list[DeviceStatus]:
        """Provisioned and heard-from devices; the ingest's in-memory state wins over the stored one (fresher)."""
        conn = self._conn
        health = store_devices.latest_health(conn)
        rows = {
            r.device: DeviceStatus(
                r.device, r.site, r.online if r.last_seen else None, r.last_seen, health.get(r.device)
            )
            for r in readings.list_devices(conn)
            if not r.revoked
        }
        live = self.app[appkeys.LIVE_KEY]
        snapshot = live.snapshot()
        # Read only when a device is live but not stored (a revoked one the ingest still remembers).
        revoked = provisioning.revoked_devices(conn) if any(s.device not in rows for s in snapshot) else set()
        for seen in snapshot:
            stored = rows.get(seen.device)
            if live.is_revoked(seen.device) or (stored is None and seen.device in revoked):
                continue
            rows[seen.device] = DeviceStatus(
                seen.device,
                seen.site,
                seen.online if seen.online is not None else (stored.online if stored else None),
                _later(seen.last_seen, stored.last_seen if stored else None),
                seen.health or (stored.health if stored else None),
            )
        active: dict[str, int] = {}
        for alarm in self.alarms(active_only=True, limit=1000):
            active[alarm.device] = active.get(alarm.device, 0) + 1
        return [replace(d, active_alarms=active.get(d.device, 0)) for _, d in sorted(rows.items())]

    def device(self, device: str) -> DeviceStatus | None:
        return next((d for d in self.devices() if d.device == device), None)

    def health_history(self, device: str, since: datetime) -> list[HealthPoint]:
        return [
            HealthPoint(
                at=r["at"],
                outbox_depth=int(r["outbox_depth"]),
                load1=float(r["load1"]),
                cpu_temp_c=None if r["cpu_temp_c"] is None else float(r["cpu_temp_c"]),
                fps=float(r["fps"]),
                mem_used_fraction=float(r["mem_used_fraction"]),
            )
            for r in readings.health_history(self._conn, device, since, None, 2000)
        ]

    def flow_sums(
        self, since: datetime, until: datetime, device: str | None = None, *, protected_only: bool = False
    ) -> flowstats.FlowSums:
        sums = flow_summaries.span_sums(self._conn, since, until, device, protected_only=protected_only)
        return flowstats.FlowSums(sums.cells, sums.lines, sums.latest)

    def flow_aggregate(
        self, start: datetime, step: timedelta, slots: int, device: str | None = None
    ) -> flowstats.FlowAggregate:
        sums = flow_summaries.slot_sums(self._conn, start, step, slots, device)
        policies = set()
        for text in sums.policies:
            try:
                policies.add(flowstats.policy_text(PrivacyPolicy.model_validate_json(text)))
            except ValidationError:
                continue
        quality = flowstats.Quality(
            windows=sums.windows,
            observed_seconds=sums.observed_seconds,
            window_seconds=sums.window_seconds,
            fps_weighted=sums.fps_weighted,
            dropped_frames=sums.dropped_frames,
            policies=policies,
        )
        cells = [flowstats.CellSum(*c) for c in sums.cells]
        lines = [flowstats.LineSum(*line) for line in sums.lines]
        return flowstats.FlowAggregate(cells, lines, quality, sums.first_windows)

    def register(self) -> list[RegisterEntry]:
        return hub_register.public_entries(self._conn, self.app[appkeys.CONFIG_KEY])

    def validations(self) -> dict[str, ValidationView]:
        """Each device's latest field validation (its published accuracy)."""
        return {
            device: ValidationView(device, v.record.started_at, v.record.minutes, v.record.error, v.record.lines)
            for device, v in validations.latest(self._conn).items()
        }

    def open_setup(self, device: str, operator: Operator) -> SetupOpened | Refusal:
        """Send ``open-setup`` (blocks: call from a worker thread); the code is returned, never kept."""
        ingest = ingest_of(self.app)
        if ingest is None:
            return Refusal("error.unavailable", {"reason": "ingest"})
        try:
            _, code = device_setup.open_setup(
                ingest, self.app[appkeys.DB_KEY], device, DEFAULT_MINUTES, f"user:{operator.username}"
            )
        except (LookupError, RuntimeError) as exc:
            return Refusal("error.refused", {"reason": str(exc)})
        return SetupOpened(code, DEFAULT_MINUTES)

    # lockers and deliveries

    def locker_banks(self) -> list[LockerBank]:
        sites = {p.device: p.site for p in provisioning.list_all(self._conn)}
        for entry in self.app[appkeys.LIVE_KEY].snapshot():
            sites.setdefault(entry.device, entry.site)
        banks: dict[str, list[CompartmentView]] = {}
        for row in logistics_store.compartments(self._conn):
            banks.setdefault(row.device, []).append(
                CompartmentView(
                    number=row.number,
                    state=row.state or "unknown",
                    door_open=bool(row.door_open),
                    size=row.size,
                    accessible=row.accessible,
                    since=row.reported_at,
                )
            )
        return [
            LockerBank(device, sites.get(device, ""), sorted(comps, key=lambda c: c.number))
            for device, comps in sorted(banks.items())
        ]

    def deliveries(self, limit: int = 200) -> list[DeliveryView]:
        return [
            DeliveryView(
                id=row.id,
                device=row.device,
                compartment=row.compartment,
                size=row.size,
                status=row.status,
                created=row.created_at,
                expires=row.pickup_expires_at or row.dropoff_expires_at,
                kind=row.kind,
            )
            for row in logistics_store.deliveries(self._conn, limit=limit)
        ]

    def _logistics(self) -> Logistics | None:
        return self.app.get(LOGISTICS_KEY)

    def create_delivery(self, request: DeliveryRequest, operator: Operator) -> CreatedDelivery | Refusal:
        service = self._logistics()
        if service is None:
            return Refusal("error.unavailable", {"reason": "logistics"})
        try:
            created = service.create(
                LogisticsRequest(
                    kind="share" if request.kind == "share" else "delivery",
                    size=CompartmentSize(request.size),
                    accessible=request.accessible,
                    device=request.device,
                    resident_name=request.resident_name,
                    resident_contact=request.resident_contact,
                ),
                operator=f"user:{operator.username}",
            )
        except NoCompartmentFree:
            return Refusal("deliveries.no_compartment")
        except LogisticsError as exc:
            return Refusal("error.refused", {"reason": str(exc)})
        except ValidationError as exc:
            return Refusal("error.refused", {"reason": "; ".join(describe_errors(exc))})
        d = created.delivery
        return CreatedDelivery(
            delivery=DeliveryView(
                d.id, d.device, d.compartment, d.size.value, d.status.value, d.created_at, d.dropoff_expires_at, d.kind
            ),
            dropoff_code=created.dropoff_code,
            resident_url=created.resident_link,
        )

    def parcel(self, token: str) -> Parcel | None:
        service = self._logistics()
        if service is None:
            return None
        view = service.resident_view(token)
        if view is None:
            return None
        status = self.device(view.locker)
        location = next((e.location for e in self.register() if e.device == view.locker), "")
        return Parcel(
            status=view.status.value,
            device=view.locker,
            site=status.site if status else "",
            location=location,
            compartment=view.compartment,
            expires=view.pickup_expires_at,
            code_available=view.code_available,
            can_extend=view.can_extend,
            extended=not view.can_extend and view.status.value == "ready-for-pickup",
        )

    def reveal_code(self, token: str) -> str | Refusal:
        service = self._logistics()
        if service is None:
            return Refusal("parcel.code_gone")
        try:
            return str(service.reveal_pickup_code(token))
        except LogisticsError:
            return Refusal("parcel.code_gone")

    def extend_parcel(self, token: str) -> Refusal | None:
        service = self._logistics()
        if service is None:
            return Refusal("parcel.cannot_extend")
        try:
            service.extend_by_token(token)
        except LogisticsError:
            return Refusal("parcel.cannot_extend")
        return None

    # alarms and audit

    def alarms(self, active_only: bool = False, limit: int = 200, device: str | None = None) -> list[AlarmView]:
        service = self.app.get(ALARMS_KEY)
        if service is None:
            return []
        return [
            AlarmView(
                id=str(a.id),
                device=a.device,
                kind=a.kind,
                started=a.started_at,
                ended=a.ended_at,
                detail=a.detail,
                compartment=a.compartment or None,
                acknowledged_by=_person(a.acknowledged_by),
                acknowledged_at=a.acknowledged_at,
            )
            for a in service.list_alarms(active_only=active_only, device=device, limit=limit)
        ]

    def acknowledge_alarm(self, alarm_id: str, operator: Operator) -> Refusal | None:
        service = self.app.get(ALARMS_KEY)
        if service is None or not alarm_id.isdigit() or len(alarm_id) > 18:
            return Refusal("alarms.not_found")
        try:
            service.acknowledge(int(alarm_id), f"user:{operator.username}")  # audited by the service
        except LookupError:
            return Refusal("alarms.not_found")
        return None

    def audit(self, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        entries = audit_log.query(self._conn, limit=limit + offset)[offset:]
        return [
            AuditEntry(
                at=_dt(e.at) or datetime.now(UTC),
                actor=e.actor,
                action=e.action,
                target=e.target,
                detail=", ".join(f"{k}={v}" for k, v in sorted(e.detail.items())),
            )
            for e in entries
        ]


def hub_source(app: web.Application) -> HubSource:
    return HubSource(app)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    # With several instances each ingesting some messages, the store may have heard a device later than this one.
    return max(a, b) if a is not None and b is not None else a or b
