"""Wiring of logistics and alarms into the hub's app: services on typed keys, background loops, command path.

``setup_logistics(app)`` (called by ``create_app``) puts ``Logistics`` on ``LOGISTICS_KEY`` and
``AlarmService`` on ``ALARMS_KEY`` so pages and the API work without the background tasks.
``logistics_ctx`` follows the ingest's locker and command-result tables, expires items, resends commands and
sends notifications; ``hub_server.fleet.alarms.alarms_ctx`` evaluates alarms. Both wake at once on the live bus
(the ingest's notifications) and otherwise run at their configured interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from hub_protocol.commands import CommandBase
from hub_protocol.secrets import read_secret
from hub_server.appkeys import CONFIG_KEY, DB_KEY, LIVE_KEY
from hub_server.config import LogisticsConfig
from hub_server.fleet.alarms import ALARMS_KEY, AlarmService
from hub_server.ingest.live import run_rounds, wake_on
from hub_server.logistics.notifications import NOTIFIER_KEY, Notifier, WebhookNotifier
from hub_server.logistics.service import LOGISTICS_KEY, Logistics
from hub_server.store import feed
from hub_server.store.singleton import Singleton, singleton, when_held

__all__ = [
    "ALARMS_KEY",
    "LOGISTICS_KEY",
    "NOTIFIER_KEY",
    "AppCommandPublisher",
    "logistics_ctx",
    "setup_logistics",
]

log = logging.getLogger(__name__)

FEED_LOCKERS = "logistics.locker_events"
FEED_RESULTS = "logistics.command_results"


class AppCommandPublisher:
    """Publishes through the app's running ingest (its MQTT client); raises while there is none."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def publish_command(self, command: CommandBase) -> None:
        from hub_server.ingest.service import ingest_of

        ingest = ingest_of(self.app)
        if ingest is None:
            raise RuntimeError("the hub's MQTT ingest is not running")
        ingest.publish_command(command)


def webhook_notifier(config: LogisticsConfig) -> WebhookNotifier | None:
    if config.webhook_url is None:
        return None
    key = None
    if config.webhook_secret_file is not None:
        key = read_secret(config.webhook_secret_file, "logistics.webhook_secret_file").encode()
    return WebhookNotifier(config.webhook_url, key=key)


def link_key(session_key: str) -> bytes:
    """Residents' links and sealed pickup codes use a key of their own, derived from the session key."""
    return hmac.new(session_key.encode(), b"hub-server resident links", hashlib.sha256).digest()


def setup_logistics(app: web.Application) -> None:
    config = app[CONFIG_KEY]
    db = app[DB_KEY]
    key = link_key(read_secret(config.http.session_key_file, "http.session_key_file"))
    app[LOGISTICS_KEY] = Logistics(db, config.logistics, AppCommandPublisher(app), config.http.public_url, key)
    app[ALARMS_KEY] = AlarmService(db, config.alarms, app[LIVE_KEY])
    app[NOTIFIER_KEY] = webhook_notifier(config.logistics)


def follow_ingest(logistics: Logistics) -> int:
    """Apply locker events and command results the ingest stored since the last call; returns how many."""
    return feed.follow(logistics.db, FEED_LOCKERS, feed.locker_events, logistics.on_event) + feed.follow(
        logistics.db, FEED_RESULTS, feed.command_results, logistics.on_event
    )


async def run_logistics(
    logistics: Logistics, notifier: Notifier | None, wake: asyncio.Event, job: Singleton | None = None
) -> None:
    """Events first (so a drop-off is seen before its expiry is judged), then the periodic work. With ``job``,
    rounds run only while this instance holds it."""

    async def round_() -> None:
        while await asyncio.to_thread(follow_ingest, logistics):
            pass
        await logistics.tick(notifier)

    work = round_ if job is None else when_held(job, round_)
    await run_rounds(work, wake, logistics.config.check_interval_s, "logistics round", log)


async def logistics_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the logistics loop runs while the hub runs."""
    logistics = app[LOGISTICS_KEY]
    notifier = app[NOTIFIER_KEY]
    wake = asyncio.Event()
    unsubscribe = wake_on(app[LIVE_KEY], wake, {"locker", "result"})
    async with singleton(logistics.db.location, "logistics rounds") as job:
        task = asyncio.create_task(run_logistics(logistics, notifier, wake, job), name="hub-logistics")
        yield
        unsubscribe()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
