"""A validation's totals are protected like a flow window: under dp both tables are noisy and paid from the
day's budget without taking the place of any flow window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import BudgetLedger, Protector
from edge_agent.setup.validation import build_record
from hub_protocol.accuracy import ValidationRecord
from hub_protocol.flows import PolicyKind

LINES = ["door"]
START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # also the start of a 15-minute flow window


def test_dp_pays_both_tables_and_leaves_the_flow_window_its_own_payment(tmp_path: Path) -> None:
    ledger = BudgetLedger(tmp_path / "ledger.sqlite")
    config = PrivacyConfig(policy=PolicyKind.DP, epsilon=1.0)
    protector = Protector(config, ledger)
    per_table = config.epsilon * config.max_crossings  # what one window costs: epsilon per crossing, m per person
    counted = {("door", "in", "pedestrian"): 40, ("door", "out", "pedestrian"): 35}
    tallied = {("door", "in", "pedestrian"): 42, ("door", "out", "pedestrian"): 35}
    fields = build_record(LINES, START, 10, counted, tallied, protector.protect)
    record = ValidationRecord.model_validate({**fields, "device": "dev-a", "boot": "b", "seq": 1})
    assert record.policy.kind is PolicyKind.DP and not record.policy.budget_exhausted
    assert record.policy.spent_today == per_table  # the counted table; the tallied one was paid right after
    assert ledger.spent(START.date().isoformat()) == 2 * per_table
    cells = {(c.direction.value, c.object_class.value): c for c in record.cells}
    assert all(c.counted is not None and c.tallied is not None for c in record.cells)
    assert abs(cells[("in", "pedestrian")].counted - 40) < 20  # noisy, not withheld
    line_in = next(v for v in record.lines if v.direction.value == "in")
    assert line_in.error is not None and line_in.counted is not None and line_in.tallied is not None
    assert line_in.error == round((line_in.counted - line_in.tallied) / line_in.tallied, 4)
    # The flow window that starts at the same minute is still paid normally.
    window = protector.protect(START, LINES, {})
    assert not window.policy.budget_exhausted and ledger.spent(START.date().isoformat()) == 3 * per_table
    ledger.close()


def test_policy_none_publishes_exact_totals() -> None:
    protector = Protector(PrivacyConfig(policy=PolicyKind.NONE))
    fields = build_record(
        LINES, START, 2.5, {("door", "in", "cyclist"): 3}, {("door", "in", "cyclist"): 4}, protector.protect
    )
    record = ValidationRecord.model_validate({**fields, "device": "dev-a", "boot": "b", "seq": 1})
    line_in = next(v for v in record.lines if v.direction.value == "in")
    assert (line_in.counted, line_in.tallied, line_in.error) == (3, 4, -0.25)
    line_out = next(v for v in record.lines if v.direction.value == "out")
    assert (line_out.counted, line_out.tallied, line_out.error) == (0, 0, None), "no tally, no error claimed"
    assert record.error == 0.25 and record.minutes == 2.5
