"""What the pages show, independent of how the stores keep it; ``sources.py`` fills these from the stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from hub_protocol.accuracy import ValidationLine
from hub_protocol.envelope import Health
from hub_protocol.register import RegisterEntry

if TYPE_CHECKING:
    from hub_server.web.flowstats import FlowAggregate, FlowSums


@dataclass(frozen=True)
class Operator:
    id: str
    username: str
    role: str  # viewer, operator, admin

    @property
    def can_act(self) -> bool:
        return self.role in ("operator", "admin")


@dataclass(frozen=True)
class DeviceStatus:
    device: str
    site: str
    online: bool | None  # None: never heard from
    last_seen: datetime | None
    health: Health | None
    active_alarms: int = 0


@dataclass(frozen=True)
class HealthPoint:
    """One health sample, for the charts over time."""

    at: datetime
    outbox_depth: int
    load1: float
    cpu_temp_c: float | None
    fps: float
    mem_used_fraction: float


@dataclass(frozen=True)
class CompartmentView:
    number: int
    state: str  # hub_protocol.lockers.CompartmentState value
    door_open: bool
    size: str | None = None
    accessible: bool = False
    since: datetime | None = None


@dataclass(frozen=True)
class LockerBank:
    device: str
    site: str
    compartments: list[CompartmentView]


@dataclass(frozen=True)
class AlarmView:
    id: str
    device: str
    kind: str
    started: datetime
    ended: datetime | None
    detail: str = ""
    compartment: int | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.ended is None


@dataclass(frozen=True)
class DeliveryView:
    id: str
    device: str
    compartment: int | None
    size: str
    status: str
    created: datetime
    expires: datetime | None
    kind: str = "delivery"


@dataclass(frozen=True)
class CreatedDelivery:
    delivery: DeliveryView
    dropoff_code: str
    resident_url: str


@dataclass(frozen=True)
class Parcel:
    """What the resident's page shows; the pickup code only until it has been shown once."""

    status: str
    device: str
    site: str
    location: str
    compartment: int | None
    expires: datetime | None
    code_available: bool  # the pickup code exists and has not been revealed yet
    can_extend: bool
    extended: bool = False


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    detail: str = ""


@dataclass(frozen=True)
class DeliveryRequest:
    device: str
    size: str
    resident_name: str
    resident_contact: str | None = None
    accessible: bool = False
    kind: str = "delivery"


@dataclass(frozen=True)
class Refusal:
    """A clear, translatable reason an action was refused (message key plus values)."""

    key: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidationView:
    """A device's latest field validation by tally: its published accuracy."""

    device: str
    started_at: datetime
    minutes: float
    error: float | None
    lines: list[ValidationLine]


@dataclass(frozen=True)
class SetupOpened:
    """A one-time code for a device's setup page, to show once."""

    code: str
    minutes: int


class WebSource(Protocol):
    """Everything the pages read and the few things they change; one implementation per hub build."""

    def devices(self) -> list[DeviceStatus]: ...
    def device(self, device: str) -> DeviceStatus | None: ...
    def health_history(self, device: str, since: datetime) -> list[HealthPoint]: ...
    def flow_sums(
        self, since: datetime, until: datetime, device: str | None = None, *, protected_only: bool = False
    ) -> FlowSums:
        """``protected_only``: only windows published under a protection policy (what the public may see)."""
        ...

    def flow_aggregate(
        self, start: datetime, step: timedelta, slots: int, device: str | None = None
    ) -> FlowAggregate: ...
    def locker_banks(self) -> list[LockerBank]: ...
    def alarms(self, active_only: bool = False, limit: int = 200, device: str | None = None) -> list[AlarmView]: ...
    def acknowledge_alarm(self, alarm_id: str, operator: Operator) -> Refusal | None: ...
    def deliveries(self, limit: int = 200) -> list[DeliveryView]: ...
    def create_delivery(self, request: DeliveryRequest, operator: Operator) -> CreatedDelivery | Refusal: ...
    def parcel(self, token: str) -> Parcel | None: ...
    def reveal_code(self, token: str) -> str | Refusal: ...
    def extend_parcel(self, token: str) -> Refusal | None: ...
    def register(self) -> list[RegisterEntry]: ...
    def validations(self) -> dict[str, ValidationView]: ...
    def open_setup(self, device: str, operator: Operator) -> SetupOpened | Refusal: ...
    def audit(self, limit: int = 100, offset: int = 0) -> list[AuditEntry]: ...
