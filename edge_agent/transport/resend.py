"""When the link sends the unacknowledged window again.

The hub acknowledges with a watermark: every event up to ``upto`` is stored. Two signs that it will not move
without help:
- no acknowledgement that moves it for ``ack_timeout_s``: the hub (or the broker's queue) lost the connection's
  messages, or is down;
- acknowledgements keep coming but none moves it for ``stall_s``: the hub stores newer events and misses
  older ones, as when one of several hub instances died with them unstored (the broker had them acknowledged
  already). Like TCP's duplicate acks, it takes ``STALLED_ACKS`` such acks, so events still on their way
  (instances store in parallel, so a newer one may be stored first) are not sent again at once.
Resending is always safe: the hub acknowledges a duplicate again and stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

STALLED_ACKS = 3


@dataclass(slots=True)
class ResendTimer:
    ack_timeout_s: float
    stall_s: float
    since: float | None = None
    """When the watermark last moved (or the first event went out) while something is unacknowledged."""
    stalled_acks: int = 0

    def on_ack(self, progressed: bool, now: float) -> None:
        if progressed:
            self.since, self.stalled_acks = now, 0
        else:
            self.stalled_acks += 1

    def on_send(self, now: float) -> None:
        if self.since is None:
            self.since = now

    def due(self, outstanding: int, now: float) -> bool:
        """Whether to send the window again now (then the timer starts over)."""
        if outstanding == 0:
            self.since, self.stalled_acks = None, 0
            return False
        if self.since is None:
            self.since = now
            return False
        waited = now - self.since
        if waited > self.ack_timeout_s or (self.stalled_acks >= STALLED_ACKS and waited > self.stall_s):
            self.since, self.stalled_acks = now, 0
            return True
        return False

    def reset(self) -> None:
        self.since, self.stalled_acks = None, 0
