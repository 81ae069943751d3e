"""The setup page on a thread and event loop of its own, started and stopped as its grant opens and closes."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from edge_agent.lockers.kiosk.app import KioskBank
from edge_agent.lockers.kiosk.server import KioskServer


class SetupServer(KioskServer):
    """The kiosk's runner (own thread, own loop, bind errors reported to ``start``) serving the setup app."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        super().__init__(cast(KioskBank, None), host, port)
        self.app = app  # the kiosk app built by the base class is never served
