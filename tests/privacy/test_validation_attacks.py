"""Field validation records against an informed outsider: they are public (the open API, /sensors) and are a
second publication of the same crossings as the flow windows, so they must not undo the windows' protection.

- Threshold: every table a record could have been built from is listed and grouped by what the record
  publishes, as in test_suppression.py; no hidden figure may be pinned to one value.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import CELL_ORDER, Protector
from edge_agent.setup.validation import build_record
from hub_protocol.accuracy import ValidationRecord
from hub_protocol.flows import PolicyKind

LINES = ["door"]
START = datetime(2026, 5, 4, 12, 3, tzinfo=UTC)
TOP = 9
KEYS = [("door", d.value, c.value) for d, c in CELL_ORDER]
Published = tuple[int | None, ...]


def record_output(k: int) -> Callable[[tuple[int, ...]], Published]:
    """What a validation record publishes about the device's counts (cells, then the per-direction sums),
    through the device's own code; the technician's tally is held at zero."""
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=k))

    def publish(cells: tuple[int, ...]) -> Published:
        counted = dict(zip(KEYS, cells, strict=True))
        fields = build_record(LINES, START, 30, counted, {}, protector.protect)
        record = ValidationRecord.model_validate({**fields, "device": "dev-a", "boot": "b", "seq": 1})
        by_cell = {(c.direction.value, c.object_class.value): c.counted for c in record.cells}
        by_line = {v.direction.value: v.counted for v in record.lines}
        return (*(by_cell[d.value, c.value] for d, c in CELL_ORDER), by_line["in"], by_line["out"])

    return publish


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


@pytest.mark.parametrize("k", [3, 5])
def test_a_threshold_record_pins_no_hidden_count(k: int) -> None:
    publish = record_output(k)
    outputs = [publish(cells) for cells in GRID]
    assert pinned([with_sums(c) for c in GRID], outputs, k) == []
    # Still useful: the sums that reach k are published exactly.
    assert publish((7, 2, 1, 0))[4:] == (9, None)


def test_control_cells_next_to_their_sums_are_undone_by_subtraction() -> None:
    """Control: the record as it was (each cell on its own value, and the per-direction sums next to them):
    (7, 2) with k=3 published 7, null and the sum 9, so the null cyclist count was 2."""
    protector = Protector(PrivacyConfig(policy=PolicyKind.THRESHOLD, k=3))

    def old_record(cells: tuple[int, ...]) -> Published:
        window = protector.protect(START, LINES, dict(zip(KEYS, cells, strict=True)))  # type: ignore[arg-type]
        sums = [cells[0] + cells[1], cells[2] + cells[3]]
        return (*(c.count for c in window.cells), *(s if s >= 3 else None for s in sums))

    found = pinned([with_sums(c) for c in GRID], [old_record(c) for c in GRID], 3)
    assert "(7, None, None, None, 9, None) pins figure 1 to 2" in found
