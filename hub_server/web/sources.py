"""The pages' view of the hub: sessions from ``hub_server.auth``, data from the domain services and stores.

Parts of the hub arrive as separate modules (ingest store, alarms, logistics service); each is looked up when
used, so the pages show what exists and an empty state for the rest instead of failing at import.
"""

from __future__ import annotations

import hmac
import importlib
import importlib.util
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hub_protocol.envelope import Health
from hub_protocol.flows import FlowWindow
from hub_protocol.register import RegisterEntry
from hub_server import appkeys
from hub_server import audit as audit_log
from hub_server import auth as hub_auth_module
from hub_server.store import logistics as logistics_store
from hub_server.store import provisioning
from hub_server.web.model import (
    AlarmView,
    AuditEntry,
    CompartmentView,
    CreatedDelivery,
    DeliveryRequest,
    DeliveryView,
    DeviceStatus,
    LockerBank,
    Operator,
    Parcel,
    Refusal,
    StoredWindow,
)

log = logging.getLogger(__name__)


def _module(name: str) -> Any | None:
    """A hub module that may not be part of this build yet."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _app_service(app: web.Application, key_name: str) -> Any | None:
    key = getattr(appkeys, key_name, None)
    if key is None:
        return None
    return app.get(key)


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
        live = {d.device: d for d in self.app[appkeys.LIVE_KEY].snapshot()}
        known = {p.device: p.site for p in provisioning.list_all(self._conn) if p.revoked_at is None}
        events = _module("hub_server.store.devices")
        if events is not None and hasattr(events, "list_devices"):
            for row in events.list_devices(self._conn):
                known.setdefault(row.device, row.site)
        for device, seen in live.items():
            known.setdefault(device, seen.site)
        active: dict[str, int] = {}
        for alarm in self.alarms(active_only=True, limit=1000):
            active[alarm.device] = active.get(alarm.device, 0) + 1
        result = []
        for device, site in sorted(known.items()):
            entry = live.get(device)
            result.append(
                DeviceStatus(
                    device=device,
                    site=site,
                    online=None if entry is None else entry.online,
                    last_seen=None if entry is None else entry.last_seen,
                    health=None if entry is None else entry.health,
                    active_alarms=active.get(device, 0),
                )
            )
        return result

    def device(self, device: str) -> DeviceStatus | None:
        return next((d for d in self.devices() if d.device == device), None)

    def health_history(self, device: str, since: datetime) -> list[Health]:
        events = _module("hub_server.store.events")
        if events is not None and hasattr(events, "health_history"):
            return [
                h if isinstance(h, Health) else Health.model_validate(h)
                for h in events.health_history(self._conn, device, since)
            ]
        entry = self.app[appkeys.LIVE_KEY].get(device)
        return [entry.health] if entry is not None and entry.health is not None else []

    def flow_windows(self, since: datetime, until: datetime, device: str | None = None) -> list[StoredWindow]:
        events = _module("hub_server.store.events")
        if events is None or not hasattr(events, "flow_windows"):
            return []
        result = []
        for row in events.flow_windows(self._conn, since=since, until=until, device=device):
            dev, site, window = row
            result.append(
                StoredWindow(dev, site, window if isinstance(window, FlowWindow) else FlowWindow.model_validate(window))
            )
        return result

    def register(self) -> list[RegisterEntry]:
        devices = _module("hub_server.store.devices")
        if devices is None or not hasattr(devices, "register_entries"):
            return []
        return [
            e if isinstance(e, RegisterEntry) else RegisterEntry.model_validate(e)
            for e in devices.register_entries(self._conn)
        ]

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

    def _logistics(self) -> Any | None:
        return _app_service(self.app, "LOGISTICS_KEY")

    def create_delivery(self, request: DeliveryRequest, operator: Operator) -> CreatedDelivery | Refusal:
        service = self._logistics()
        if service is None:
            return Refusal("error.unavailable", {"reason": "logistics"})
        from hub_server.logistics import DeliveryRequest as Request
        from hub_server.logistics import LogisticsError

        try:
            created = service.create(
                Request(
                    kind=request.kind,
                    size=request.size,
                    accessible=request.accessible,
                    device=request.device,
                    resident_name=request.resident_name,
                    resident_contact=request.resident_contact,
                ),
                operator=f"user:{operator.username}",
            )
        except LogisticsError as exc:
            return Refusal("error.refused", {"reason": str(exc)})
        d = created.delivery
        return CreatedDelivery(
            delivery=DeliveryView(
                d.id, d.device, d.compartment, d.size.value, d.status.value, d.created_at, d.dropoff_expires_at, d.kind
            ),
            dropoff_code=created.dropoff_code,
            pickup_code=created.pickup_code,
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
            code_available=bool(getattr(view, "code_available", False)),
            can_extend=view.can_extend,
            extended=not view.can_extend and view.status.value == "ready-for-pickup",
        )

    def reveal_code(self, token: str) -> str | Refusal:
        service = self._logistics()
        reveal = getattr(service, "reveal_pickup_code", None)
        if reveal is None:
            return Refusal("parcel.code_gone")
        from hub_server.logistics import LogisticsError

        try:
            return str(reveal(token))
        except LogisticsError:
            return Refusal("parcel.code_gone")

    def extend_parcel(self, token: str) -> Refusal | None:
        service = self._logistics()
        if service is None:
            return Refusal("parcel.cannot_extend")
        from hub_server.logistics import LogisticsError

        try:
            service.extend_by_token(token)
        except LogisticsError:
            return Refusal("parcel.cannot_extend")
        return None

    # alarms and audit

    def _alarms(self) -> Any | None:
        return _app_service(self.app, "ALARMS_KEY")

    def alarms(self, active_only: bool = False, limit: int = 200) -> list[AlarmView]:
        service = self._alarms()
        if service is None:
            return []
        result = []
        for a in service.list(active_only=active_only, limit=limit):
            result.append(
                AlarmView(
                    id=str(a.id),
                    device=a.device,
                    kind=str(getattr(a.kind, "value", a.kind)),
                    started=_dt(a.started_at) or datetime.now(UTC),
                    ended=_dt(a.ended_at),
                    detail=a.detail or "",
                    compartment=a.compartment,
                    acknowledged_by=a.acknowledged_by,
                    acknowledged_at=_dt(a.acknowledged_at),
                )
            )
        return result

    def acknowledge_alarm(self, alarm_id: str, operator: Operator) -> Refusal | None:
        service = self._alarms()
        if service is None:
            return Refusal("error.unavailable", {"reason": "alarms"})
        try:
            service.acknowledge(int(alarm_id), f"user:{operator.username}")
        except (ValueError, LookupError) as exc:
            return Refusal("error.refused", {"reason": str(exc)})
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
