"""Field validation records against an informed outsider: they are public (the open API, /sensors) and are a
second publication of the same crossings as the flow windows, so they must not undo the windows' protection.

Under threshold suppression: every window a record could have been built from (with a device miscount the
outsider does not know) is listed and grouped by everything published about it, the flow window and the
record together, as in test_suppression.py; no hidden window count may be pinned to one value.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import CELL_ORDER, BudgetLedger, Protector
from edge_agent.setup.validation import build_record
from hub_protocol.accuracy import ValidationRecord
from hub_protocol.flows import PolicyKind

LINES = ["door"]
START = datetime(2026, 5, 4, 12, 3, tzinfo=UTC)
TOP = 9
KEYS = [("door", d.value, c.value) for d, c in CELL_ORDER]
Published = tuple[int | None, ...]


def with_sums(cells: tuple[int, ...]) -> tuple[int, ...]:
    """The true figures a record is about: the four cells, then the sums per direction (in, out)."""
    return (*cells, cells[0] + cells[1], cells[2] + cells[3])


def pinned(truths: Sequence[tuple[int, ...]], outputs: Sequence[Published], k: int) -> list[str]:
    """Every (publication, hidden figure) whose possible tables give that figure one value only, while that
    value is below k (zero included). Larger pinned values are artefacts of the grid's upper edge (cells
    stop at TOP; real ones do not)."""
    seen: dict[Published, list[set[int]]] = {}
    for truth, output in zip(truths, outputs, strict=True):
        values = seen.setdefault(output, [set() for _ in truth])
        for i, v in enumerate(truth):
            values[i].add(v)
    return [
        f"{output} pins figure {i} to {next(iter(values[i]))}"
        for output, values in seen.items()
        for i in range(len(values))
        if output[i] is None and len(values[i]) == 1 and next(iter(values[i])) < k
    ]


GRID = list(itertools.product(range(TOP + 1), repeat=len(KEYS)))


def test_control_cells_next_to_their_sums_are_undone_by_subtraction() -> None:
    """Control for the enumeration: a record as it was (each cell on its own value, and the per-direction
    sums next to them): (7, 2) with k=3 published 7, null and the sum 9, so the null cyclist count was 2."""
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=3))

    def old_record(cells: tuple[int, ...]) -> Published:
        window = protector.protect(START, LINES, dict(zip(KEYS, cells, strict=True)))  # type: ignore[arg-type]
        sums = [cells[0] + cells[1], cells[2] + cells[3]]
        return (*(c.count for c in window.cells), *(s if s >= 3 else None for s in sums))

    found = pinned([with_sums(c) for c in GRID], [old_record(c) for c in GRID], 3)
    assert "(7, None, None, None, 9, None) pins figure 1 to 2" in found


# --- a validation next to the flow windows of the same minutes --------------------------------------------

WINDOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a validation that covers exactly one flow window
ERRORS = (-1, 0, 1)
"""What the device miscounted on the first cell, unknown to the outsider; the technician tallies the truth."""
SMALL_GRID = list(itertools.product(range(8), repeat=len(KEYS)))


def window_and_record(k: int) -> Callable[[tuple[int, ...], int], Published]:
    """Everything published about the window's crossings: the flow window's cells, then every figure of a
    validation record over the same fifteen minutes."""
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=k))

    def publish(cells: tuple[int, ...], miscount: int) -> Published:
        truth = dict(zip(KEYS, cells, strict=True))
        window = protector.protect(WINDOW, LINES, truth)  # type: ignore[arg-type]
        counted = {**truth, KEYS[0]: max(cells[0] + miscount, 0)}
        fields = build_record(LINES, WINDOW, 15, counted, truth, protector.protect)
        record = ValidationRecord.model_validate({**fields, "device": "dev-a", "boot": "b", "seq": 1})
        return (
            *(c.count for c in window.cells),
            *(n for c in record.cells for n in (c.counted, c.tallied)),
            *(n for v in record.lines for n in (v.counted, v.tallied, v.error)),
            record.error,
        )

    return publish


@pytest.mark.parametrize("k", [3, 5])
def test_a_validation_over_the_same_minutes_pins_no_hidden_window_count(k: int) -> None:
    """The outsider subtracts the window's published cells from the record's figures for the same minutes
    (e.g. window 7 pedestrians and a null, record 9 for the direction: the null was 2)."""
    publish = window_and_record(k)
    tables = [(cells, e) for cells in SMALL_GRID for e in ERRORS]
    outputs = [publish(cells, e) for cells, e in tables]
    assert pinned([cells for cells, _ in tables], outputs, k) == []


def test_a_busy_validation_still_publishes_its_error() -> None:
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=5))
    counted = {KEYS[0]: 12, KEYS[1]: 2, KEYS[2]: 10}
    tallied = {KEYS[0]: 13, KEYS[1]: 3, KEYS[2]: 10}
    fields = build_record(LINES, WINDOW, 15, counted, tallied, protector.protect)
    record = ValidationRecord.model_validate({**fields, "device": "dev-a", "boot": "b", "seq": 1})
    assert record.error == 0.05  # 1 of 23 on the cells counted at least k times, to 5%; the 2 vs 3 stays out
    assert all(c.counted is None and c.tallied is None for c in record.cells)
    assert all(v.counted is None and v.tallied is None and v.error is None for v in record.lines)


def test_control_a_record_of_sums_alone_is_undone_by_the_window_of_the_same_minutes() -> None:
    """Control: a record that published only its per-direction sums, each on its own value (no cell next
    to them), still gives the window's nulls away: window 7 and null, record 9 for the direction."""
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=3))

    def sums_record(cells: tuple[int, ...]) -> Published:
        window = protector.protect(WINDOW, LINES, dict(zip(KEYS, cells, strict=True)))  # type: ignore[arg-type]
        sums = [cells[0] + cells[1], cells[2] + cells[3]]
        return (*(c.count for c in window.cells), *(v if v >= 3 else None for v in sums))

    found = pinned(SMALL_GRID, [sums_record(c) for c in SMALL_GRID], 3)
    assert "(7, None, None, None, 9, None) pins figure 1 to 2" in found


