"""The TOML the programs write must read back through tomllib exactly, whatever the text holds."""

from __future__ import annotations

import tomllib
from pathlib import PurePosixPath
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub_protocol.tomlwrite import dumps


def test_non_ascii_keys_and_control_characters_round_trip() -> None:
    data: dict[str, Any] = {
        "straße": "Ærø\u00e9",
        "device": {"id": "dev-1", "note": "tab\tbell\x07del\x7fnul-free\x1f", "ünits": [1, 2]},
        "lockers": {"compartments": [{"number": 1, "name": "ä"}, {"number": 2, "name": "line\nbreak"}]},
        "weird key with spaces": True,
    }
    assert tomllib.loads(dumps(data)) == data


def test_none_is_left_out_and_paths_become_strings() -> None:
    text = dumps({"a": None, "b": {"c": None, "d": PurePosixPath("/var/lib/x")}, "e": [1, None]})
    assert tomllib.loads(text) == {"b": {"d": "/var/lib/x"}, "e": [1]}


_scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))
_tables = st.recursive(
    st.dictionaries(st.text(min_size=1, max_size=10), _scalars, max_size=4),
    lambda inner: st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_tables)
def test_any_table_of_any_text_round_trips(data: dict[str, Any]) -> None:
    assert tomllib.loads(dumps(data)) == data
