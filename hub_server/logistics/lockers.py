"""Lockers and the commands that reach them: compartments, operator actions (remote open, in or out of
service), commands stored before they are published and sent again until the device answers, its answers.

The base of ``hub_server.logistics.service.Logistics``: it holds the service's state and the helpers every job
shares (a delivery's row, the audit, reservations and cancels as commands).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from hub_protocol.codec import decode, encode
from hub_protocol.commands import (
    CommandBase,
    LockerOpen,
    LockerSetService,
    ReservationCancel,
    ReservationSet,
    command_header,
)
from hub_protocol.envelope import CommandResult, ResultStatus
from hub_protocol.lockers import CodePurpose
from hub_protocol.topics import Channel
from hub_server.accounts import audit
from hub_server.config import LogisticsConfig
from hub_server.logistics import codes
from hub_server.logistics.models import (
    CommandPublisher,
    Compartment,
    LockerSpec,
    LogisticsError,
    NotFound,
    compartment_out,
)
from hub_server.store import logistics as store
from hub_server.store.db import Database

log = logging.getLogger("hub_server.logistics.service")  # one logger for the whole service

RESEND_AFTER = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


class Lockers:
    def __init__(
        self,
        db: Database,
        config: LogisticsConfig,
        publisher: CommandPublisher | None,
        public_url: str,
        link_key: bytes,
        notify: bool | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.config = config
        self.publisher = publisher
        self.public_url = public_url.rstrip("/")
        if len(link_key) < 16:
            raise ValueError("link_key needs at least 16 bytes")
        self._link_key = link_key
        self.notify = config.webhook_url is not None if notify is None else notify
        self.clock = clock

    def set_compartments(self, device: str, spec: LockerSpec, operator: str | None = None) -> list[Compartment]:
        numbers = [c.number for c in spec.compartments]
        if len(numbers) != len(set(numbers)):
            raise LogisticsError("compartments: a number appears twice")
        with self.db.write() as conn:
            for c in spec.compartments:
                store.upsert_compartment(conn, device, c.number, c.size.value, c.accessible)
            if operator is not None:
                audit.record(conn, operator, "locker.configure", f"locker:{device}", {"compartments": len(numbers)})
        return self.compartments(device)

    def compartments(self, device: str | None = None) -> list[Compartment]:
        return [compartment_out(r) for r in store.compartments(self.db.conn, device)]

    def lockers(self) -> dict[str, list[Compartment]]:
        result: dict[str, list[Compartment]] = {}
        for c in self.compartments():
            result.setdefault(c.device, []).append(c)
        return result

    def remote_open(self, device: str, number: int, operator: str) -> str:
        """Open one compartment for maintenance (audited); returns the command id."""
        now = self.clock()
        with self.db.write() as conn:
            if store.compartment(conn, device, number) is None:
                raise NotFound(f"no compartment {number} in locker {device}")
            command = LockerOpen(action="locker-open", **self._header(device, operator, now), compartment=number)
            self._store_command(conn, command, None, "open")
            audit.record(conn, operator, "locker.remote-open", f"locker:{device}/{number}", {"command": command.id})
        self._publish([command])
        return command.id

    def set_in_service(self, device: str, number: int, in_service: bool, operator: str) -> str:
        """Take a compartment out of service or back in (audited); returns the command id."""
        now = self.clock()
        with self.db.write() as conn:
            current = store.compartment(conn, device, number)
            if current is None:
                raise NotFound(f"no compartment {number} in locker {device}")
            if not in_service and current.delivery is not None:
                raise LogisticsError(f"compartment {number} holds {current.delivery}: cancel or finish it first")
            command = LockerSetService(
                action="locker-service",
                **self._header(device, operator, now),
                compartment=number,
                in_service=in_service,
            )
            self._store_command(conn, command, None, "service")
            audit.record(
                conn,
                operator,
                "locker.service",
                f"locker:{device}/{number}",
                {"command": command.id, "in_service": in_service},
            )
        self._publish([command])
        return command.id

    def command_status(self, command_id: str) -> store.CommandRow | None:
        return store.command(self.db.conn, command_id)

    def on_command_result(self, result: CommandResult) -> None:
        carried_out = result.status in (ResultStatus.DONE, ResultStatus.REFUSED_REPLAY)
        with self.db.write() as conn:
            command = store.record_command_result(
                conn, result.command_id, result.device, result.status.value, result.detail, result.at
            )
            if command is not None and command.delivery_id is not None:
                # Operators see the latest refusal on the delivery until a later command succeeds.
                problem = None if carried_out else f"{command.purpose}: {result.status.value}: {result.detail}"[:500]
                store.update_delivery(conn, command.delivery_id, device_problem=problem)
        if not carried_out:
            log.warning(
                "device %s refused command %s: %s %s", result.device, result.command_id, result.status, result.detail
            )

    def resend_pending(self) -> int:
        """Publish commands never sent (broker was down) or sent long ago without an answer; returns how many."""
        if self.publisher is None:
            return 0
        now = self.clock()
        pending = store.commands_to_send(self.db.conn, now, now - RESEND_AFTER)
        return sum(self._send(decode(Channel.COMMAND, row.payload.encode())) for row in pending)

    @staticmethod
    def _audit(conn: Any, operator: str | None, action: str, delivery_id: str, detail: dict[str, Any]) -> None:
        # Only actions someone asked for are audited (not the hub's own expiry); ids only, never names.
        if operator is not None:
            audit.record(conn, operator, action, f"delivery:{delivery_id}", detail)

    def _row(self, conn: Any, delivery_id: str) -> store.DeliveryRow:
        row = store.delivery(conn, delivery_id)
        if row is None:
            raise NotFound(f"no delivery {delivery_id!r}")
        return row

    def _reservation(
        self,
        conn: Any,
        delivery_id: str,
        device: str,
        compartment: int,
        purpose: Literal["dropoff", "pickup", "return"],
        code: codes.StoredHash,
        code_expires: datetime,
        operator: str | None,
    ) -> CommandBase:
        command = ReservationSet(
            action="reservation-set",
            **self._header(device, operator, self.clock()),
            compartment=compartment,
            reservation=delivery_id,
            purpose=CodePurpose(purpose),
            code=code.to_wire(code_expires),
        )
        store.set_code_expiry(conn, delivery_id, purpose, code_expires)
        self._store_command(conn, command, delivery_id, purpose)
        return command

    def _cancel_command(self, conn: Any, row: store.DeliveryRow, operator: str | None) -> CommandBase:
        command = ReservationCancel(
            action="reservation-cancel", **self._header(row.device, operator, self.clock()), reservation=row.id
        )
        self._store_command(conn, command, row.id, "cancel")
        return command

    def _header(self, device: str, operator: str | None, now: datetime) -> dict[str, Any]:
        return command_header(device, timedelta(seconds=self.config.command_ttl_s), operator, now=now)

    def _store_command(self, conn: Any, command: CommandBase, delivery_id: str | None, purpose: str) -> None:
        store.insert_command(
            conn,
            command.id,
            delivery_id,
            purpose,
            command.device,
            encode(command).decode(),
            command.issued_at,
            command.expires_at,
        )

    def _publish(self, commands: list[CommandBase]) -> None:
        for command in commands:
            self._send(command)

    def _send(self, command: CommandBase) -> bool:
        if self.publisher is None:
            return False
        try:
            self.publisher.publish_command(command)
        except Exception as exc:  # broker down: the resend loop tries again
            log.warning("command %s to %s not published: %s", command.id, command.device, exc)
            return False
        with self.db.write() as conn:
            store.mark_command_sent(conn, command.id, self.clock())
        return True
