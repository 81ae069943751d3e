"""Codes: enough digits, random, unique among a device's live codes, and hashed the way the device checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub_protocol import lockers as contract
from hub_protocol.lockers import CodePurpose
from hub_server.logistics import codes


def test_codes_have_the_asked_digits_and_vary() -> None:
    generated = [codes.generate_code(8) for _ in range(300)]
    assert all(re.fullmatch(r"[0-9]{8}", c) for c in generated)
    assert len(set(generated)) == len(generated)  # 300 draws from 10^8: a repeat would mean a broken source
    # Every position sees many digits: no fixed prefix or pattern.
    for position in range(8):
        assert len({c[position] for c in generated}) >= 8


def test_fewer_than_six_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 6"):
        codes.generate_code(5)


def test_trivial_sequences_are_never_issued() -> None:
    assert codes._too_simple("000000")
    assert codes._too_simple("123456")
    assert codes._too_simple("987654")
    assert codes._too_simple("890123")
    assert not codes._too_simple("120456")


def test_new_code_differs_from_every_live_code() -> None:
    # With 6 digits and most of the space taken, the generator must still avoid every taken code.
    taken_codes = [f"{n:06d}" for n in range(0, 1_000_000, 7)][:2000]
    taken = [codes.hash_code(c) for c in taken_codes]
    fresh = {codes.generate_code(6, taken) for _ in range(50)}
    assert not fresh & set(taken_codes)


def test_hash_is_the_contract_hash_with_a_fresh_salt() -> None:
    first = codes.hash_code("40817263")
    second = codes.hash_code("40817263")
    assert first.salt != second.salt and first.sha256 != second.sha256
    assert first.sha256 == contract.hash_code(bytes.fromhex(first.salt), "40817263")
    assert codes.matches("40817263", first)
    assert not codes.matches("40817264", first)
    assert not codes.matches("4081726", first)
    assert not codes.matches("4O817263", first)


def test_hub_hash_matches_the_documented_device_vector() -> None:
    # docs/lockers.md: what the device computes for this salt and code.
    stored = codes.StoredHash("000102030405060708090a0b0c0d0e0f", "0" * 64)
    assert codes.code_digest(stored.salt, "12345678") == (
        "227f81661c2958a647fd2d50b4c59c00e38d65cacef6354368c0e826a80e7d63"
    )


def test_hub_hash_is_found_by_the_device_check(tmp_path: Path) -> None:
    from edge_agent.lockers.codes import find_code
    from edge_agent.lockers.store import LockerStore

    store = LockerStore(tmp_path / "lockers.sqlite3")
    stored = codes.hash_code("40817263")
    wire = stored.to_wire(datetime.now(UTC) + timedelta(days=1))
    store.add_code("d-1", 1, CodePurpose.PICKUP, wire.salt, wire.sha256, wire.expires_at)
    found = find_code(store, "40817263")
    assert found is not None and found.sha256 == stored.sha256
    assert find_code(store, "40817264") is None
