"""A field validation across UTC midnight against the next day's budget.

Under dp a validation's two tables are charged the epsilon of every flow window their period touches (one
person's crossings in them are not capped per object). The daily budget bounds what a person seen all day
can lose on that day; so the windows a validation touches after midnight must be paid from the next day's
budget. The test runs a device with a budget of 16 from 23:00, validates from 23:30 for an hour, and keeps
counting into the next day; then it adds up, from what the device published (windows and the record), the
epsilon paid for the crossings of the next day: its windows with counts, one charge each, and the record's
two tables, one charge for each of their windows after midnight.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger, charge_by_day, windows_touched
from edge_agent.setup.validation import build_record
from hub_protocol.flows import FlowWindow, PolicyKind
from tests.privacy.test_budget_clock import paid_on
from tests.privacy.test_clock_steps import FakeTime, Street

EVENING = datetime(2026, 12, 4, 23, 0, tzinfo=UTC)
NEXT_DAY = EVENING + timedelta(hours=1)
BUDGET = 16.0
VALIDATION_START = EVENING + timedelta(minutes=30)
VALIDATION_MINUTES = 60


def street(tmp_path: Path, budget: float = BUDGET) -> Street:
    s = Street(tmp_path, FakeTime(EVENING), policy=PolicyKind.DP)
    s.reporter.close()
    config = PrivacyConfig(policy=PolicyKind.DP, daily_budget=budget)
    s.reporter = type(s.reporter)(s.sink, config, ["kerb"], tmp_path, clock=s.watch)
    return s


def record_paid_on(record: dict[str, Any], day: datetime, window_seconds: int, window_charge: float) -> float:
    """Epsilon the record's two tables cost for windows of ``day``, read from the record: one window's
    charge per table for every window of that day its period touches (nothing, if it was withheld)."""
    if record["policy"].get("budget_exhausted"):
        return 0.0
    start = datetime.fromisoformat(record["started_at"])
    end = start + timedelta(minutes=record["minutes"] + 1)  # as the device charges it (the start's minute)
    window = timedelta(seconds=window_seconds)
    first = start - timedelta(seconds=start.timestamp() % window_seconds)
    touched = [first + i * window for i in range(windows_touched(start, end - start, window_seconds))]
    return 2 * window_charge * sum(w.date() == day.date() for w in touched)


def test_a_validation_across_midnight_is_paid_from_both_days_budgets(tmp_path: Path) -> None:
    s = street(tmp_path)
    config = s.reporter.config
    s.walk(91)  # 23:00 - 00:31: the validation ran from 23:30 to 00:30
    counts = {("kerb", "in", "pedestrian"): 40}
    record = build_record(["kerb"], VALIDATION_START, VALIDATION_MINUTES, counts, counts, s.reporter.protect_counts)
    assert not record["policy"].get("budget_exhausted"), "the evening's budget could pay for it"
    s.walk(6 * 60)  # the next day goes on until its budget is spent
    windows: list[FlowWindow] = s.windows()
    next_day = paid_on(windows, NEXT_DAY) + record_paid_on(record, NEXT_DAY, 900, config.window_charge)
    # Three of the period's windows (00:00, 00:15, 00:30) are the next day's, for both tables: 6.
    assert record_paid_on(record, NEXT_DAY, 900, config.window_charge) == 6 * config.window_charge
    assert next_day <= BUDGET, f"the next day's crossings cost {next_day} against a budget of {BUDGET}"
    # And the evening paid its own share: 23:00 - 23:45 and the record's 23:30 and 23:45 for both tables.
    evening = paid_on(windows, EVENING) + 2 * 2 * config.window_charge
    assert evening <= BUDGET
    s.reporter.close()


def test_a_period_one_of_its_days_cannot_pay_for_is_paid_by_neither(tmp_path: Path) -> None:
    """All or nothing: the evening could pay its share, the next day could not; nothing is paid, so the
    record is withheld rather than paid from the evening alone."""
    ledger = BudgetLedger(tmp_path / "ledger.sqlite")
    for i in range(4):  # the next day's budget of 4 is spent
        assert ledger.spend(NEXT_DAY + timedelta(minutes=15 * i), 1.0, 4.0).granted
    charges = charge_by_day(VALIDATION_START, timedelta(minutes=61), 900, 1.0)
    assert charges == {EVENING.date(): 2.0, NEXT_DAY.date(): 3.0}
    refused = ledger.spend_days(VALIDATION_START + timedelta(microseconds=1), charges, 4.0)
    assert not refused.granted and "exceeded" in refused.reason
    assert ledger.spent(EVENING.date().isoformat()) == 0.0
    paid = ledger.spend_days(VALIDATION_START + timedelta(microseconds=1), {EVENING.date(): 2.0}, 4.0)
    assert paid.granted and paid.spent_today == 2.0
    ledger.close()