# --- dp: what one person loses through a validation, against what the ledger charges for it ---------------

RUNS = 20_000
MIN_HITS = 200
TOLERANCE = 0.2
CROSSINGS = 6  # one person, twice in each of the three windows a 43-minute validation touches


def counted_cell(config: PrivacyConfig, person: int, seed: int, *, as_window: bool = False) -> tuple[np.ndarray, float]:
    """The published in/pedestrian count of the device's table of a validation (with 5 other crossings and
    ``person`` more), RUNS times, and what the ledger charged for that table."""
    ledger = BudgetLedger(Path(":memory:"))
    protector = Protector(config, ledger, random.Random(seed))
    values = []
    day0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for run in range(RUNS):
        start = day0 + timedelta(days=run)
        counts = {KEYS[0]: 5 + person}
        if as_window:
            window = protector.protect(start, LINES, {("door", *CELL_ORDER[0]): 5 + person})
            values.append(window.cells[0].count)
            continue
        fields = build_record(LINES, start, 43, counts, {}, protector.protect)
        values.append(fields["cells"][0]["counted"])
    charge = ledger.spent(day0.date().isoformat()) / (1 if as_window else 2)
    ledger.close()
    return np.array(values, dtype=np.float64), charge


def loss(without: np.ndarray, with_: np.ndarray) -> float:
    """Largest |log-ratio| of P(count >= t) and P(count <= t) under the two inputs, over thresholds t seen
    at least MIN_HITS times under both."""
    worst = 0.0
    for t in np.unique(np.concatenate([without, with_])):
        for a, b in (((without >= t).sum(), (with_ >= t).sum()), ((without <= t).sum(), (with_ <= t).sum())):
            if min(a, b) >= MIN_HITS:
                worst = max(worst, abs(float(np.log(b / a))))
    return worst


def test_a_person_loses_through_a_validation_no_more_than_it_is_charged() -> None:
    config = PrivacyConfig()
    without, charge = counted_cell(config, 0, seed=21)
    with_, _ = counted_cell(config, CROSSINGS, seed=22)
    measured = loss(without, with_)
    assert charge == 3 * config.window_charge  # three windows touched: 12:00, 12:15, 12:30
    assert measured <= charge + TOLERANCE, (measured, charge)
    assert measured > 2.0  # the measurement sees the person (theory: 6 x 0.5 = 3)


def test_control_the_same_counts_charged_as_one_window_lose_more_than_that() -> None:
    """Control: the counts protected as a window (as validations were: one window's charge, no cap on what
    one person adds) lose 6 x 0.35 against a charge of 1; the measurement must see it."""
    config = PrivacyConfig()
    without, charge = counted_cell(config, 0, seed=31, as_window=True)
    with_, _ = counted_cell(config, CROSSINGS, seed=32, as_window=True)
    assert charge == config.window_charge
    assert loss(without, with_) > charge + TOLERANCE


def test_under_dp_threshold_the_records_error_comes_from_the_noisy_counts() -> None:
    """Under dp-threshold the record's one figure must be post-processing of noisy counts: from the true
    ones it would carry them out without noise. Here device and technician agree exactly, so an error
    computed from true counts would be 0 every time."""
    config = PrivacyConfig(policy=PolicyKind.DP_THRESHOLD, k=5)
    protector = Protector(config, BudgetLedger(Path(":memory:")), random.Random(5))
    same = {KEYS[0]: 30, KEYS[2]: 25}
    errors = set()
    for day in range(40):
        start = WINDOW + timedelta(days=day)
        errors.add(build_record(LINES, start, 10, same, same, protector.protect)["error"])
    assert len(errors) > 3, errors
