"""Crossings per line, direction and class since the agent started: the live tally and validation's counter.

Numbers only, in memory: no time of a crossing is kept. Fed from the counter's thread, read by the page's.
"""

from __future__ import annotations

import threading
from collections import Counter

CellKey = tuple[str, str, str]
"""(line, direction, object_class)"""


class Tally:
    def __init__(self) -> None:
        self._counts: Counter[CellKey] = Counter()
        self._lock = threading.Lock()

    def add(self, line: str, direction: str, object_class: str) -> None:
        with self._lock:
            self._counts[(line, str(direction), str(object_class))] += 1

    def snapshot(self) -> dict[CellKey, int]:
        with self._lock:
            return dict(self._counts)


def since(now: dict[CellKey, int], before: dict[CellKey, int]) -> dict[CellKey, int]:
    """Counts added between two snapshots."""
    return {key: value - before.get(key, 0) for key, value in now.items() if value - before.get(key, 0) > 0}
