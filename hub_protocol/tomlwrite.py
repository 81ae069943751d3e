"""TOML text for the configs the programs generate (provisioning, the demo, config pushes), by tomli-w.

A maintained writer rather than our own: a hand-written one emitted files that tomllib rejected (non-ASCII
keys such as ``straße``, control characters in strings). This module only adapts our data to it: None
means "not set" in our models and is left out; paths become strings.
"""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

import tomli_w


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value if v is not None]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("TOML has no place for NaN or infinity in our configs")
    return value


def dumps(data: dict[str, Any]) -> str:
    """TOML text for ``data``; None values are left out (our models use None for 'not set')."""
    return tomli_w.dumps(_plain(data))
