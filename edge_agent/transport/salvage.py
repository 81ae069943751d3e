"""What a damaged outbox file still tells: the rows SQLite can read, and the events whose bytes remain.

The rows read back are sent as usual. Every other event found in the file's bytes (each payload carries
``"device":…,"boot":…,"seq":…``) is declared dropped to the hub: ``[1, last]`` per boot without the rows read
back (those are sent). The hub counts as dropped only the numbers it has not stored, so the ranges may safely
cover events it already has.
The count is an upper bound: bytes of events the hub had acknowledged may still sit in free pages.

The hand-over marks (``handoffs``: the highest key each source with a store of its own has handed over) are
copied when SQLite can still read them: without them such a source would hand over again the events it had
handed over but not yet deleted, and the hub would store them twice under new numbers.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.storage import Damage
from hub_protocol.topics import Channel

log = logging.getLogger(__name__)

SalvagedRow = tuple[str, int, str, bytes, float, str | None]
"""boot, seq, channel, payload, created_at, gap_boot: an events row as the outbox stores it."""

_CHANNELS = {c.value for c in Channel}
_TOTAL = re.compile(rb'"dropped_total":(\d{1,15})')


@dataclass(frozen=True)
class Salvage:
    moved_to: Path
    reason: str
    rows: list[SalvagedRow] = field(default_factory=list)
    lost: set[tuple[str, int]] = field(default_factory=set)
    """(boot, seq) of events found in the bytes but not among the rows read back."""
    drops: list[tuple[str, int, int]] = field(default_factory=list)
    """Drop ranges the damaged file still declared."""
    dropped_before: int = 0
    handoffs: dict[str, int] | None = field(default_factory=dict)
    """The hand-over marks by source; None when the damaged file no longer gave them."""

    def lost_boots(self) -> dict[str, int]:
        """The highest lost number of each boot."""
        last: dict[str, int] = {}
        for boot, seq in self.lost:
            last[boot] = max(seq, last.get(boot, 0))
        return last


def salvage_outbox(damage: Damage, device: str, current_boot: str) -> Salvage:
    rows, drops, total, handoffs = _readable(damage.moved_to)
    data = _bytes(damage.moved_to)
    header = rb'"device":"' + re.escape(device.encode()) + rb'","boot":"([a-z0-9-]{1,64})","seq":(\d{1,15})'
    found = {(m.group(1).decode(), int(m.group(2))) for m in re.finditer(header, data)}
    stored = {(r[0], r[1]) for r in rows}
    lost = {key for key in found if key not in stored and key[0] != current_boot}
    total = max([total, *(int(m.group(1)) for m in _TOTAL.finditer(data))])
    return Salvage(damage.moved_to, damage.reason, rows, lost, drops, total, handoffs)


def _readable(
    path: Path,
) -> tuple[list[SalvagedRow], list[tuple[str, int, int]], int, dict[str, int] | None]:
    """Rows SQLite still reads, up to the first damaged page (read-only: the evidence stays as it was)."""
    rows: list[SalvagedRow] = []
    drops: list[tuple[str, int, int]] = []
    total = 0
    handoffs: dict[str, int] | None = None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return rows, drops, total, handoffs
    try:
        for boot, seq, channel, payload, created, gap in conn.execute(
            "SELECT boot, seq, channel, payload, created_at, gap_boot FROM events ORDER BY id"
        ):
            if isinstance(boot, str) and isinstance(seq, int) and channel in _CHANNELS and isinstance(payload, bytes):
                rows.append((boot, seq, channel, payload, float(created or 0), gap))
    except sqlite3.Error as exc:
        log.warning("damaged outbox: %d rows read before %s", len(rows), exc)
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        table = "drop_ranges" if "drop_ranges" in tables else "drops"  # the second: a file of an earlier version
        drops = [(b, f, last) for b, f, last in conn.execute(f"SELECT boot, first_seq, last_seq FROM {table}")]  # noqa: S608
        row = conn.execute("SELECT value FROM meta WHERE key = 'dropped_total'").fetchone()
        total = int(row[0]) if row else 0
    except (sqlite3.Error, TypeError, ValueError):
        pass
    try:
        handoffs = {
            source: upto
            for source, upto in conn.execute("SELECT source, upto FROM handoffs")
            if isinstance(source, str) and isinstance(upto, int)
        }
    except sqlite3.Error as exc:
        log.warning("damaged outbox: hand-over marks not readable (%s)", exc)
    finally:
        conn.close()
    return rows, drops, total, handoffs


def _bytes(path: Path) -> bytes:
    data = b""
    for part in (path, Path(f"{path}-wal")):
        try:
            data += part.read_bytes() + b"\0"
        except OSError:
            continue
    return data
