"""Small-count protection applied on the device before a window is published.

Per line, a window is a 2 x 2 table of cells (direction x class). What is published, per policy:

- ``none``: the cells as counted, with their margins (per direction, per class, line total).
- ``threshold``: a cell is published only when it is at least k; 0..k-1 is published as null, and no margins
  are published. Each cell is decided on its own value alone, so the tables that publish a given window are
  exactly every combination of 0..k-1 in its null cells: someone who knows the rule learns "below k" and
  nothing more. (Publishing zeros, or margins with complementary suppression, let an informed outsider pin
  hidden counts down: issue 13.) tests/privacy/test_suppression.py checks this by enumerating tables.
- ``dp``: two-sided geometric (discrete Laplace) noise on each cell, P(Z=z) = (1-a)/(1+a) * a^|z| with
  a = exp(-epsilon). Counts are published as drawn, negative ones included, so that sums over windows stay
  unbiased (the hub clips only what it displays). Margins are sums of the noisy cells (post-processing).
  One tracked object adds at most ``max_crossings`` to a window (windows.py), so a window costs
  epsilon x max_crossings per person; a share of that pays for a noisy daily total per line, which the device
  publishes after midnight as a correction window (see ``DayAccount``). A daily budget, kept in SQLite on the
  device, caps what is spent per UTC day; a window the budget cannot pay for is published with every count
  withheld.
- ``dp-threshold``: noise first, then the threshold rule on the noisy cells (no small number is shown).

The arithmetic works on numpy arrays of cells so that ``bench/privacy.py`` runs exactly this code on years of
data; only the source of the noise differs (the device draws from the operating system's CSPRNG).
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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
    PolicyKind,
    PrivacyPolicy,
)

CellKey = tuple[str, Direction, ObjectClass]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DIRECTIONS = (Direction.IN, Direction.OUT)
CLASSES = (ObjectClass.PEDESTRIAN, ObjectClass.CYCLIST)

# The four cells of one line, then its margins; each margin sums the cells that match it.
CELL_ORDER: tuple[tuple[Direction, ObjectClass], ...] = tuple((d, c) for d in DIRECTIONS for c in CLASSES)
MARGIN_ORDER: tuple[tuple[Direction | None, ObjectClass | None], ...] = (
    (Direction.IN, None),
    (Direction.OUT, None),
    (None, ObjectClass.PEDESTRIAN),
    (None, ObjectClass.CYCLIST),
    (None, None),
)
N_CELLS = len(CELL_ORDER)
MAX_COUNT = 1_000_000
"""Bound of a published cell on the wire (FlowCell.count); noise beyond it is clipped (never reached in practice)."""

_MARGIN_MATRIX = np.array(
    [[int(d in (None, cd) and c in (None, cc)) for cd, cc in CELL_ORDER] for d, c in MARGIN_ORDER], dtype=np.int64
)


def margins(cells: IntArray) -> IntArray:
    """Cells (..., 4) -> their five margins (..., 5) in MARGIN_ORDER."""
    result: IntArray = cells @ _MARGIN_MATRIX.T
    return result


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


NoiseSource = Callable[[float, tuple[int, ...]], IntArray]
"""Draws an array of two-sided geometric noise of the given shape for a given epsilon."""


def numpy_noise(rng: np.random.Generator) -> NoiseSource:
    """Noise from a seeded numpy generator: for benchmarks and tests, never on a device."""
    return lambda epsilon, shape: geometric_noise_array(epsilon, shape, rng)


def system_noise(rng: random.Random) -> NoiseSource:
    """Noise from ``rng`` (on the device the OS's CSPRNG), one draw at a time."""

    def draw(epsilon: float, shape: tuple[int, ...]) -> IntArray:
        size = math.prod(shape)
        return np.array([geometric_noise(epsilon, rng) for _ in range(size)], dtype=np.int64).reshape(shape)

    return draw


def noise_variance(epsilon: float) -> float:
    """Variance of the two-sided geometric noise: 2a / (1 - a)^2."""
    a = math.exp(-epsilon)
    return 2 * a / (1 - a) ** 2


@dataclass(frozen=True)
class Release:
    """What one policy publishes for cells of shape (..., 4): values (meaningless where hidden), the mask of
    hidden cells, and the margins (None when the policy publishes none)."""

    values: IntArray
    hidden: BoolArray
    margins: IntArray | None


def release_cells(
    cells: IntArray, kind: PolicyKind, k: int, epsilon: float | None, noise: NoiseSource | None
) -> Release:
    """The one place where a policy turns true cells into published ones (device and benchmark alike).
    ``epsilon`` is the noise parameter of each cell (dp kinds only)."""
    values = np.asarray(cells, dtype=np.int64)
    if kind in DP_KINDS:
        if epsilon is None or noise is None:
            raise ValueError("a dp policy needs epsilon and a noise source")
        values = np.clip(values + noise(epsilon, values.shape), -MAX_COUNT, MAX_COUNT)
    if kind in THRESHOLD_KINDS:
        # Each cell on its own value: null means "0..k-1" whatever the other cells hold.
        return Release(values, values < k, None)
    # Extra columns after the four cells (the capped figure) are protected like cells, outside the margins.
    return Release(values, np.zeros(values.shape, dtype=bool), margins(values[..., :N_CELLS]))


def day_correction(
    true_total: IntArray,
    noisy_total: IntArray,
    noisy_cells: IntArray,
    epsilon_cells: float,
    epsilon_day: float,
    noise: NoiseSource,
) -> IntArray:
    """The day's correction per line: noisy daily total D (noise ``epsilon_day``) combined with the sum S of the
    day's ``noisy_cells`` published cells (each noise ``epsilon_cells``) by inverse-variance weighting; the
    correction w * (D - S) turns S into that best estimate. Only D touches true counts; the rest is
    post-processing of published numbers."""
    day = np.asarray(true_total, dtype=np.int64) + noise(epsilon_day, np.shape(true_total))
    var_sum = np.asarray(noisy_cells, dtype=np.float64) * noise_variance(epsilon_cells)
    weight = var_sum / (var_sum + noise_variance(epsilon_day))
    correction: IntArray = np.rint(weight * (day - noisy_total)).astype(np.int64)
    return correction


def spread(totals: IntArray) -> IntArray:
    """Integer totals (...,) -> four cells (..., 4) that add up to them, as even as integers allow."""
    totals = np.asarray(totals, dtype=np.int64)
    base = np.floor_divide(totals, N_CELLS)[..., None]
    rest = (totals - N_CELLS * base[..., 0])[..., None]
    result: IntArray = base + (np.arange(N_CELLS) < rest)
    return result


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
    # One row: the latest day whose account was deleted; no window of that day or before is paid again.
    conn.execute("CREATE TABLE IF NOT EXISTS dp_forgotten (id INTEGER PRIMARY KEY CHECK (id = 1), through TEXT)")


KEEP_DAYS = 3
"""Forgetting never deletes the accounts of the latest days spent on, whatever the clock says: a clock that
jumped days ahead (a bad or spoofed time server) would otherwise delete the real day's account, and that
day's budget would start again when the clock came back (tests/privacy/test_budget_clock.py)."""


class BudgetLedger:
    """Epsilon spent per UTC day, in SQLite so a restart cannot reset it. Each window is paid at most once."""

    def __init__(self, path: Path, watch: StorageWatch | None = None) -> None:
        self._lock = threading.Lock()
        self.watch = watch or StorageWatch()
        self._db, damage = open_database(path, _create_ledger)
        if damage is not None:
            # Rows on damaged pages are gone unnoticed, so what today and yesterday spent is unknown: spend
            # nothing more on them rather than twice. Older accounts are kept as far as they can be read.
            copy_readable(self._db, damage.moved_to, ["dp_spend", "dp_blocked", "dp_forgotten"])
            today = datetime.now(UTC).date()
            days = [today.isoformat(), date.fromordinal(today.toordinal() - 1).isoformat()]
            self._db.executemany("INSERT OR IGNORE INTO dp_blocked (day) VALUES (?)", [(d,) for d in days])

    def spent(self, day: str) -> float:
        row = self._db.execute("SELECT COALESCE(SUM(epsilon), 0) FROM dp_spend WHERE day = ?", (day,)).fetchone()
        return float(row[0])

    def spend(self, window_start: datetime, epsilon: float, daily_budget: float) -> Spend:
        """Pay ``epsilon`` for the window, or refuse when the day's budget would be exceeded or it was paid."""
        start = window_start.astimezone(UTC)
        return self.spend_days(start, {start.date(): epsilon}, daily_budget)

    def spend_days(self, key_start: datetime, charges: Mapping[date, float], daily_budget: float) -> Spend:
        """Pay each day its ``charges`` for the publication keyed by ``key_start`` (a window's start), all or
        nothing: a period that spans midnight (a validation) is paid from both days' budgets. ``spent_today``
        is that of the day of ``key_start``."""
        start = key_start.astimezone(UTC)
        first = start.date()
        key = start.isoformat()
        parts = sorted(charges.items())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                spent = self.spent(first.isoformat())
                reason = self._refusal(key, parts, daily_budget)
                if reason:
                    self._db.execute("COMMIT")
                    return Spend(False, spent, reason)
                now = datetime.now(UTC).isoformat()
                # The first day's row carries the key itself (what "paid once" looks up); later days' rows
                # carry the key and their day.
                self._db.executemany(
                    "INSERT INTO dp_spend (window_start, day, epsilon, at) VALUES (?, ?, ?, ?)",
                    [
                        (key if day == first else f"{key} {day.isoformat()}", day.isoformat(), eps, now)
                        for day, eps in parts
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException as exc:
                rollback(self._db)  # on a full disk SQLite has rolled back already
                self.watch.failed("privacy-budget", exc)
                raise
            self.watch.succeeded("privacy-budget")
            return Spend(True, spent + charges.get(first, 0.0))

    def _refusal(self, key: str, parts: Sequence[tuple[date, float]], daily_budget: float) -> str:
        """Why the charges cannot be paid ("" when they can); inside the caller's transaction."""
        for day, _ in parts:
            name = day.isoformat()
            if self._db.execute("SELECT 1 FROM dp_blocked WHERE day = ?", (name,)).fetchone():
                return f"the budget ledger was damaged: what {name} spent is unknown"
            if self._db.execute("SELECT 1 FROM dp_forgotten WHERE through >= ?", (name,)).fetchone():
                return f"the account of {name} was forgotten: what it spent is unknown"
        if self._db.execute("SELECT 1 FROM dp_spend WHERE window_start = ?", (key,)).fetchone():
            return "this window was already published once"
        for day, epsilon in parts:
            if self.spent(day.isoformat()) + epsilon > daily_budget + 1e-9:
                return f"daily budget {daily_budget:g} of {day.isoformat()} would be exceeded"
        return ""

    def forget_before(self, day: str) -> int:
        """Drop the accounts of days before ``day``, except the latest ``KEEP_DAYS`` days spent on, and refuse
        from then on to pay for any window of a day up to the latest one dropped."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                doomed = (
                    "SELECT DISTINCT day FROM dp_spend WHERE day < ? AND day NOT IN"
                    " (SELECT DISTINCT day FROM dp_spend ORDER BY day DESC LIMIT ?)"
                )
                (latest,) = self._db.execute(f"SELECT MAX(day) FROM ({doomed})", (day, KEEP_DAYS)).fetchone()  # noqa: S608
                removed = 0
                if latest is not None:
                    removed = self._db.execute(
                        f"DELETE FROM dp_spend WHERE day IN ({doomed})",  # noqa: S608 - fixed fragments
                        (day, KEEP_DAYS),
                    ).rowcount
                    self._db.execute(
                        "INSERT INTO dp_forgotten (id, through) VALUES (1, ?)"
                        " ON CONFLICT (id) DO UPDATE SET through = MAX(through, excluded.through)",
                        (latest,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                rollback(self._db)
                raise
            return removed

    def close(self) -> None:
        self._db.close()


# --- applying a policy to a window ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectedWindow:
    cells: list[FlowCell]
    totals: list[FlowTotal]
    policy: PrivacyPolicy
    capped_tracks: int | None
    """Objects that crossed more than max_crossings times, protected like a cell (None when withheld)."""


@dataclass
class DayAccount:
    """What the device needs for a day's correction: per line, the true and the published (noisy) sum of the
    day's paid windows and how many noisy cells they hold. Memory only: after a restart the correction
    covers the windows since the restart, which keeps the day's sum unbiased."""

    day: date
    true_total: dict[str, int] = field(default_factory=dict)
    noisy_total: dict[str, int] = field(default_factory=dict)
    noisy_cells: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DayCorrection:
    day: date
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
        self.noise = system_noise(rng if rng is not None else random.SystemRandom())
        self._day: DayAccount | None = None

    def protect(
        self,
        window_start: datetime,
        lines: Sequence[str],
        counts: Mapping[CellKey, int],
        capped_tracks: int = 0,
        *,
        period: timedelta | None = None,
    ) -> ProtectedWindow:
        """``period``: the counts are not a flow window but those of this period from ``window_start`` (a
        field validation). No per-object cap applies to them, so one person is taken to add up to
        ``max_crossings`` for each window the period touches: they are charged that many windows, each to
        the budget of its own UTC day (a period across midnight is paid by both days, or not at all), get the
        full epsilon per crossing, and stay out of the day's correction (which pays for windows only)."""
        config = self.config
        kind = config.policy
        policy = config.policy_model()
        if kind in DP_KINDS:
            assert self.ledger is not None
            if period is None:
                paid = self.ledger.spend(window_start, config.window_charge, config.effective_budget)
            else:
                # Each UTC day pays for the windows of its own that the period touches.
                charges = charge_by_day(window_start, period, config.window_seconds, config.window_charge)
                paid = self.ledger.spend_days(window_start, charges, config.effective_budget)
            policy = policy.model_copy(update={"spent_today": round(paid.spent_today, 9)})
            if not paid.granted:
                return _withheld(lines, policy.model_copy(update={"budget_exhausted": True}))
        # The capped-objects figure travels as a fifth column, protected exactly like a cell.
        table = np.array([[*(counts.get((line, d, c), 0) for d, c in CELL_ORDER), 0] for line in lines], dtype=np.int64)
        table[0, N_CELLS] = capped_tracks
        epsilon = config.cell_epsilon if period is None else config.epsilon
        released = release_cells(table, kind, config.k, epsilon, self.noise)
        values, hidden = released.values, released.hidden
        if kind is PolicyKind.DP and config.day_epsilon > 0 and period is None:
            self._account(window_start, lines, table[:, :N_CELLS], values[:, :N_CELLS])
        out_cells: list[FlowCell] = []
        out_totals: list[FlowTotal] = []
        for row, line in enumerate(lines):
            for i, (d, c) in enumerate(CELL_ORDER):
                count = None if hidden[row, i] else int(values[row, i])
                out_cells.append(FlowCell(line=line, direction=d, object_class=c, count=count))
            if kind in THRESHOLD_KINDS:
                continue
            assert released.margins is not None
            for m, (d2, c2) in enumerate(MARGIN_ORDER):
                count = int(released.margins[row, m])
                out_totals.append(FlowTotal(line=line, direction=d2, object_class=c2, count=count))
        capped = None if hidden[0, N_CELLS] else int(values[0, N_CELLS])
        return ProtectedWindow(out_cells, out_totals, policy, capped)

    def _account(self, window_start: datetime, lines: Sequence[str], true: IntArray, noisy: IntArray) -> None:
        day = window_start.astimezone(UTC).date()
        if self._day is None or self._day.day != day:
            self._day = DayAccount(day)  # an unreleased older day is dropped: its windows stay unbiased
        account = self._day
        for row, line in enumerate(lines):
            account.true_total[line] = account.true_total.get(line, 0) + int(true[row].sum())
            account.noisy_total[line] = account.noisy_total.get(line, 0) + int(noisy[row].sum())
            account.noisy_cells[line] = account.noisy_cells.get(line, 0) + N_CELLS

    def release_day(self, before: date) -> DayCorrection | None:
        """The correction of the accounted day if it ended before ``before``; each day is released once."""
        account = self._day
        if account is None or account.day >= before:
            return None
        self._day = None
        lines = list(account.true_total)
        correction = day_correction(
            np.array([account.true_total[x] for x in lines]),
            np.array([account.noisy_total[x] for x in lines]),
            np.array([account.noisy_cells[x] for x in lines]),
            self.config.cell_epsilon,
            self.config.day_epsilon,
            self.noise,
        )
        cells = spread(correction)
        out_cells = [
            FlowCell(line=line, direction=d, object_class=c, count=int(cells[row, i]))
            for row, line in enumerate(lines)
            for i, (d, c) in enumerate(CELL_ORDER)
        ]
        out_totals = [
            FlowTotal(line=line, direction=d2, object_class=c2, count=int(v))
            for row, line in enumerate(lines)
            for (d2, c2), v in zip(MARGIN_ORDER, margins(cells[row]), strict=True)
        ]
        policy = self.config.policy_model()
        if self.ledger is not None:
            policy = policy.model_copy(update={"spent_today": round(self.ledger.spent(account.day.isoformat()), 9)})
        return DayCorrection(account.day, out_cells, out_totals, policy)


def windows_touched(start: datetime, period: timedelta, window_seconds: int) -> int:
    """How many clock-aligned windows of ``window_seconds`` the period [start, start + period) overlaps."""
    begin = start.timestamp()
    end = max(begin + period.total_seconds(), begin + 1e-6)
    return int(math.ceil(end / window_seconds) - math.floor(begin / window_seconds))


def charge_by_day(start: datetime, period: timedelta, window_seconds: int, window_charge: float) -> dict[date, float]:
    """The charge of a period (``window_charge`` for each window it touches, as ``windows_touched`` counts
    them), per UTC day of those windows."""
    first = math.floor(start.timestamp() / window_seconds) * window_seconds
    per_day: dict[date, int] = {}
    for i in range(windows_touched(start, period, window_seconds)):
        day = datetime.fromtimestamp(first + i * window_seconds, UTC).date()
        per_day[day] = per_day.get(day, 0) + 1
    return {day: round(n * window_charge, 9) for day, n in per_day.items()}


def _withheld(lines: Sequence[str], policy: PrivacyPolicy) -> ProtectedWindow:
    cells = [FlowCell(line=line, direction=d, object_class=c, count=None) for line in lines for d, c in CELL_ORDER]
    totals = [FlowTotal(line=line, direction=d, object_class=c, count=None) for line in lines for d, c in MARGIN_ORDER]
    return ProtectedWindow(cells, totals, policy, None)
