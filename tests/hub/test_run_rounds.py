"""Background rounds (``ingest.live.run_rounds``): woken at once, but not more often than the gap allows."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hub_server.ingest.live import run_rounds


async def _rounds_while_always_woken(min_gap_s: float, seconds: float) -> int:
    wake = asyncio.Event()
    rounds = 0

    async def work() -> None:
        nonlocal rounds
        rounds += 1
        await asyncio.sleep(0)  # a real round waits for its thread
        wake.set()  # something to look at again, at once: as 2,000 devices' health notes do

    task = asyncio.create_task(
        run_rounds(work, wake, 60.0, "test rounds", logging.getLogger("test"), min_gap_s=min_gap_s)
    )
    await asyncio.sleep(seconds)
    task.cancel()
    # Ended by the cancel, within a second: a cancel swallowed while a wake was set would leave it running.
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(1.0):  # TimeoutError (a failure) if the loop is still running then
            await task
    return rounds


async def test_a_wake_during_the_gap_waits_for_it_and_is_looked_at_together() -> None:
    assert await _rounds_while_always_woken(min_gap_s=0.2, seconds=0.5) <= 3  # at 0, 0.2 and 0.4 s


async def test_without_a_gap_every_wake_starts_a_round_and_a_cancel_still_ends_the_loop() -> None:
    assert await _rounds_while_always_woken(min_gap_s=0.0, seconds=0.2) > 20
