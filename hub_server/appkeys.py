"""Typed keys of the app's own parts that ``create_app`` puts on the application (also importable from
``hub_server.app``): its configuration, its store and the live registry.

Each service's key lives beside its type (``AUTH_KEY`` in ``accounts.auth``, ``API_KEY`` in ``api.registry``,
``ALARMS_KEY`` in ``fleet.alarms``, ``LOGISTICS_KEY`` in ``logistics.service``, ``NOTIFIER_KEY`` in
``logistics.notifications``), so this module imports no service and no service's import leads back here.
"""

from __future__ import annotations

from aiohttp import web

from hub_server.config import HubConfig
from hub_server.ingest.live import LiveRegistry
from hub_server.store.db import Database

CONFIG_KEY = web.AppKey("config", HubConfig)
DB_KEY = web.AppKey("db", Database)
LIVE_KEY = web.AppKey("live", LiveRegistry)
