"""Alarms: what devices raise and clear, and what the hub concludes itself, each with start, end and an ack.

Sources:

- device alarms (door left open, forced open, open-not-opened, sensor fault, lockout, camera down, outbox
  dropping), raised and cleared by ``DeviceAlarm`` events, kept with the device's times;
- the hub's own conclusions, re-evaluated every ``evaluate_interval_s`` from what the ingest stored:
  ``offline`` (offline or silent longer than ``offline_after_s``), ``sequence-gap`` (a hole in a boot's
  sequence the ingest recorded), ``outbox-dropping`` (the device declared dropped events; ends after
  ``outbox_quiet_s`` without new drops), ``outbox-backlog`` (oldest unacknowledged event older than
  ``outbox_backlog_s``), ``camera-down`` (health reports the camera failed) and ``door-left-open`` (a door
  reported open by locker events for longer than ``door_open_s``; it merges with the device's own alarm).

One open alarm exists per device, kind and compartment; raising it again refreshes it. An operator's
acknowledgement is written to the audit log in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from aiohttp import web
from pydantic import BaseModel, computed_field

from hub_protocol.alarms import DeviceAlarm
from hub_protocol.envelope import CameraState, Health
from hub_server.accounts import audit
from hub_server.appkeys import LIVE_KEY
from hub_server.config import AlarmsConfig
from hub_server.ingest.live import LiveRegistry, run_rounds, wake_on
from hub_server.ingest.writer import SEQUENCE_GAP_NOTE
from hub_server.logistics.notifications import NOTIFIER_KEY, AlarmNotice, NotificationError, Notifier
from hub_server.store import alarms as store
from hub_server.store import feed
from hub_server.store import logistics as logistics_store
from hub_server.store.db import Database
from hub_server.store.singleton import Singleton, singleton, when_held

log = logging.getLogger(__name__)

ROUND_GAP_S = 1.0
"""Least time between the starts of two rounds. Every health and availability note wakes the evaluation, which
reads every device's state: a fleet of 2,000 reporting health each minute woke it about 35 times a second, one
round after another, which took a third of a core. An alarm waits at most this long for a round."""

MAX_NOTICES = 1000


class HubAlarmKind(StrEnum):
    """Alarms the hub raises itself (device kinds are ``hub_protocol.alarms.AlarmKind``)."""

    OFFLINE = "offline"
    SEQUENCE_GAP = "sequence-gap"
    OUTBOX_DROPPING = "outbox-dropping"
    OUTBOX_BACKLOG = "outbox-backlog"
    CAMERA_DOWN = "camera-down"
    DOOR_LEFT_OPEN = "door-left-open"


class Alarm(BaseModel):
    id: int
    device: str
    kind: str
    compartment: int | None
    source: str
    detail: str
    started_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def active(self) -> bool:
        """Not ended yet."""
        return self.ended_at is None


class AlarmNotFound(LookupError):
    pass


def _alarm(row: store.AlarmRow) -> Alarm:
    return Alarm.model_validate(row, from_attributes=True)


def _now() -> datetime:
    return datetime.now(UTC)


FEED = "alarms.device_alarms"


class AlarmService:
    def __init__(
        self,
        db: Database,
        config: AlarmsConfig,
        live: LiveRegistry | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.config = config
        self.live = live
        self.clock = clock
        self.notify = False
        """Collect notices for ``dispatch_notices`` (set by the app when a webhook is configured)."""
        # Alarms themselves are in the database; the notices are a best-effort nudge, kept in memory, bounded.
        self._notices: deque[AlarmNotice] = deque(maxlen=MAX_NOTICES)

    # reading

    def list_alarms(
        self,
        *,
        active_only: bool = False,
        device: str | None = None,
        kind: str | None = None,
        unacknowledged: bool = False,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Alarm]:
        rows = store.query(
            self.db.conn,
            active_only=active_only,
            device=device,
            kind=kind,
            unacknowledged=unacknowledged,
            before_id=before_id,
            limit=limit,
        )
        return [_alarm(r) for r in rows]

    def get(self, alarm_id: int) -> Alarm:
        row = store.get(self.db.conn, alarm_id)
        if row is None:
            raise AlarmNotFound(f"no alarm {alarm_id}")
        return _alarm(row)

    # writing

    def acknowledge(self, alarm_id: int, actor: str) -> Alarm:
        """Record who saw it (once; a second ack keeps the first) and write it to the audit log."""
        with self.db.write() as conn:
            current = store.get(conn, alarm_id)
            if current is None:
                raise AlarmNotFound(f"no alarm {alarm_id}")
            if current.acknowledged_at is None:
                store.acknowledge(conn, alarm_id, actor, self.clock())
                audit.record(
                    conn,
                    actor,
                    "alarm.ack",
                    f"alarm:{alarm_id}",
                    {"device": current.device, "kind": current.kind, "compartment": current.compartment},
                )
            row = store.get(conn, alarm_id)
        assert row is not None
        return _alarm(row)

    def raise_alarm(
        self,
        device: str,
        kind: str,
        at: datetime,
        *,
        compartment: int | None = None,
        detail: str = "",
        source: str = "hub",
        seen: datetime | None = None,
    ) -> Alarm:
        """Raise (starting ``at``) or refresh (still true at ``seen``, default ``at``) the alarm of this key."""
        with self.db.write() as conn:
            row, new = store.raise_alarm(conn, device, kind, compartment, source, detail, at, seen)
        alarm = _alarm(row)
        if new:
            log.warning("alarm raised: %s %s%s %s", device, kind, f" #{compartment}" if compartment else "", detail)
            self._tell(alarm)
        return alarm

    def end_alarm(self, device: str, kind: str, at: datetime, *, compartment: int | None = None) -> Alarm | None:
        with self.db.write() as conn:
            row = store.end_alarm(conn, device, kind, compartment, at)
        if row is None:
            return None
        alarm = _alarm(row)
        log.info("alarm ended: %s %s", device, kind)
        self._tell(alarm)
        return alarm

    def _tell(self, alarm: Alarm) -> None:
        if self.notify:
            self._notices.append(
                AlarmNotice(
                    event="alarm-raised" if alarm.active else "alarm-ended",
                    alarm=alarm.id,
                    device=alarm.device,
                    kind=alarm.kind,
                    detail=alarm.detail,
                    started_at=alarm.started_at.isoformat(),
                    compartment=alarm.compartment,
                    ended_at=None if alarm.ended_at is None else alarm.ended_at.isoformat(),
                )
            )
        if self.live is not None:
            self.live.notify(
                "alarm",
                {
                    "device": alarm.device,
                    "alarm": alarm.kind,
                    "active": alarm.active,
                    "id": alarm.id,
                    "compartment": alarm.compartment,
                    "detail": alarm.detail,
                    "origin": "hub-alarms",
                },
            )

    # inputs

    def on_device_alarm(self, event: DeviceAlarm) -> None:
        if event.active:
            self.raise_alarm(
                event.device,
                event.alarm.value,
                event.at,
                compartment=event.compartment,
                detail=event.detail,
                source="device",
            )
        else:
            self.end_alarm(event.device, event.alarm.value, event.at, compartment=event.compartment)

    def poll_device_alarms(self) -> int:
        """Apply device alarm events the ingest stored since the last call; returns how many."""
        return feed.follow(self.db, FEED, feed.device_alarms, self.on_device_alarm)

    def evaluate(self) -> None:
        """The hub's own alarms, from the ingest's tables and the lockers' reported door states."""
        now = self.clock()
        conn = self.db.conn
        self._offline(now, feed.device_statuses(conn))
        self._gaps(now, feed.open_sequence_gaps(conn))
        self._drops(now, feed.drops_since(conn, now - timedelta(seconds=self.config.outbox_quiet_s)))
        self._health(now, feed.latest_health(conn))
        self._doors(now, logistics_store.compartments(conn))

    def _reconcile(self, kind: HubAlarmKind, wanted: dict[tuple[str, int | None], tuple[datetime, str]]) -> None:
        """Raise every wanted (device, compartment) of ``kind`` and end the open hub alarms no longer wanted."""
        now = self.clock()
        for (device, compartment), (at, detail) in wanted.items():
            self.raise_alarm(device, kind.value, at, compartment=compartment, detail=detail, seen=now)
        for row in store.open_of_kind(self.db.conn, kind.value):
            if (row.device, row.compartment) not in wanted and row.source == "hub":
                self.end_alarm(row.device, kind.value, now, compartment=row.compartment)

    def _offline(self, now: datetime, statuses: list[feed.DeviceStatus]) -> None:
        limit = timedelta(seconds=self.config.offline_after_s)
        wanted: dict[tuple[str, int | None], tuple[datetime, str]] = {}
        for status in statuses:
            if self.live is not None and self.live.is_revoked(status.device):
                continue  # cut off on purpose: not an alarm
            if not status.online:
                since = status.since or status.last_seen
                if now - since >= limit:
                    reason = {
                        "will": "connection lost",
                        "graceful": "stopped",
                        "silent": "no messages",
                        "broker-restart": "not back since the broker restarted",
                    }.get(status.offline_reason or "", "offline")
                    wanted[(status.device, None)] = (since, f"{reason} since {since.isoformat(timespec='seconds')}")
            elif now - status.last_seen >= timedelta(seconds=self.config.health_silence_s):
                wanted[(status.device, None)] = (
                    status.last_seen,
                    f"no message since {status.last_seen.isoformat(timespec='seconds')}",
                )
        self._reconcile(HubAlarmKind.OFFLINE, wanted)

    def _gaps(self, now: datetime, gaps: list[feed.OpenGap]) -> None:
        limit = timedelta(seconds=self.config.sequence_gap_s)
        wanted: dict[tuple[str, int | None], tuple[datetime, str]] = {}
        for gap in gaps:
            if now - gap.detected_at < limit:
                continue
            key = (gap.device, None)
            text = f"boot {gap.boot}: events {gap.first_seq}-{gap.last_seq} missing"
            if key in wanted:
                at, detail = wanted[key]
                wanted[key] = (min(at, gap.detected_at), f"{detail}; {text}"[:500])
            else:
                wanted[key] = (gap.detected_at, text)
        self._reconcile(HubAlarmKind.SEQUENCE_GAP, wanted)

    def _drops(self, now: datetime, drops: list[feed.DropNotice]) -> None:
        wanted: dict[tuple[str, int | None], tuple[datetime, str]] = {}
        for drop in drops:
            key = (drop.device, None)
            first = wanted[key][0] if key in wanted else drop.declared_at
            wanted[key] = (first, f"the device's outbox dropped events; {drop.dropped_total} since install")
        self._reconcile(HubAlarmKind.OUTBOX_DROPPING, wanted)

    def _health(self, now: datetime, health: list[Health]) -> None:
        camera: dict[tuple[str, int | None], tuple[datetime, str]] = {}
        backlog: dict[tuple[str, int | None], tuple[datetime, str]] = {}
        for h in health:
            if h.camera_state == CameraState.FAILED:
                camera[(h.device, None)] = (h.at, "the camera failed and could not be reopened")
            if h.outbox_oldest_age_s >= self.config.outbox_backlog_s:
                backlog[(h.device, None)] = (
                    h.at,
                    f"{h.outbox_depth} events waiting, oldest {h.outbox_oldest_age_s / 60:.0f} min old",
                )
        self._reconcile(HubAlarmKind.CAMERA_DOWN, camera)
        self._reconcile(HubAlarmKind.OUTBOX_BACKLOG, backlog)

    def _doors(self, now: datetime, compartments: list[logistics_store.CompartmentRow]) -> None:
        limit = timedelta(seconds=self.config.door_open_s)
        wanted: dict[tuple[str, int | None], tuple[datetime, str]] = {}
        for c in compartments:
            if c.door_open and c.door_open_since is not None and now - c.door_open_since >= limit:
                wanted[(c.device, c.number)] = (
                    c.door_open_since,
                    f"door open since {c.door_open_since.isoformat(timespec='seconds')}",
                )
        self._reconcile(HubAlarmKind.DOOR_LEFT_OPEN, wanted)

    def prune(self, ended_before: datetime) -> int:
        with self.db.write() as conn:
            return store.prune(conn, ended_before)

    async def dispatch_notices(self, notifier: Notifier) -> int:
        """Post the notices collected since the last call, oldest first; on a failure the rest wait for the next
        round. Returns how many went out."""
        sent = 0
        while self._notices:
            notice = self._notices[0]
            try:
                await notifier.send(notice)
            except NotificationError as exc:
                log.warning("alarm notice not delivered (%s); %d waiting", exc, len(self._notices))
                break
            self._notices.popleft()
            sent += 1
        return sent

    async def run(self, wake: asyncio.Event, notifier: Notifier | None = None, job: Singleton | None = None) -> None:
        """Background loop; ``wake`` (set by the live bus) makes it look at once instead of at the interval, but
        not sooner than ``ROUND_GAP_S`` after the last round. With ``job``, rounds run only while this instance
        holds it."""

        async def round_() -> None:
            await asyncio.to_thread(self.poll_device_alarms)
            await asyncio.to_thread(self.evaluate)
            if notifier is not None:
                await self.dispatch_notices(notifier)

        work = round_ if job is None else when_held(job, round_)
        await run_rounds(work, wake, self.config.evaluate_interval_s, "alarm evaluation", log, min_gap_s=ROUND_GAP_S)


ALARMS_KEY: web.AppKey[AlarmService] = web.AppKey("alarms")


async def alarms_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: evaluates alarms in the background while the hub runs."""
    service = app[ALARMS_KEY]
    notifier = app[NOTIFIER_KEY] if service.config.notify_webhook else None
    service.notify = notifier is not None
    wake = asyncio.Event()
    unsubscribe = wake_on(app[LIVE_KEY], wake, {"alarm", "gap", SEQUENCE_GAP_NOTE, "availability", "health", "locker"})
    async with singleton(service.db.location, "alarm evaluation") as job:
        task = asyncio.create_task(service.run(wake, notifier, job), name="hub-alarms")
        yield
        unsubscribe()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
