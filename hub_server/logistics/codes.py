"""Locker codes: random digits from ``secrets``, shown once, kept only as salted SHA-256 hashes.

The device verifies codes offline against the same ``CodeHash`` the hub keeps, so both sides use one hash:
``sha256(salt_bytes + code_digits)``. A short code's hash can be brute-forced by whoever holds it, so the
protection a code gets comes from elsewhere as well: it is single-use, expires, and the keypad locks out
after wrong guesses; the hash only keeps the digits out of logs, backups and casual reading.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from hub_protocol import lockers as contract
from hub_protocol.commands import CodeHash
from hub_protocol.lockers import CODE_MIN_DIGITS, SALT_BYTES, is_code_format

_MAX_TRIES = 1000


@dataclass(frozen=True, slots=True)
class StoredHash:
    """What the hub keeps of a code: the salt and the hash, both hex."""

    salt: str
    sha256: str

    def to_wire(self, expires_at: datetime) -> CodeHash:
        return CodeHash(salt=self.salt, sha256=self.sha256, expires_at=expires_at)


def code_digest(salt_hex: str, code: str) -> str:
    """The contract's hash (``hub_protocol.lockers.hash_code``), which the device computes too."""
    return contract.hash_code(bytes.fromhex(salt_hex), code)


def hash_code(code: str) -> StoredHash:
    salt = secrets.token_hex(SALT_BYTES)
    return StoredHash(salt, code_digest(salt, code))


def matches(code: str, stored: StoredHash) -> bool:
    """Constant-time comparison, like the device's."""
    if not is_code_format(code):
        return False
    return hmac.compare_digest(code_digest(stored.salt, code), stored.sha256)


def _too_simple(code: str) -> bool:
    # Guessers try 000000 and 123456 first; excluding these few costs a negligible share of the space.
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(code)}
    return len(steps) == 1 and steps <= {0, 1, 9}


def generate_code(digits: int, taken: Iterable[StoredHash] = ()) -> str:
    """A fresh code of ``digits`` digits that matches none of ``taken`` (the device's other live codes)."""
    if digits < CODE_MIN_DIGITS:
        raise ValueError(f"codes need at least {CODE_MIN_DIGITS} digits, got {digits}")
    live = list(taken)
    for _ in range(_MAX_TRIES):
        code = f"{secrets.randbelow(10**digits):0{digits}d}"
        if _too_simple(code) or any(matches(code, other) for other in live):
            continue
        return code
    raise RuntimeError("could not find a free code: too many live codes for the code length")


def link_token(key: bytes, delivery_id: str) -> str:
    """A resident's link token: an HMAC of the delivery id under the hub's key. As unguessable as a random token,
    yet the hub can put the link in later messages without keeping the token; only its hash is stored."""
    mac = hmac.new(key, f"resident-link:{delivery_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _pad(key: bytes, delivery_id: str, nonce: str, length: int) -> bytes:
    return hmac.new(key, f"pickup-code:{delivery_id}:{nonce}".encode(), hashlib.sha256).digest()[:length]


def seal(key: bytes, delivery_id: str, code: str) -> str:
    """Encrypt a pickup code until the resident reveals it: a one-time pad from HMAC (a PRF) over a fresh nonce.
    Integrity comes from the stored salted hash, which the unsealed code must match."""
    nonce = secrets.token_hex(16)
    data = code.encode("ascii")
    sealed = bytes(a ^ b for a, b in zip(data, _pad(key, delivery_id, nonce, len(data)), strict=True))
    return f"{nonce}:{sealed.hex()}"


def unseal(key: bytes, delivery_id: str, sealed: str) -> str:
    nonce, _, body = sealed.partition(":")
    data = bytes.fromhex(body)
    plain = bytes(a ^ b for a, b in zip(data, _pad(key, delivery_id, nonce, len(data)), strict=True))
    return plain.decode("ascii", errors="replace")
