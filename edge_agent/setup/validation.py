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
from typing import Any, Protocol

from edge_agent.events import EventSink
from edge_agent.privacy.protection import CellKey as ProtectKey
from edge_agent.privacy.protection import ProtectedWindow
from edge_agent.setup.tally import CellKey, Tally, since
from hub_protocol.accuracy import MAX_VALIDATION_MINUTES, ValidationLine, count_error, overall_error
from hub_protocol.atomic import write_atomic
from hub_protocol.flows import Direction, ObjectClass, PolicyKind
from hub_protocol.topics import Channel

KEEP = 50
RECORDS_FILE = "validations.json"


class Protect(Protocol):
    """The reporter's ``protect_counts`` (or a Protector's ``protect``): counts of ``period`` from ``at``,
    protected by the flow windows' policy."""

    def __call__(
        self, at: datetime, lines: Sequence[str], counts: Mapping[ProtectKey, int], *, period: timedelta | None = None
    ) -> ProtectedWindow: ...


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
    # the place of a flow window (or of each other). Each table costs the epsilon of every window the
    # period touches: the crossings a person adds to it are not capped per object as a window's are.
    period = timedelta(minutes=minutes + 1)  # the period began within the minute of ``started_at``
    dev = protect(started_at + timedelta(microseconds=1), lines, typed(counted), period=period)
    tech = protect(started_at + timedelta(microseconds=2), lines, typed(tallied), period=period)
    if not dev.totals and dev.cells:
        assert dev.policy.k is not None
        if dev.policy.kind is PolicyKind.DP_THRESHOLD:
            # The error from the noisy cells (post-processing); the true counts would undo the noise.
            return _suppressed_record(lines, started_at, minutes, _shown(dev), _shown(tech), dev, dev.policy.k)
        return _suppressed_record(lines, started_at, minutes, typed(counted), typed(tallied), dev, dev.policy.k)
    tallied_cells = {(c.line, c.direction, c.object_class): c.count for c in tech.cells}
    cells = [
        {
            "line": c.line,
            "direction": c.direction.value,
            "object_class": c.object_class.value,
            "counted": c.count,
            "tallied": tallied_cells.get((c.line, c.direction, c.object_class)),
        }
        for c in dev.cells
    ]

    def per_direction(window: ProtectedWindow) -> dict[tuple[str, Direction], int | None]:
        return {
            (t.line, t.direction): t.count for t in window.totals if t.direction is not None and t.object_class is None
        }

    dev_lines, tech_lines = per_direction(dev), per_direction(tech)
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


def _shown(window: ProtectedWindow) -> dict[ProtectKey, int]:
    return {(c.line, c.direction, c.object_class): c.count for c in window.cells if c.count is not None}


SUPPRESSED_ERROR_STEP = 0.05
"""Under suppression the one figure a record publishes, its overall error, is rounded to this..."""
SUPPRESSED_ERROR_FLOOR = 20
"""...and published only when the cells it is computed from hold at least this many tallied crossings: a
ratio of small counts (1/7, 2/9) would give the counts themselves away."""


def _suppressed_record(
    lines: Sequence[str],
    started_at: datetime,
    minutes: float,
    counted: Mapping[ProtectKey, int],
    tallied: Mapping[ProtectKey, int],
    dev: ProtectedWindow,
    k: int,
) -> dict[str, Any]:
    """Under threshold suppression a record publishes no count at all, only its overall error, rounded.

    Suppression hides a small count by publishing nothing that depends on it except "below k". A record is
    a second publication of the flow windows' crossings over other minutes: any count it publishes (a
    cell, a sum per direction) can be set against the windows' published cells of the same minutes, and the
    difference gives their nulls away (tests/privacy/test_validation_attacks.py enumerates this). So the
    error is computed from the cells that both the device and the technician counted at least k times
    (cells a window would have published), each chosen on its own values like a window's; a small count
    never enters it, and whether it is published depends on those cells alone."""
    keys = [(line, d, c) for line in lines for d in (Direction.IN, Direction.OUT) for c in ObjectClass]
    shown = [key for key in keys if counted.get(key, 0) >= k and tallied.get(key, 0) >= k]
    total = sum(tallied[key] for key in shown)
    error = None
    if total >= SUPPRESSED_ERROR_FLOOR:
        ratio = sum(abs(counted[key] - tallied[key]) for key in shown) / total
        error = round(round(ratio / SUPPRESSED_ERROR_STEP) * SUPPRESSED_ERROR_STEP, 4)
    return {
        "started_at": started_at.isoformat(),
        "minutes": round(minutes, 2),
        "cells": [
            {
                "line": c.line,
                "direction": c.direction.value,
                "object_class": c.object_class.value,
                "counted": None,
                "tallied": None,
            }
            for c in dev.cells
        ],
        "lines": [
            ValidationLine(line=line, direction=d, counted=None, tallied=None, error=None).model_dump(mode="json")
            for line in lines
            for d in (Direction.IN, Direction.OUT)
        ],
        "error": error,
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
        write_atomic(self.path, json.dumps(records).encode("utf-8"), mode=0o600)
