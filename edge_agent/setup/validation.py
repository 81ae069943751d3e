"""Field validation by tally: the technician taps what they see while the agent counts the same minutes.

The result is kept on the device (``<state_dir>/setup/validations.json``, the latest ``KEEP`` records) and
sent to the hub as a ``validation`` event through the outbox. Only totals of the whole period leave the
device, protected like a flow window (``FlowReporter.protect_counts``); the count errors are computed from
the published figures, so whoever reads the record can check them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.deploy.config_update import write_atomically
from edge_agent.events import EventSink
from edge_agent.privacy.protection import CellKey as ProtectKey
from edge_agent.privacy.protection import ProtectedWindow
from edge_agent.setup.tally import CellKey, Tally, since
from hub_protocol.accuracy import MAX_VALIDATION_MINUTES, ValidationLine, count_error, overall_error
from hub_protocol.flows import Direction, ObjectClass
from hub_protocol.topics import Channel

KEEP = 50
RECORDS_FILE = "validations.json"

Protect = Callable[[datetime, Sequence[str], Mapping[ProtectKey, int]], ProtectedWindow]


class ValidationRefused(ValueError):
    """A validation that cannot start or finish as asked; the message says why, for the page."""


@dataclass(frozen=True)
class Run:
    started_at: datetime
    started_mono: float
    planned_minutes: float
    baseline: dict[CellKey, int]


def build_record(
    lines: Sequence[str],
    started_at: datetime,
    minutes: float,
    counted: Mapping[CellKey, int],
    tallied: Mapping[CellKey, int],
    protect: Protect,
) -> dict[str, Any]:
    """The fields of a ``ValidationRecord`` (without its header): both tables protected like a window."""

    def typed(counts: Mapping[CellKey, int]) -> dict[ProtectKey, int]:
        return {(line, Direction(d), ObjectClass(c)): n for (line, d, c), n in counts.items() if line in lines}

    # The dp budget ledger pays each start time once, and a flow window's start is aligned to the clock: the
    # two tables are paid under their own keys, a microsecond after the period's start, so they never take
    # the place of a flow window (or of each other). Each table costs one window's epsilon.
    dev = protect(started_at + timedelta(microseconds=1), lines, typed(counted))
    tech = protect(started_at + timedelta(microseconds=2), lines, typed(tallied))
    tallied_cells = {(c.line, c.direction, c.object_class): c.count for c in tech.cells}
    # Under suppression the record publishes the sums per line and direction (below), each on its own
    # value, and not the cells they add up: a published sum next to its cells, one of them null, gives the
    # null away by subtraction (tests/privacy/test_validation_attacks.py).
    suppressed = not dev.totals
    cells = [
        {
            "line": c.line,
            "direction": c.direction.value,
            "object_class": c.object_class.value,
            "counted": None if suppressed else c.count,
            "tallied": None if suppressed else tallied_cells.get((c.line, c.direction, c.object_class)),
        }
        for c in dev.cells
    ]

    def per_direction(
        window: ProtectedWindow, counts: Mapping[CellKey, int], offset: int
    ) -> dict[tuple[str, Direction], int | None]:
        totals = {
            (t.line, t.direction): t.count for t in window.totals if t.direction is not None and t.object_class is None
        }
        if totals or not window.cells:
            return totals
        # Suppression publishes no totals (they would undo it): the line's sums over the classes are a table
        # of their own, each sum published only if it is at least k, like any cell (the class is a placeholder).
        sums: dict[ProtectKey, int] = {}
        for (line, d, _), n in typed(counts).items():
            key = (line, d, ObjectClass.PEDESTRIAN)
            sums[key] = sums.get(key, 0) + n
        table = protect(started_at + timedelta(microseconds=offset), lines, sums)
        return {(c.line, c.direction): c.count for c in table.cells if c.object_class is ObjectClass.PEDESTRIAN}

    dev_lines, tech_lines = per_direction(dev, counted, 3), per_direction(tech, tallied, 4)
    summary = [
        ValidationLine(
            line=line,
            direction=direction,
            counted=dev_lines.get((line, direction)),
            tallied=tech_lines.get((line, direction)),
            error=count_error(dev_lines.get((line, direction)), tech_lines.get((line, direction))),
        )
        for line in lines
        for direction in (Direction.IN, Direction.OUT)
    ]
    return {
        "started_at": started_at.isoformat(),
        "minutes": round(minutes, 2),
        "cells": cells,
        "lines": [s.model_dump(mode="json") for s in summary],
        "error": overall_error(summary),
        "policy": dev.policy.model_dump(mode="json"),
    }


class Validator:
    """One validation at a time: ``start(minutes)``, then ``finish(tallies)`` (or ``cancel()``)."""

    def __init__(
        self,
        tally: Tally,
        lines: Callable[[], Sequence[str]],
        sink: EventSink,
        protect: Protect,
        folder: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tally = tally
        self.lines = lines
        self.sink = sink
        self.protect = protect
        self.path = folder / RECORDS_FILE
        self._clock = clock
        self._run: Run | None = None
        self._lock = threading.Lock()

    def start(self, minutes: float) -> Run:
        if not 0 < minutes <= MAX_VALIDATION_MINUTES:
            raise ValidationRefused(f"minutes must be more than 0 and at most {MAX_VALIDATION_MINUTES:g}")
        with self._lock:
            if self._run is not None:
                raise ValidationRefused("a validation is already running: finish or cancel it first")
            # To the minute: the start of the period is all the record says about time.
            started = datetime.now(UTC).replace(second=0, microsecond=0)
            self._run = Run(started, self._clock(), minutes, self.tally.snapshot())
            return self._run

    def status(self) -> dict[str, Any] | None:
        run = self._run
        if run is None:
            return None
        elapsed = self._clock() - run.started_mono
        return {"planned_minutes": run.planned_minutes, "elapsed_s": round(elapsed, 1)}

    def cancel(self) -> None:
        with self._lock:
            self._run = None

    def finish(self, tallied: Mapping[CellKey, int]) -> dict[str, Any]:
        """Close the running validation with the technician's tallies; store it, emit it, return its fields."""
        with self._lock:
            run = self._run
            if run is None:
                raise ValidationRefused("no validation is running")
            lines = list(self.lines())
            unknown = sorted({line for line, _, _ in tallied} - set(lines))
            if unknown:
                raise ValidationRefused(f"tallies name lines this device does not count: {', '.join(unknown)}")
            counted = since(self.tally.snapshot(), run.baseline)
            minutes = min(max((self._clock() - run.started_mono) / 60, 0.01), MAX_VALIDATION_MINUTES)
            fields = build_record(lines, run.started_at, minutes, counted, tallied, self.protect)
            seq = self.sink.emit(Channel.VALIDATION, fields)
            self._run = None
        self._keep({**fields, "seq": seq})
        return fields

    def records(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return data if isinstance(data, list) else []

    def _keep(self, record: dict[str, Any]) -> None:
        records = [*self.records(), record][-KEEP:]
        write_atomically(self.path, json.dumps(records).encode("utf-8"), mode=0o600)
