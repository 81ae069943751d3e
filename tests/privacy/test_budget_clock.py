"""The daily budget against a clock that steps by days (a bad or spoofed time server, an operator).

The ledger keeps what was spent per UTC day and forgets old days. If "old" is judged by a clock that jumped
ahead, the accounts of the real day are deleted, and when the clock comes back that day's budget starts
again: a person in view all day is then protected by twice the budget. The test runs a device with a small
budget through such a jump and back, and adds up the epsilon it paid for windows of the real day, read from
what it published (windows with counts cost one charge each).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger
from edge_agent.privacy.reporter import LEDGER_FILE, FlowReporter
from hub_protocol.flows import FlowWindow, PolicyKind
from tests.privacy.test_clock_steps import FakeTime, Street

DAY = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
BUDGET = 4.0  # four 15-minute windows at the default charge of 1


def paid_on(windows: list[FlowWindow], day: datetime) -> float:
    """Epsilon spent on the day's 15-minute windows, as an outsider reads it from the published windows."""
    paid = [
        w
        for w in windows
        if w.window_seconds < 86_400 and w.window_start.date() == day.date() and not w.policy.budget_exhausted
    ]
    return sum(w.policy.epsilon * w.policy.max_crossings for w in paid if w.policy.epsilon is not None)


def street(tmp_path: Path) -> Street:
    s = Street(tmp_path, FakeTime(DAY), policy=PolicyKind.DP)
    s.reporter.close()
    config = PrivacyConfig(policy=PolicyKind.DP, daily_budget=BUDGET)
    s.reporter = type(s.reporter)(s.sink, config, ["kerb"], tmp_path, clock=s.watch)
    return s


@pytest.mark.parametrize("days", [2, 5, 40])
def test_a_clock_that_jumps_days_ahead_and_back_does_not_refill_the_days_budget(tmp_path: Path, days: int) -> None:
    s = street(tmp_path)
    s.walk(90)  # 10:00 - 11:30: six windows, four paid, then the budget is spent
    assert paid_on(s.windows(), DAY) == BUDGET
    s.time.step(timedelta(days=days))  # the time server says it is days later
    s.walk(35)  # windows of that later day are paid from its own budget; old accounts are pruned
    s.time.step(timedelta(days=-days))  # and back to the real time
    s.walk(120)
    assert paid_on(s.windows(), DAY) <= BUDGET, "the real day's budget was spent twice"
    s.reporter.close()


def test_a_day_whose_account_was_deleted_pays_for_nothing(tmp_path: Path) -> None:
    """The ledger itself: after forgetting days, a window of a forgotten day is refused rather than paid from
    an empty account; the most recent days spent on stay, whatever the clock said when pruning."""
    ledger = BudgetLedger(tmp_path / LEDGER_FILE)
    day = DAY.replace(hour=0)
    assert ledger.spend(day, 1.0, 4.0).granted
    assert ledger.spend(day + timedelta(days=9), 1.0, 4.0).granted  # a clock nine days ahead
    ledger.forget_before((day + timedelta(days=8)).date().isoformat())
    assert ledger.spent(day.date().isoformat()) == 1.0  # kept: one of the latest days spent on
    for n in range(1, 4):  # three more days ahead: the real day is now older than every kept one
        assert ledger.spend(day + timedelta(days=9 + n), 1.0, 4.0).granted
    ledger.forget_before((day + timedelta(days=11)).date().isoformat())
    refused = ledger.spend(day + timedelta(minutes=15), 1.0, 4.0)
    assert not refused.granted and "forgotten" in refused.reason
    assert ledger.spend(day + timedelta(days=13), 1.0, 4.0).granted  # later days are paid as before
    ledger.close()
    reopened = BudgetLedger(tmp_path / LEDGER_FILE)  # the watermark survives a restart
    assert not reopened.spend(day + timedelta(minutes=30), 1.0, 4.0).granted
    reopened.close()


def test_a_window_closed_again_after_a_restart_is_not_noised_again(tmp_path: Path) -> None:
    """Averaging attack: a device that restarts with its clock behind (no RTC, an old time from the
    previous shutdown) closes the same window again. Each fresh noise draw of the same counts would let an
    outsider average the noise away (n draws: variance / n); the ledger pays a window start once, so every
    later publication of it carries no count."""
    sink = MemorySink()
    config = PrivacyConfig(policy=PolicyKind.DP)
    for restart in range(20):
        reporter = FlowReporter(sink, config, ["kerb"], tmp_path, now=DAY + timedelta(minutes=restart % 5))
        for _ in range(12):
            reporter.add_crossing("kerb", "in", "pedestrian", DAY + timedelta(minutes=6))
        reporter.tick(DAY + timedelta(minutes=15))
        reporter.close()
    windows = [w for _, w in sink.events if isinstance(w, FlowWindow) and w.window_start == DAY]
    assert len(windows) == 20
    published = [c.count for w in windows for c in w.cells if c.count is not None]
    assert len(published) == 4  # the four cells of the first publication; the other 19 are withheld
    assert all(w.policy.budget_exhausted for w in windows[1:])
