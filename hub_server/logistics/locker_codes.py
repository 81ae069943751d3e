"""The codes of a delivery: the resident's link token, the pickup code kept sealed until revealed once, return
codes for expired items (``codes`` makes and hashes them; the device gets only hashes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hub_protocol.commands import CommandBase
from hub_server.logistics import codes
from hub_server.logistics.lockers import Lockers
from hub_server.logistics.models import DeliveryStatus, IssuedCode, LogisticsError, NotFound, token_hash
from hub_server.store import logistics as store

RESIDENT_PATH = "/r/"
"""Residents' pages live under ``{public_url}/r/{token}``."""


def delivery_by_token(conn: Any, token: str) -> store.DeliveryRow | None:
    # A token of another length is no link of ours: no lookup.
    return store.delivery_by_token(conn, token_hash(token)) if 20 <= len(token) <= 100 else None


class LockerCodes(Lockers):
    def resident_link(self, token: str) -> str:
        return f"{self.public_url}{RESIDENT_PATH}{token}"

    def issue_return_code(self, delivery_id: str, operator: str | None = None) -> IssuedCode:
        """A fresh return code for an expired item (replaces the previous one on the device); shown once."""
        with self.db.write() as conn:
            row = self._row(conn, delivery_id)
            if row.status != DeliveryStatus.EXPIRED:
                raise LogisticsError(f"delivery {delivery_id} is {row.status}: return codes are for expired items")
            issued, command = self._new_return_code(conn, row, operator)
            self._audit(conn, operator, "code.issue", delivery_id, {"purpose": "return"})
        self._publish([command])
        return issued

    def reveal_pickup_code(self, token: str) -> str:
        """The pickup code, once, to the resident's page when the item is ready; the hub forgets it right after."""
        with self.db.write() as conn:
            row = delivery_by_token(conn, token)
            if row is None:
                raise NotFound("unknown link")
            if row.status != DeliveryStatus.READY:
                raise LogisticsError(f"the code is shown when the item is ready for pickup; it is {row.status}")
            if row.pickup_sealed is None:
                raise LogisticsError("the pickup code was shown once already; ask the hub's operator for help")
            code = self._unseal(row.id, row.pickup_sealed)
            stored = store.get_code(conn, row.id, "pickup")
            if stored is None or not codes.matches(code, stored):
                raise LogisticsError("the pickup code cannot be recovered (the hub's key changed); ask the operator")
            store.update_delivery(conn, row.id, pickup_sealed=None, pickup_revealed_at=self.clock())
        return code

    def _new_return_code(
        self, conn: Any, row: store.DeliveryRow, operator: str | None
    ) -> tuple[IssuedCode, CommandBase]:
        now = self.clock()
        code = codes.generate_code(self.config.code_digits, store.live_codes(conn, row.device))
        stored = codes.hash_code(code)
        store.put_code(conn, row.id, "return", stored, now)
        expires = now + timedelta(days=self.config.return_days)
        command = self._reservation(conn, row.id, row.device, row.compartment, "return", stored, expires, operator)
        return IssuedCode(delivery=row.id, purpose="return", code=code, expires_at=expires), command

    def _token_for(self, delivery_id: str) -> str:
        return codes.link_token(self._link_key, delivery_id)

    def _seal(self, delivery_id: str, code: str) -> str:
        return codes.seal(self._link_key, delivery_id, code)

    def _unseal(self, delivery_id: str, sealed: str) -> str:
        return codes.unseal(self._link_key, delivery_id, sealed)

    def _link_for(self, row: store.DeliveryRow) -> str | None:
        if row.personal_data_deleted_at is not None:
            return None
        return self.resident_link(self._token_for(row.id))
