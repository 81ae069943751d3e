"""Retention: how long the hub keeps what it receives, and the roll-ups that outlive the raw flow windows.

- Flow windows are added to hourly and daily totals as they arrive (each window once), kept as received for
  ``retention.raw_days``, then deleted with their cells and stored payloads; hourly totals are kept for
  ``retention.hourly_days``; daily totals are kept.
- Suppressed cells stay suppressed: a total with a suppressed part counts only the published parts and
  carries how many were withheld, so it reads "at least N" (a lower bound). Nothing is estimated or filled
  in, and nothing about a suppressed cell can be recomputed from totals that never included it: a margin a
  device sent beside a hidden cell counts as suppressed too.
  Differentially private counts are summed as published (post-processing keeps their guarantee).
- Residents' names, contacts and page links are deleted ``logistics.personal_data_days`` after their item
  was collected, returned or cancelled; ended alarms after ``retention.alarm_days``.

``hub-server purge`` runs it on demand; ``retention_ctx`` rolls up every few minutes and purges daily at
``retention.run_at_hour`` (UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from hub_server.config import HubConfig
from hub_server.logistics.models import erase_due_personal_data
from hub_server.store import alarms as alarms_store
from hub_server.store import feed
from hub_server.store import logistics as logistics_store
from hub_server.store import retention as store
from hub_server.store.db import Database
from hub_server.store.singleton import Singleton, singleton

log = logging.getLogger(__name__)

ROLL_UP_EVERY_S = 300.0


@dataclass(frozen=True, slots=True)
class PurgeReport:
    rolled_windows: int
    deleted_windows: int
    deleted_cells: int
    deleted_events: int
    deleted_health_samples: int
    deleted_hourly: int
    personal_data_erased: int
    deleted_alarms: int

    def lines(self) -> list[str]:
        return [f"{name.replace('_', ' ')}: {value}" for name, value in asdict(self).items()]


def _now() -> datetime:
    return datetime.now(UTC)


class Retention:
    def __init__(self, db: Database, config: HubConfig, clock: Callable[[], datetime] = _now) -> None:
        self.db = db
        self.config = config
        self.clock = clock

    def roll_up(self, batch: int = 2000) -> int:
        """Add every flow window not yet in the roll-ups; one transaction per batch. Returns how many."""
        total = 0
        while True:
            with self.db.write() as conn:
                added = store.roll_up_batch(conn, batch)
            total += added
            if added < batch:
                return total

    def purge(self) -> PurgeReport:
        """Roll up first (so nothing is deleted before it is counted), then delete what has aged out."""
        started = self.clock()
        rolled = self.roll_up()
        retention = self.config.retention
        with self.db.write() as conn:
            raw = store.delete_raw_flows(conn, started - timedelta(days=retention.raw_days))
            hourly = store.delete_hourly(conn, started - timedelta(days=retention.hourly_days))
            erased = erase_due_personal_data(conn, self.config.logistics, started)
            logistics_store.forget_seen_events(conn, started - timedelta(days=30))
            feed.forget_seen(conn, started - timedelta(days=2))
            alarms = alarms_store.prune(conn, started - timedelta(days=retention.alarm_days))
            report = PurgeReport(
                rolled_windows=rolled,
                deleted_windows=raw.windows,
                deleted_cells=raw.cells,
                deleted_events=raw.events,
                deleted_health_samples=raw.health_samples,
                deleted_hourly=hourly,
                personal_data_erased=len(erased),
                deleted_alarms=alarms,
            )
            store.record_run(conn, started, self.clock(), json.dumps(asdict(report)))
        log.info("retention: %s", ", ".join(report.lines()))
        return report

    def next_run(self, after: datetime) -> datetime:
        """The next daily run time (``run_at_hour`` UTC) strictly after ``after``."""
        at = after.astimezone(UTC).replace(hour=self.config.retention.run_at_hour, minute=0, second=0, microsecond=0)
        return at if at > after else at + timedelta(days=1)

    async def run(self, roll_every_s: float = ROLL_UP_EVERY_S, job: Singleton | None = None) -> None:
        """Background loop: roll up often, purge daily (and once at start when a run was missed). With ``job``,
        only while this instance holds it."""
        due: datetime | None = None  # read from the last run on (re)taking the job: another instance may have run
        while True:
            try:
                if job is not None and not await asyncio.to_thread(job.held):
                    due = None
                elif due is None:
                    last = await self.db.read(store.last_run)
                    if last is None or self.clock() - last[0] > timedelta(days=1):
                        due = self.clock()  # a run was missed: at once
                    else:
                        due = self.next_run(last[0])
                    continue
                elif self.clock() >= due:
                    await asyncio.to_thread(self.purge)
                    due = self.next_run(self.clock())
                else:
                    await asyncio.to_thread(self.roll_up)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention failed; trying again later")
            wait = roll_every_s if due is None else (due - self.clock()).total_seconds()
            await asyncio.sleep(max(0.01, min(roll_every_s, wait)))


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: roll-ups and the daily purge run while the hub runs."""
    from hub_server.appkeys import CONFIG_KEY, DB_KEY

    retention = Retention(app[DB_KEY], app[CONFIG_KEY])
    async with singleton(retention.db.location, "retention") as job:
        task = asyncio.create_task(retention.run(job=job), name="hub-retention")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
