"""The device's library callbacks are guarded like the hub's: see ``hub_protocol.guard``."""

from __future__ import annotations

from hub_protocol.guard import guarded

__all__ = ["guarded"]
