"""Strict pydantic base model and human-readable validation errors, shared by configs and payloads."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

# Defined without pydantic, for modules that need them without the models (the command line's frame).
from hub_protocol import IDENTIFIER_PATTERN as IDENTIFIER_PATTERN
from hub_protocol.errors import ConfigError as ConfigError

Identifier = Annotated[
    str,
    Field(pattern=IDENTIFIER_PATTERN, description="Lower-case letters, digits and '-', 1 to 64 characters"),
]
"""Device, site, boot, line and command ids all share this alphabet, so they are safe in topics and paths."""

EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _time_in_range(value: datetime) -> datetime:
    # A zone offset can carry 0001-01-01 or 9999-12-31 out of what datetime holds once in UTC, and a time near
    # either end overflows when stored as a Unix time and read back: refuse it here, not later with a traceback.
    if not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValueError("give a time between 1970-01-01 and 9999-12-31 (UTC)")
    return value


Time = Annotated[AwareDatetime, AfterValidator(_time_in_range)]
"""A time with a zone, 1970 to 9999 in UTC: every time on the wire and in the API's queries."""


class StrictModel(BaseModel):
    """Base of every config and payload model: unknown keys are an error, values are checked on assignment."""

    # NaN and Infinity (which JSON readers and TOML accept) pass ``ge``/``le`` bounds or mean nothing: refused.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def describe_errors(error: ValidationError) -> list[str]:
    """One ``key.path: message`` line per problem, in the order pydantic found them."""
    lines = []
    for item in error.errors(include_url=False):
        # Union and function validators add their own names to the location; drop them for readers.
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        lines.append(f"{_location(loc)}: {item['msg']}")
    return lines


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_toml_model(model: type[ModelT], path: Path) -> ModelT:
    """Read a TOML file into ``model``; every failure becomes a ConfigError naming the file and keys."""
    return validate_data(model, read_toml(path), str(path))


MAX_TOML_BYTES = 1024 * 1024
"""Configs are a few kilobytes; a bigger file is a mistake (or an attack on the parser's memory)."""

MAX_TOML_DEPTH = 16
"""Tables and arrays nested deeper than any config needs; very deep nesting exhausts the parser's recursion."""


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dictionary, or a ConfigError naming the file."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from None
    return parse_toml(raw, str(path))


def parse_toml(raw: bytes | str, source: str) -> dict[str, Any]:
    """TOML text (e.g. pushed by the hub) as a dictionary, or a ConfigError naming ``source``."""
    if len(raw) > MAX_TOML_BYTES:
        raise ConfigError(source, [f"larger than {MAX_TOML_BYTES} bytes: not a config file"])
    try:
        data = tomllib.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(source, [f"tables or arrays nested deeper than {MAX_TOML_DEPTH} levels"]) from None
    if _depth(data) > MAX_TOML_DEPTH:
        raise ConfigError(source, [f"tables or arrays nested deeper than {MAX_TOML_DEPTH} levels"])
    return data


def _depth(value: Any) -> int:
    """Nesting depth of tables and arrays, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def validate_data(model: type[ModelT], data: Any, source: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_errors(exc)) from None
