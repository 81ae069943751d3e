"""Small-count protection applied on the device before a window is published.

Per line, a window is a 2 x 2 table (direction x class) published with its margins: the total per direction,
per class and for the line. Lines are never summed together (one person may cross several lines).

- ``threshold``: a count (cell or margin) in 1..k-1 is suppressed. Complementary suppression then hides
  more counts until no suppressed count can be recomputed from the published ones: a count is recomputable
  exactly when its unit vector lies in the row space of the table's sum constraints restricted to the
  suppressed counts (linear algebra on a 9-unknown system, cheap).
- ``dp``: two-sided geometric (discrete Laplace) noise on each cell, P(Z=z) = (1-a)/(1+a) * a^|z| with
  a = exp(-epsilon). One crossing changes one cell by one, so a window is epsilon-differentially private
  for any single crossing. Margins are sums of the noisy cells (post-processing, no extra privacy cost).
  Published counts are clipped at zero. A daily budget, kept in SQLite on the device, caps the epsilon spent
  per UTC day; a window the budget cannot pay for is published with every count withheld.
- ``dp-threshold``: noise first, then threshold suppression of the noisy table (no small count is shown,
  even a noisy one).
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.storage import StorageWatch, copy_readable, open_database, rollback
from hub_protocol.flows import (
    DP_KINDS,
    THRESHOLD_KINDS,
    Direction,
    FlowCell,
    FlowTotal,
    ObjectClass,
    PrivacyPolicy,
)

CellKey = tuple[str, Direction, ObjectClass]

DIRECTIONS = (Direction.IN, Direction.OUT)
CLASSES = (ObjectClass.PEDESTRIAN, ObjectClass.CYCLIST)

# The nine counts of one line: four cells, then the margins. Each margin lists the cells it sums.
CELL_ORDER: tuple[tuple[Direction, ObjectClass], ...] = tuple((d, c) for d in DIRECTIONS for c in CLASSES)
MARGIN_ORDER: tuple[tuple[Direction | None, ObjectClass | None], ...] = (
    (Direction.IN, None),
    (Direction.OUT, None),
    (None, ObjectClass.PEDESTRIAN),
    (None, ObjectClass.CYCLIST),
    (None, None),
)
N_CELLS = len(CELL_ORDER)
N_ITEMS = N_CELLS + len(MARGIN_ORDER)


def _constraints() -> npt.NDArray[np.float64]:
    """One row per published sum: margin - (its cells) = 0, plus the grand total written both ways."""
    rows = []
    for m, (direction, cls) in enumerate(MARGIN_ORDER):
        row = np.zeros(N_ITEMS)
        row[N_CELLS + m] = -1.0
        for i, (d, c) in enumerate(CELL_ORDER):
            if direction in (None, d) and cls in (None, c):
                row[i] = 1.0
        rows.append(row)
    total = N_CELLS + MARGIN_ORDER.index((None, None))
    for first, second in ((0, 1), (2, 3)):  # total = in + out = pedestrian + cyclist
        row = np.zeros(N_ITEMS)
        row[total] = -1.0
        row[N_CELLS + first] = row[N_CELLS + second] = 1.0
        rows.append(row)
    return np.array(rows)


CONSTRAINTS = _constraints()


def line_items(cells: Sequence[int]) -> tuple[int, ...]:
    """The four cells of a line (CELL_ORDER) followed by its five margins (MARGIN_ORDER)."""
    values = list(cells)
    for direction, cls in MARGIN_ORDER:
        values.append(
            sum(v for v, (d, c) in zip(cells, CELL_ORDER, strict=True) if direction in (None, d) and cls in (None, c))
        )
    return tuple(values)


def recomputable(suppressed: Sequence[bool], constraints: npt.NDArray[np.float64] = CONSTRAINTS) -> list[int]:
    """Indices of suppressed items whose value follows exactly from the published ones and the sums."""
    unknown = [i for i, s in enumerate(suppressed) if s]
    if not unknown:
        return []
    sub = constraints[:, unknown]
    base = np.linalg.matrix_rank(sub)
    found = []
    for pos, item in enumerate(unknown):
        unit = np.zeros((1, len(unknown)))
        unit[0, pos] = 1.0
        if np.linalg.matrix_rank(np.vstack([sub, unit])) == base:
            found.append(item)
    return found


def suppress_line(cells: tuple[int, ...], k: int) -> tuple[bool, ...]:
    """Which of the nine counts of a line (``line_items`` order) to suppress so that none in 1..k-1 shows and
    none suppressed can be recomputed from the published ones."""
    return suppress_items(line_items(cells), k)


def suppress_items(items: tuple[int, ...], k: int) -> tuple[bool, ...]:
    """Primary suppression of 1..k-1, then complements chosen greedily (cells before margins, small first)
    until nothing suppressed is recomputable. Ends at the latest with everything suppressed, which is safe."""
    # The outcome depends only on which counts are small and on their order, so cache on that pattern.
    ranks = {v: r for r, v in enumerate(sorted(set(items)))}
    return _suppress_pattern(tuple((0 < v < k, ranks[v]) for v in items))


@lru_cache(maxsize=65_536)
def _suppress_pattern(pattern: tuple[tuple[bool, int], ...]) -> tuple[bool, ...]:
    suppressed = [small for small, _ in pattern]
    while True:
        exposed = recomputable(suppressed)
        if not exposed:
            return tuple(suppressed)
        target = exposed[0]
        # Never empty: a recomputable count shares a sum with at least one published count.
        candidates = [
            i
            for i in range(N_ITEMS)
            if not suppressed[i] and any(CONSTRAINTS[r, target] and CONSTRAINTS[r, i] for r in range(len(CONSTRAINTS)))
        ]
        suppressed[min(candidates, key=lambda i: (i >= N_CELLS, pattern[i][1], i))] = True


# --- differential privacy -------------------------------------------------------------------------------


def geometric_pmf(z: int, epsilon: float) -> float:
    """Documented distribution of the noise: P(Z = z) = (1 - a) / (1 + a) * a^|z|, a = exp(-epsilon)."""
    a = math.exp(-epsilon)
    return (1 - a) / (1 + a) * a ** abs(z)


def _one_sided(rng: random.Random, log_a: float) -> int:
    # Inverse CDF of P(G = g) = (1 - a) a^g on {0, 1, ...}; 1 - random() lies in (0, 1].
    return math.floor(math.log(1.0 - rng.random()) / log_a)


def geometric_noise(epsilon: float, rng: random.Random) -> int:
    """One draw of two-sided geometric noise: the difference of two one-sided geometric draws."""
    log_a = -epsilon
    return _one_sided(rng, log_a) - _one_sided(rng, log_a)


def geometric_noise_array(
    epsilon: float, size: int | tuple[int, ...], rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """The same distribution, vectorised (numpy's geometric counts trials, so both draws are shifted by one)."""
    p = 1.0 - math.exp(-epsilon)
    noise: npt.NDArray[np.int64] = rng.geometric(p, size) - rng.geometric(p, size)
    return noise


@dataclass(frozen=True)
class Spend:
    granted: bool
    spent_today: float
    reason: str = ""


def _create_ledger(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS dp_spend ("
        " window_start TEXT PRIMARY KEY, day TEXT NOT NULL, epsilon REAL NOT NULL, at TEXT NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS dp_spend_day ON dp_spend(day)")
    conn.execute("CREATE TABLE IF NOT EXISTS dp_blocked (day TEXT PRIMARY KEY)")


class BudgetLedger:
    """Epsilon spent per UTC day, in SQLite so a restart cannot reset it. Each window is paid at most once."""

    def __init__(self, path: Path, watch: StorageWatch | None = None) -> None:
        self._lock = threading.Lock()
        self.watch = watch or StorageWatch()
        self._db, damage = open_database(path, _create_ledger)
        if damage is not None:
            # Rows on damaged pages are gone unnoticed, so what today and yesterday spent is unknown: spend
            # nothing more on them rather than twice. Older accounts are kept as far as they can be read.
            copy_readable(self._db, damage.moved_to, ["dp_spend", "dp_blocked"])
            today = datetime.now(UTC).date()
            days = [today.isoformat(), date.fromordinal(today.toordinal() - 1).isoformat()]
            self._db.executemany("INSERT OR IGNORE INTO dp_blocked (day) VALUES (?)", [(d,) for d in days])

    def spent(self, day: str) -> float:
        row = self._db.execute("SELECT COALESCE(SUM(epsilon), 0) FROM dp_spend WHERE day = ?", (day,)).fetchone()
        return float(row[0])

    def spend(self, window_start: datetime, epsilon: float, daily_budget: float) -> Spend:
        """Pay ``epsilon`` for the window, or refuse when the day's budget would be exceeded or it was paid."""
        start = window_start.astimezone(UTC)
        day = start.date().isoformat()
        key = start.isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                spent = self.spent(day)
                if self._db.execute("SELECT 1 FROM dp_blocked WHERE day = ?", (day,)).fetchone():
                    self._db.execute("COMMIT")
                    return Spend(False, spent, "the budget ledger was damaged: this day's spending is unknown")
                if self._db.execute("SELECT 1 FROM dp_spend WHERE window_start = ?", (key,)).fetchone():
                    self._db.execute("COMMIT")
                    return Spend(False, spent, "this window was already published once")
                if spent + epsilon > daily_budget + 1e-9:
                    self._db.execute("COMMIT")
                    return Spend(False, spent, f"daily budget {daily_budget:g} would be exceeded")
                self._db.execute(
                    "INSERT INTO dp_spend (window_start, day, epsilon, at) VALUES (?, ?, ?, ?)",
                    (key, day, epsilon, datetime.now(UTC).isoformat()),
                )
                self._db.execute("COMMIT")
            except BaseException as exc:
                rollback(self._db)  # on a full disk SQLite has rolled back already
                self.watch.failed("privacy-budget", exc)
                raise
            self.watch.succeeded("privacy-budget")
            return Spend(True, spent + epsilon)

    def forget_before(self, day: str) -> int:
        """Drop the accounts of days before ``day`` (they no longer limit anything)."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM dp_spend WHERE day < ?", (day,))
            return cursor.rowcount

    def close(self) -> None:
        self._db.close()


# --- applying a policy to a window ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectedWindow:
    cells: list[FlowCell]
    totals: list[FlowTotal]
    policy: PrivacyPolicy


class Protector:
    """Applies the configured policy to the raw counts of closed windows."""

    def __init__(
        self, config: PrivacyConfig, ledger: BudgetLedger | None = None, rng: random.Random | None = None
    ) -> None:
        if config.policy in DP_KINDS and ledger is None:
            raise ValueError("a dp policy needs a budget ledger")
        self.config = config
        self.ledger = ledger
        # The system's CSPRNG: noise must not be predictable from earlier windows.
        self.rng = rng if rng is not None else random.SystemRandom()

    def protect(self, window_start: datetime, lines: Sequence[str], counts: Mapping[CellKey, int]) -> ProtectedWindow:
        config = self.config
        kind = config.policy
        policy = config.policy_model()
        tables = {line: [counts.get((line, d, c), 0) for d, c in CELL_ORDER] for line in lines}
        raw_margins: dict[str, tuple[int, ...]] = {}

        if kind in DP_KINDS:
            assert self.ledger is not None
            epsilon, budget = config.epsilon, config.effective_budget
            paid = self.ledger.spend(window_start, epsilon, budget)
            policy = policy.model_copy(update={"spent_today": round(paid.spent_today, 9)})
            if not paid.granted:
                policy = policy.model_copy(update={"budget_exhausted": True})
                return _withheld(lines, policy)
            for line, cells in tables.items():
                noisy = [v + geometric_noise(epsilon, self.rng) for v in cells]
                # Margins from the unclipped noisy cells: their noise partly cancels, clipping would bias them.
                raw_margins[line] = tuple(max(0, v) for v in line_items(noisy)[N_CELLS:])
                tables[line] = [max(0, v) for v in noisy]

        out_cells: list[FlowCell] = []
        out_totals: list[FlowTotal] = []
        for line, cells in tables.items():
            items = list(line_items(cells))
            if line in raw_margins:
                items[N_CELLS:] = raw_margins[line]
            # Suppression sees the counts actually published (under dp-threshold: the noisy ones).
            hidden = suppress_items(tuple(items), config.k) if kind in THRESHOLD_KINDS else (False,) * N_ITEMS
            for i, (d, c) in enumerate(CELL_ORDER):
                out_cells.append(
                    FlowCell(line=line, direction=d, object_class=c, count=None if hidden[i] else items[i])
                )
            for m, (d2, c2) in enumerate(MARGIN_ORDER):
                i = N_CELLS + m
                out_totals.append(
                    FlowTotal(line=line, direction=d2, object_class=c2, count=None if hidden[i] else items[i])
                )
        return ProtectedWindow(out_cells, out_totals, policy)


def _withheld(lines: Sequence[str], policy: PrivacyPolicy) -> ProtectedWindow:
    cells = [FlowCell(line=line, direction=d, object_class=c, count=None) for line in lines for d, c in CELL_ORDER]
    totals = [FlowTotal(line=line, direction=d, object_class=c, count=None) for line in lines for d, c in MARGIN_ORDER]
    return ProtectedWindow(cells, totals, policy)
