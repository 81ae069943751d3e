"""Callbacks that run on a library's thread (paho, gpiozero, timers) go through ``guarded``, on device and hub.

paho 2.x re-raises an exception from a callback out of ``loop()``, which ends the network thread while
the link still looks connected; other libraries end their worker threads the same way. A guarded
callback logs the exception and returns, so one bad message or one failed write cannot silence a thread.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


def guarded(callback: Callable[P, object], what: str, logger: logging.Logger | None = None) -> Callable[P, None]:
    """``callback`` with every ``Exception`` logged (as ``what`` failed) instead of raised."""
    log = logger or logging.getLogger(callback.__module__)

    @functools.wraps(callback)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            log.exception("%s failed; the thread goes on", what)

    return run
