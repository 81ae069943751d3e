"""Threshold suppression against someone who knows the rule: the enumeration attack of issue 13.

The attacker lists every table the device would publish exactly as observed (same numbers, same nulls). If,
within such a group, a hidden count takes one value only, the publication gives it away. The tests group
every table with cells 0..16 by what the device's own code publishes for it, then check each group; they do
not look at how the rule is written.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import CELL_ORDER, N_CELLS, Protector, release_cells
from hub_protocol.flows import FlowWindow, PolicyKind

START = datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
TOP = 16
GRID = np.array(list(itertools.product(range(TOP + 1), repeat=N_CELLS)), dtype=np.int64)
"""Every table (in/pedestrian, in/cyclist, out/pedestrian, out/cyclist) with counts 0..16."""
K_FIELD = PrivacyConfig.model_fields["k"]
K_RANGE = range(
    next(m.ge for m in K_FIELD.metadata if hasattr(m, "ge")),
    next(m.le for m in K_FIELD.metadata if hasattr(m, "le")) + 1,
)
Published = tuple[int | None, ...]


def pinned(tables: npt.NDArray[np.int64], outputs: Sequence[Published], k: int) -> list[str]:
    """Every (publication, hidden cell) whose tables give that cell one value only, while that value is in
    1..k-1: what an informed outsider recovers exactly. ``outputs[i]`` is what table ``i`` publishes, its
    first four entries the cells (None = hidden)."""
    keys: dict[Published, int] = {}
    group = np.array([keys.setdefault(output, len(keys)) for output in outputs])
    return pinned_groups(tables, group, list(keys), k)


def pinned_groups(
    tables: npt.NDArray[np.int64], group: npt.NDArray[np.int64], outputs: Sequence[Published], k: int
) -> list[str]:
    """The same, with the tables already grouped: ``group[i]`` indexes ``outputs``."""
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(len(outputs)))
    low = np.minimum.reduceat(tables[order], starts, axis=0)
    high = np.maximum.reduceat(tables[order], starts, axis=0)
    return [
        f"k={k}: {output} pins cell {cell} to {low[g, cell]}"
        for g, output in enumerate(outputs)
        for cell in range(N_CELLS)
        if output[cell] is None and low[g, cell] == high[g, cell] and 0 < low[g, cell] < k
    ]


def device_output(k: int) -> Callable[[tuple[int, ...]], Published]:
    """What the device publishes for one line (cells, then totals), through the Protector itself."""
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=k))

    def publish(cells: tuple[int, ...]) -> Published:
        counts = {("door", d, c): v for (d, c), v in zip(CELL_ORDER, cells, strict=True)}
        window = protector.protect(START, ["door"], counts)
        return (*(c.count for c in window.cells), *(t.count for t in window.totals))

    return publish


@pytest.mark.parametrize("k", [3, 5])
def test_no_publication_of_the_device_pins_a_hidden_count(k: int) -> None:
    publish = device_output(k)
    outputs = [publish(tuple(int(v) for v in row)) for row in GRID]
    assert pinned(GRID, outputs, k) == []
    # And not just "two values": a null stands for every value 0..k-1 (the group is all their combinations).
    assert publish((0, 0, 1, 1)) == publish((k - 1, 0, k - 1, 0)) == (None,) * N_CELLS


def test_every_k_the_config_offers_keeps_every_hidden_count_ambiguous() -> None:
    """The same attack for each allowed k, on the array function the Protector calls (all 83,521 tables)."""
    assert K_RANGE.start == 2 and K_RANGE.stop > 50  # as the config allows
    for k in K_RANGE:
        released = release_cells(GRID, PolicyKind.THRESHOLD, k, None, None)
        assert released.margins is None  # totals would let sums pin hidden cells down
        published = np.where(released.hidden, -1, released.values)
        _, first, group = np.unique(published @ (TOP + 2) ** np.arange(N_CELLS), return_index=True, return_inverse=True)
        outputs = [tuple(None if v < 0 else v for v in published[i].tolist()) for i in first]
        assert pinned_groups(GRID, group.reshape(-1), outputs, k) == [], k


def test_the_attack_finds_what_the_issue_reported_in_the_old_rule() -> None:
    """Control: the check must catch a rule that can be undone. Hiding 1..k-1 but showing zeros and the line
    total (as before issue 13) lets (0, 0, 1, 1) with k=3 be recovered exactly."""

    def old_style(cells: tuple[int, ...], k: int = 3) -> Published:
        total = sum(cells)
        return (*(None if 0 < v < k else v for v in cells), None if 0 < total < k else total)

    outputs = [old_style(tuple(int(v) for v in row)) for row in GRID]
    found = pinned(GRID, outputs, 3)
    assert "k=3: (0, 0, None, None, None) pins cell 2 to 1" in found


def test_counts_from_k_up_are_published_exactly() -> None:
    publish = device_output(5)
    assert publish((5, 0, 16, 4)) == (5, None, 16, None)
    assert publish((12, 7, 9, 30)) == (12, 7, 9, 30)


def test_threshold_windows_validate_against_the_contract() -> None:
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=5))
    counts = {("door", d, c): v for (d, c), v in zip(CELL_ORDER, (3, 0, 12, 7), strict=True)}
    protected = protector.protect(START, ["door", "gate"], counts, capped_tracks=2)
    window = FlowWindow(
        device="dev-a",
        boot="boot-1",
        seq=1,
        window_start=START,
        window_seconds=900,
        cells=protected.cells,
        totals=protected.totals,
        quality={"observed_fraction": 1, "mean_fps": 10, "dropped_frames": 0, "capped_tracks": None},
        policy=protected.policy,
    )
    assert [c.count for c in window.cells] == [None, None, 12, 7, None, None, None, None]
    assert window.totals == [] and protected.capped_tracks is None  # 2 capped objects: below k, hidden too


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
