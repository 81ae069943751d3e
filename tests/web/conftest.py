"""Web tests reuse the hub core's fixtures: a hub config in a temporary folder and its database."""

from __future__ import annotations

from tests.hub.conftest import db, hub_config

__all__ = ["db", "hub_config"]
