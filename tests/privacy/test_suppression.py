"""Threshold suppression: nothing small is shown, and nothing suppressed can be recomputed from what is."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import CELL_ORDER, MARGIN_ORDER, N_CELLS, Protector, line_items, suppress_line
from hub_protocol.flows import Direction, FlowWindow, ObjectClass, PolicyKind

START = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
PERTURBATIONS = [d for d in itertools.product((-1, 0, 1), repeat=N_CELLS) if any(d)]


def alternative_exists(cells: tuple[int, ...], hidden: tuple[bool, ...], item: int) -> bool:
    """Independent of the implementation's linear algebra: is there another table that publishes exactly the
    same numbers but differs in ``item``? (Every integer kernel direction of these sums has entries in -1..1.)"""
    items = line_items(cells)
    for delta in PERTURBATIONS:
        other = line_items(tuple(c + d for c, d in zip(cells, delta, strict=True)))
        same_published = all(hidden[i] or other[i] == items[i] for i in range(len(items)))
        if same_published and other[item] != items[item]:
            return True
    return False


cell_values = st.integers(min_value=0, max_value=40)
tables = st.tuples(cell_values, cell_values, cell_values, cell_values)


@settings(max_examples=400, deadline=None)
@given(cells=tables, k=st.integers(min_value=2, max_value=12))
def test_no_small_count_published_and_none_recomputable(cells: tuple[int, ...], k: int) -> None:
    hidden = suppress_line(cells, k)
    items = line_items(cells)
    for value, is_hidden in zip(items, hidden, strict=True):
        assert is_hidden or not 0 < value < k, f"published {value} below k={k}"
    for i, is_hidden in enumerate(hidden):
        if is_hidden:
            assert alternative_exists(cells, hidden, i), f"item {i} of {items} follows from {hidden}"


GRID = 24  # every table with cells 0..24: wide enough that an unbounded count can reach any k tested
_CELLS = np.stack(np.meshgrid(*[np.arange(GRID + 1)] * N_CELLS, indexing="ij"), -1).reshape(-1, N_CELLS)
_IN, _OUT = _CELLS[:, 0] + _CELLS[:, 1], _CELLS[:, 2] + _CELLS[:, 3]
_PED, _CYC = _CELLS[:, 0] + _CELLS[:, 2], _CELLS[:, 1] + _CELLS[:, 3]
ALL_TABLES = np.concatenate([_CELLS, np.stack([_IN, _OUT, _PED, _CYC, _IN + _OUT], axis=1)], axis=1)
"""Each row: four cells and five margins, in the device's order."""


@settings(max_examples=300, deadline=None)
@given(cells=st.tuples(*[st.integers(min_value=0, max_value=12)] * N_CELLS), k=st.integers(min_value=2, max_value=10))
def test_published_counts_never_prove_a_suppressed_count_small(cells: tuple[int, ...], k: int) -> None:
    """Counts cannot be negative, which an attacker can use too: among all tables that publish the same
    numbers, some must give each suppressed small count a value of at least k (so it might not be small)."""
    items = line_items(cells)
    hidden = suppress_line(cells, k)
    consistent = np.ones(len(ALL_TABLES), dtype=bool)
    for i, is_hidden in enumerate(hidden):
        if not is_hidden:
            consistent &= ALL_TABLES[:, i] == items[i]
    candidates = ALL_TABLES[consistent]
    for i, is_hidden in enumerate(hidden):
        if is_hidden and 0 < items[i] < k:
            assert candidates[:, i].max() >= k, f"item {i} of {items} is provably below k={k}"


def test_every_small_count_is_suppressed_even_margins() -> None:
    # in-cyclist 2 is small, and so is the cyclist margin (2): both must go, plus complements.
    cells = (30, 2, 25, 0)
    hidden = suppress_line(cells, 5)
    assert hidden[1] and hidden[N_CELLS + MARGIN_ORDER.index((None, ObjectClass.CYCLIST))]
    # The direction totals and line total stay published: the sum a data user needs most survives.
    published = {MARGIN_ORDER[i - N_CELLS]: line_items(cells)[i] for i in range(N_CELLS, 9) if not hidden[i]}
    assert published == {(Direction.IN, None): 32, (Direction.OUT, None): 25, (None, None): 57}


def test_nothing_suppressed_without_small_counts() -> None:
    assert suppress_line((0, 0, 12, 7), 5) == (False,) * 9
    assert suppress_line((50, 9, 61, 5), 5) == (False,) * 9


def test_k_bounds_what_counts_as_small() -> None:
    assert not any(suppress_line((5, 5, 5, 5), 5))
    assert any(suppress_line((4, 5, 5, 5), 5))


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(tables, min_size=1, max_size=3),
    k=st.integers(min_value=2, max_value=10),
)
def test_protected_window_validates_against_the_contract(lines: list[tuple[int, ...]], k: int) -> None:
    names = [f"line-{i}" for i in range(len(lines))]
    counts = {
        (name, d, c): value
        for name, cells in zip(names, lines, strict=True)
        for (d, c), value in zip(CELL_ORDER, cells, strict=True)
    }
    protected = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=k)).protect(START, names, counts)
    window = FlowWindow(
        device="dev-a",
        boot="boot-1",
        seq=1,
        window_start=START,
        window_seconds=900,
        cells=protected.cells,
        totals=protected.totals,
        quality={"observed_fraction": 1, "mean_fps": 10, "dropped_frames": 0},
        policy=protected.policy,
    )
    assert window.policy.k == k
    assert len(window.cells) == 4 * len(lines) and len(window.totals) == 5 * len(lines)
    for cell in window.cells:
        assert cell.count is None or cell.count == counts[(cell.line, cell.direction, cell.object_class)]


def test_contract_refuses_a_small_published_count() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        FlowWindow(
            device="dev-a",
            boot="boot-1",
            seq=1,
            window_start=START,
            window_seconds=900,
            cells=[{"line": "door", "direction": "in", "object_class": "pedestrian", "count": 3}],
            quality={"observed_fraction": 1, "mean_fps": 10, "dropped_frames": 0},
            policy={"kind": "threshold", "k": 5},
        )


def test_contract_refuses_totals_that_disagree_with_cells() -> None:
    cells = [
        {"line": "door", "direction": d, "object_class": c, "count": 10}
        for d in ("in", "out")
        for c in ("pedestrian", "cyclist")
    ]
    with pytest.raises(ValueError, match="disagrees"):
        FlowWindow(
            device="dev-a",
            boot="boot-1",
            seq=1,
            window_start=START,
            window_seconds=900,
            cells=cells,
            totals=[{"line": "door", "count": 41}],
            quality={"observed_fraction": 1, "mean_fps": 10, "dropped_frames": 0},
            policy={"kind": "none"},
        )


def test_the_recomputation_check_catches_primary_suppression_alone() -> None:
    # Control for the property test: hiding only the small counts leaves them recomputable from the margins.
    cells = (30, 2, 25, 0)
    primary_only = tuple(0 < v < 5 for v in line_items(cells))
    assert not alternative_exists(cells, primary_only, 1)
    assert alternative_exists(cells, suppress_line(cells, 5), 1)


def test_the_table_grid_uses_the_device_order() -> None:
    row = 7 * 25**3 + 3 * 25**2 + 11 * 25 + 2
    assert tuple(int(v) for v in ALL_TABLES[row]) == line_items((7, 3, 11, 2))
