"""The hub's public figures against an informed outsider, for windows that carry totals beside hidden cells.

The device's threshold rule publishes no totals (docs/privacy.md). The rule before issue 13 did: it hid
counts 1..k-1, showed zeros, and published each line's totals per direction, per class and for the line,
hiding more of them until no hidden count could be *computed*; listing every table that publishes what was
observed still pins hidden counts down. A device still on that firmware sends such windows, and the hub
takes them (they are well-formed). The hub must not publish more about them than their cells: the public
open data shows only the cells of each window, but the hourly and daily totals added up the totals
the device sent, and the sensor page's line total used them too.

The test feeds the hub, through its ingest, one hourly window of an old-firmware device for every table with
cells 0..5 (k = 3), rolls them up, and reads what anyone can: the open cells of each window, the open hourly
totals of its hour, and the line total of the sensor page over that hour (the difference of two page loads).
Grouping the tables by everything published about them, it counts hidden cells pinned to one value, and
compares that with the cells alone (what the old rule itself gives away: it publishes zeros).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp.test_utils import TestClient

from edge_agent.privacy.protection import CELL_ORDER, MARGIN_ORDER, N_CELLS
from hub_protocol.codec import encode
from hub_protocol.flows import FlowCell, FlowTotal, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.topics import Channel, device_topic
from hub_server.config import IngestConfig
from hub_server.ingest.service import IngestCore
from hub_server.store import flow_summaries
from hub_server.store.db import Database
from hub_server.store.retention import roll_up_batch

K = 3
TOP = 5
TABLES = list(itertools.product(range(TOP + 1), repeat=N_CELLS))
N_ITEMS = N_CELLS + len(MARGIN_ORDER)
PREFIX = "cot"

# --- the threshold rule before issue 13 (d199ef7), as a device on that firmware applies it ----------------


def _constraints() -> npt.NDArray[np.float64]:
    rows = []
    for m, (direction, cls) in enumerate(MARGIN_ORDER):
        row = np.zeros(N_ITEMS)
        row[N_CELLS + m] = -1.0
        for i, (d, c) in enumerate(CELL_ORDER):
            if direction in (None, d) and cls in (None, c):
                row[i] = 1.0
        rows.append(row)
    total = N_CELLS + MARGIN_ORDER.index((None, None))
    for first, second in ((0, 1), (2, 3)):
        row = np.zeros(N_ITEMS)
        row[total] = -1.0
        row[N_CELLS + first] = row[N_CELLS + second] = 1.0
        rows.append(row)
    return np.array(rows)


CONSTRAINTS = _constraints()


def _recomputable(suppressed: Sequence[bool]) -> list[int]:
    unknown = [i for i, s in enumerate(suppressed) if s]
    if not unknown:
        return []
    sub = CONSTRAINTS[:, unknown]
    base = np.linalg.matrix_rank(sub)
    found = []
    for pos, item in enumerate(unknown):
        unit = np.zeros((1, len(unknown)))
        unit[0, pos] = 1.0
        if np.linalg.matrix_rank(np.vstack([sub, unit])) == base:
            found.append(item)
    return found


@lru_cache(maxsize=65_536)
def _suppress_pattern(pattern: tuple[tuple[bool, int], ...]) -> tuple[bool, ...]:
    suppressed = [small for small, _ in pattern]
    while exposed := _recomputable(suppressed):
        target = exposed[0]
        candidates = [
            i
            for i in range(N_ITEMS)
            if not suppressed[i] and any(CONSTRAINTS[r, target] and CONSTRAINTS[r, i] for r in range(len(CONSTRAINTS)))
        ]
        suppressed[min(candidates, key=lambda i: (i >= N_CELLS, pattern[i][1], i))] = True
    return tuple(suppressed)


def old_firmware(cells: tuple[int, ...], k: int = K) -> tuple[int | None, ...]:
    """The four cells and five totals such a device published (None = hidden)."""
    items = (
        *cells,
        *(
            sum(v for v, dc in zip(cells, CELL_ORDER, strict=True) if m[0] in (None, dc[0]) and m[1] in (None, dc[1]))
            for m in MARGIN_ORDER
        ),
    )
    ranks = {v: r for r, v in enumerate(sorted(set(items)))}
    hidden = _suppress_pattern(tuple((0 < v < k, ranks[v]) for v in items))
    return tuple(None if h else v for h, v in zip(hidden, items, strict=True))


# --- the attack -----------------------------------------------------------------------------------------


def window(seq: int, start: datetime, published: tuple[int | None, ...]) -> FlowWindow:
    return FlowWindow(
        device="cam-old",
        boot="boot-1",
        seq=seq,
        window_start=start,
        window_seconds=3600,
        cells=[
            FlowCell(line="door", direction=d, object_class=c, count=published[i])
            for i, (d, c) in enumerate(CELL_ORDER)
        ],
        totals=[
            FlowTotal(line="door", direction=d, object_class=c, count=published[N_CELLS + m])
            for m, (d, c) in enumerate(MARGIN_ORDER)
        ],
        quality=WindowQuality(observed_fraction=1.0, mean_fps=15, dropped_frames=0),
        policy=PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=K),
    )


def pinned(views: Sequence[tuple[Any, ...]]) -> int:
    """Hidden cells (1..K-1) that every table publishing the same view holds at one value."""
    groups: dict[tuple[Any, ...], list[tuple[int, ...]]] = {}
    for table, view in zip(TABLES, views, strict=True):
        groups.setdefault(view, []).append(table)
    found = 0
    for tables in groups.values():
        values = np.array(tables)
        for cell in range(N_CELLS):
            column = values[:, cell]
            hidden = [table for table in tables if old_firmware(table)[cell] is None]
            if hidden and column.min() == column.max() and 0 < column[0] < K:
                found += len(hidden)
    return found


async def test_the_hubs_totals_pin_no_hidden_count_beyond_the_cells(client: TestClient[Any, Any], db: Database) -> None:
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=len(TABLES) + 1)
    starts = [first + timedelta(hours=i) for i in range(len(TABLES))]
    core = IngestCore(db.location, PREFIX, IngestConfig())
    try:
        topic = device_topic(PREFIX, "main-street", "cam-old", Channel.FLOW)
        received = datetime.now(UTC).timestamp()
        core.process(
            [
                (topic, encode(window(i + 1, s, old_firmware(t))), received)
                for i, (s, t) in enumerate(zip(starts, TABLES, strict=True))
            ]
        )
    finally:
        core.close()
    with db.write() as conn:
        while roll_up_batch(conn):
            pass
    span = {"since": first.isoformat(), "until": (starts[-1] + timedelta(hours=1)).isoformat(), "limit": "100000"}
    cells = await (await client.get("/api/v1/open/flows", params=span)).json()
    totals = await (await client.get("/api/v1/open/flows/totals", params={**span, "resolution": "hour"})).json()
    assert len(cells) == N_CELLS * len(TABLES)
    by_start: dict[datetime, dict[str, Any]] = {s: {} for s in starts}
    for c in cells:
        by_start[datetime.fromisoformat(c["window_start"])][f"{c['direction']}/{c['object_class']}"] = c["count"]
    for t in totals:
        key = f"total {t['direction']}/{t['object_class']}"
        by_start[datetime.fromisoformat(t["bucket_start"])][key] = (t["count"], t["suppressed_cells"])
    with db.write() as conn:  # (a plain read; the write connection exists in every version of the store)
        for s in starts:  # what the sensor page's line total adds over the hour (two loads an hour apart)
            by_start[s]["page"] = flow_summaries.span_sums(
                conn, s, s + timedelta(hours=1), protected_only=True
            ).lines.get(("cam-old", "door"))
    cells_only = [tuple(by_start[s][f"{d.value}/{c.value}"] for d, c in CELL_ORDER) for s in starts]
    everything = [tuple(sorted(by_start[s].items(), key=lambda kv: kv[0])) for s in starts]
    baseline, found = pinned(cells_only), pinned(everything)
    hidden = sum(v is None for t in TABLES for v in old_firmware(t)[:N_CELLS])
    assert found == baseline, (
        f"the hub's public figures pin {found} of {hidden} hidden cells; the cells alone {baseline}"
    )


def test_control_the_old_firmwares_totals_pin_hidden_cells() -> None:
    """Control: the attack, on what such a device sends (cells and totals), pins hidden cells."""
    assert pinned([old_firmware(t) for t in TABLES]) > pinned([old_firmware(t)[:N_CELLS] for t in TABLES])
