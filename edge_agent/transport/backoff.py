"""Reconnect delays: exponential ceiling with full jitter, so a fleet does not reconnect in lockstep.

After a broker restart every device loses its connection at the same moment; with a plain exponential
delay they would all retry together, again and again. Full jitter draws each delay uniformly from
``[0, min(max, min * 2**attempt)]``, spreading the fleet across the whole interval.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError("need 0 < min_s <= max_s")
        self.min_s = min_s
        self.max_s = max_s
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Cap the exponent so the float never overflows however long the broker stays away.
        return min(self.max_s, self.min_s * float(2 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """After a successful connection the next outage starts from the smallest ceiling again."""
        self.attempt = 0
