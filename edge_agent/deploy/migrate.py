"""Older agent config layouts are upgraded with a notice instead of rejected.

Version 0 (the field-lab prototype, before ``config_version`` existed) differs from version 1 in:

- ``[broker]`` instead of ``[mqtt]``, with ``user`` for ``username``, ``ca`` for ``ca_file``, ``keepalive``
  for ``keepalive_s`` and ``topic_prefix`` for ``prefix``;
- counting lines as strings ``"NAME=x1,y1,x2,y2"`` (or tables whose ``points`` is the string
  ``"x1,y1,x2,y2"``) instead of tables with a list of four numbers.

Each step takes the raw TOML dictionary of one version to the next and says what it changed; validation
runs only on the result, so its error messages name the keys of the current layout.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

Step = Callable[[dict[str, Any]], list[str]]

_BROKER_RENAMES = {"user": "username", "ca": "ca_file", "keepalive": "keepalive_s", "topic_prefix": "prefix"}


def detect_version(data: dict[str, Any]) -> int | None:
    """The layout's version: the explicit key, else 0 for the prototype's ``[broker]`` layout, else None."""
    version = data.get("config_version")
    if isinstance(version, int) and not isinstance(version, bool):
        return version
    if version is None:
        return 0 if "broker" in data and "mqtt" not in data else None
    return None  # a wrong type: let validation report it


def _v0_to_v1(data: dict[str, Any]) -> list[str]:
    notices = []
    broker = data.pop("broker", None)
    if isinstance(broker, dict):
        mqtt = {_BROKER_RENAMES.get(key, key): value for key, value in broker.items()}
        data["mqtt"] = mqtt
        renamed = sorted(f"{old} -> {new}" for old, new in _BROKER_RENAMES.items() if old in broker)
        notices.append("[broker] is now [mqtt]" + (f" ({', '.join(renamed)})" if renamed else ""))
    counting = data.get("counting")
    lines = counting.get("lines") if isinstance(counting, dict) else None
    if isinstance(lines, list) and isinstance(counting, dict):
        converted = [_line_v0_to_v1(line) for line in lines]
        if converted != lines:
            counting["lines"] = converted
            notices.append('counting lines "NAME=x1,y1,x2,y2" are now tables {name = ..., points = [x1, y1, x2, y2]}')
    data["config_version"] = 1
    return notices


def _line_v0_to_v1(line: Any) -> Any:
    if isinstance(line, str) and "=" in line:
        name, _, points = line.partition("=")
        return {"name": name.strip(), "points": _numbers(points)}
    if isinstance(line, dict) and isinstance(line.get("points"), str):
        return {**line, "points": _numbers(line["points"])}
    return line  # not the old shape: validation will say what is wrong with it


def _numbers(text: str) -> list[float | int] | str:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        return text  # leave it for validation to report with its key path
    return [int(v) if v.is_integer() else v for v in values]


STEPS: dict[int, Step] = {0: _v0_to_v1}
"""``STEPS[n]`` upgrades version n to n + 1 in place and returns its notices."""

LATEST = max(STEPS) + 1
"""The version the steps lead to; equal to ``edge_agent.config.CONFIG_VERSION`` (a test holds them together)."""


def migrate_config(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Upgrade ``data`` to the current version; returns a new dictionary and one notice per change made."""
    version = detect_version(data)
    if version is None or version >= LATEST or version < min(STEPS):
        return data, []  # current, unknown or too new: validation decides
    result = copy.deepcopy(data)
    notices = [f"config version {version} is upgraded to version {LATEST} in memory"]
    while version < LATEST:
        notices += STEPS[version](result)
        version += 1
    notices.append("please update the file to the new layout (docs/deploy.md, 'Config versions')")
    return result, notices
