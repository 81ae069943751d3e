"""Runs the kiosk app in a thread of its own, so the agent's other loops are not involved."""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web

from edge_agent.lockers.kiosk.app import KioskBank, create_kiosk_app

log = logging.getLogger(__name__)


class KioskServer:
    def __init__(self, bank: KioskBank, host: str, port: int, language: str = "nl") -> None:
        self.app = create_kiosk_app(bank, language)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10) -> None:
        """Bind and serve; raises if the port cannot be bound (the locks keep working regardless)."""
        self._thread = threading.Thread(target=self._run, name="kiosk", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("kiosk did not start in time")
        if self._error is not None:
            raise RuntimeError(f"kiosk cannot listen on {self.host}:{self.port}: {self._error}")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), not lost in the thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = [s for s in (self._runner.addresses or [])]
        if self.port == 0 and sockets:
            self.port = int(sockets[0][1])
        log.info("kiosk listening on http://%s:%d/", self.host, self.port)

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None
