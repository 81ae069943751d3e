"""Typed keys of what ``create_app`` puts on the application (import them from here or from ``hub_server.app``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from hub_server.config import HubConfig
from hub_server.ingest.live import LiveRegistry
from hub_server.store.db import Database

if TYPE_CHECKING:
    from hub_server.accounts.auth import AuthState
    from hub_server.api.registry import ApiRegistry
    from hub_server.fleet.alarms import AlarmService
    from hub_server.logistics.service import Logistics

CONFIG_KEY = web.AppKey("config", HubConfig)
DB_KEY = web.AppKey("db", Database)
LIVE_KEY = web.AppKey("live", LiveRegistry)
AUTH_KEY: web.AppKey[AuthState] = web.AppKey("auth")
API_KEY: web.AppKey[ApiRegistry] = web.AppKey("api")
LOGISTICS_KEY: web.AppKey[Logistics] = web.AppKey("logistics")
ALARMS_KEY: web.AppKey[AlarmService] = web.AppKey("alarms")
