"""Boot watermarks: for each (device, boot), the highest seq below which everything is stored or declared
dropped, the seqs stored above it, and the holes between (``IngestCore`` keeps one ``BootState`` per boot)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class BootState:
    """Watermark state of one (device, boot): kept in memory, rebuilt from the database at start."""

    upto: int = 0
    max_seq: int = 0
    pending: set[int] = field(default_factory=set)
    ranges: list[tuple[int, int]] = field(default_factory=list)
    hole_since: float | None = None
    gap_open: bool = False
    reported: set[tuple[int, int]] = field(default_factory=set)
    """Holes recorded already: each is logged and announced once, not again every period."""

    def known(self, seq: int) -> bool:
        if seq in self.pending:
            return True
        if seq <= self.upto:
            # Declared dropped, yet here (it was in flight when the outbox dropped it): store it after all.
            return not any(first <= seq <= last for first, last in self.ranges)
        return False

    def add(self, seq: int) -> None:
        self.max_seq = max(self.max_seq, seq)
        if seq > self.upto:
            self.pending.add(seq)

    def add_range(self, first: int, last: int) -> None:
        self.ranges.append((first, last))
        self.max_seq = max(self.max_seq, last)

    def advance(self) -> bool:
        start = self.upto
        while True:
            following = self.upto + 1
            if following in self.pending:
                self.pending.discard(following)
                self.upto = following
                continue
            covering = [last for first, last in self.ranges if first <= following <= last]
            if covering:
                self.upto = max(covering)
                self.pending = {s for s in self.pending if s > self.upto}
                continue
            return self.upto != start

    def missing(self) -> list[tuple[int, int]]:
        """Holes between the watermark and the highest seq seen."""
        covered = sorted([(s, s) for s in self.pending] + [r for r in self.ranges if r[1] > self.upto])
        holes: list[tuple[int, int]] = []
        cursor = self.upto + 1
        for first, last in covered:
            if first > cursor:
                holes.append((cursor, first - 1))
            cursor = max(cursor, last + 1)
        return holes[:100]
