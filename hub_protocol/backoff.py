"""The one retry delay of both programs: a ceiling that doubles from ``min_s`` to ``max_s``, reset on success.

With ``jitter`` (reconnecting to the broker) each delay is drawn uniformly from ``[0, ceiling]``: after a
broker restart every device loses its connection at the same moment, and a plain exponential delay would
make them all retry together, again and again. Without it (reopening a local camera, where there is no
fleet to spread) the delay is the ceiling itself.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None, *, jitter: bool = True) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError("need 0 < min_s <= max_s")
        self.min_s = min_s
        self.max_s = max_s
        self.jitter = jitter
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Cap the exponent so the float never overflows however long the broker stays away.
        return min(self.max_s, self.min_s * float(2 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        delay = self._rng.uniform(0.0, ceiling) if self.jitter else ceiling
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """After a success the next outage starts from the smallest ceiling again."""
        self.attempt = 0
