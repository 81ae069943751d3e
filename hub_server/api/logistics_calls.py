"""How API handlers call the logistics service: off the event loop, with its refusals as API errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from hub_server.api.registry import ApiError, Call
from hub_server.logistics.service import LOGISTICS_KEY, Logistics, LogisticsError

T = TypeVar("T")


def logistics_of(call: Call) -> Logistics:
    return call.request.app[LOGISTICS_KEY]


async def run_logistics(action: Callable[[], T]) -> T:
    """SQLite and broker calls block: run them in a thread; a refusal becomes its HTTP status and reason."""
    try:
        return await asyncio.to_thread(action)
    except LogisticsError as exc:
        raise ApiError(exc.status, str(exc)) from None
