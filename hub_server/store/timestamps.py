"""The store's one format for a point in time: Unix seconds, UTC (REAL on SQLite, DOUBLE PRECISION on PostgreSQL).

Store functions take and give aware ``datetime`` values; these two convert at the SQL boundary. A double holds
today's times to well under a microsecond, so a ``datetime`` comes back exactly as it was stored, and SQL
compares and orders the numbers as times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload


def to_epoch(value: datetime) -> float:
    """Unix seconds of an aware ``datetime`` (a naive one is refused: its zone would be a guess)."""
    if value.utcoffset() is None:
        raise ValueError(f"a stored time needs a time zone: {value!r}")
    return value.timestamp()


@overload
def from_epoch(value: float) -> datetime: ...


@overload
def from_epoch(value: None) -> None: ...


def from_epoch(value: float | None) -> datetime | None:
    """The aware UTC ``datetime`` of stored Unix seconds (None stays None)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def sql_value(value: Any) -> Any:
    """A parameter as the store keeps it: a ``datetime`` as Unix seconds, anything else as it is."""
    return to_epoch(value) if isinstance(value, datetime) else value
