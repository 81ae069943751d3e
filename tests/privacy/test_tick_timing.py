"""When a flow window leaves the device, against someone who sees the encrypted traffic.

A window closes, and goes to the hub, at the agent's first tick after its end (then the link sends it within
50 ms). The agent ticks every second. If it waits a second after each tick, every late wake-up and every
slow tick pushes all later ticks back, so the send time of a window carries the sum of how late the 900 ticks
of the window before it were. Ticks are later while the counter works on people in view: it competes for the
CPU and the interpreter lock (a waking thread can wait a switch interval, 5 ms, for it). The test runs the
agent's tick loop on a fake clock through a window, for an empty street (0.15 ms late a tick) and with
someone in view half the time (plus up to the switch interval on half of those ticks), everything else equal,
and compares when the window leaves.
"""

from __future__ import annotations

import random

from edge_agent.agent import TICK_S
from edge_agent.timekeeping import Ticker

WINDOW_S = 900.0
LINK_JITTER_S = 0.05  # the link thread sends what the outbox holds within this
TRIALS = 300


def leaves_at(grid: bool, busy: bool, seed: int) -> float:
    """Seconds after the window's end at which the tick that closes it runs."""
    rng = random.Random(seed)
    now = [rng.random() * TICK_S - WINDOW_S]  # the window ends at 0; the agent started at some phase before
    ticker = Ticker(TICK_S, clock=lambda: now[0])
    while True:
        now[0] += ticker.delay() if grid else TICK_S  # as Agent.serve waits
        late = 0.00015
        if busy and rng.random() < 0.5 and rng.random() < 0.5:
            late += rng.uniform(0, 0.005)
        now[0] += late
        if now[0] >= 0:
            return now[0]
        now[0] += 0.0002 + rng.random() * 0.0003  # the tick's own work


def shows(grid: bool) -> float:
    """How often someone in view moves the window's send time by more than the link's own jitter."""
    moved = 0
    for seed in range(TRIALS):
        moved += abs(leaves_at(grid, True, seed) - leaves_at(grid, False, seed)) > LINK_JITTER_S
    return moved / TRIALS


def test_on_the_grid_a_window_leaves_at_the_same_time_whoever_was_in_view() -> None:
    assert shows(grid=True) == 0.0
    worst = max(abs(leaves_at(True, True, s) - leaves_at(True, False, s)) for s in range(TRIALS))
    assert worst <= 0.0052  # one tick's lateness at most


def test_control_waiting_a_period_after_each_tick_carries_the_windows_activity() -> None:
    assert shows(grid=False) > 0.9


def test_a_tick_later_than_a_period_skips_what_it_missed_and_keeps_the_grid() -> None:
    now = [100.0]
    ticker = Ticker(1.0, clock=lambda: now[0])
    assert ticker.delay() == 1.0
    now[0] = 103.4  # the tick due at 101 ran long
    assert ticker.delay() == 0.0  # the tick due at 103 runs now, late; 102 is skipped
    assert abs(ticker.delay() - 0.6) < 1e-9  # then 104, on the grid
