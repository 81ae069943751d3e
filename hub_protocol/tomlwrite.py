"""A small TOML writer for the configs the programs generate (provisioning, the demo, config pushes).

Covers what our config models contain: tables, arrays of tables, strings, numbers, booleans, dates and
lists of scalars. Strings are written as JSON strings, whose escapes TOML's basic strings share.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import PurePath
from typing import Any


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("TOML has no place for NaN or infinity in our configs")
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | PurePath):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps(data: dict[str, Any]) -> str:
    """TOML text for ``data``; None values are left out (our models use None for 'not set')."""
    out: list[str] = []
    _table(out, [], data)
    return "\n".join(out).strip() + "\n"


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def _table(out: list[str], path: list[str], data: dict[str, Any]) -> None:
    nested = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict) or _is_table_list(value):
            nested.append((key, value))
        else:
            out.append(f"{_key(key)} = {_scalar(value)}")
    for key, value in nested:
        sub = [*path, _key(key)]
        if isinstance(value, dict):
            out.extend(["", f"[{'.'.join(sub)}]"])
            _table(out, sub, value)
        else:
            for item in value:
                out.extend(["", f"[[{'.'.join(sub)}]]"])
                _table(out, sub, item)
