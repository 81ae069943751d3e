"""Handlers for the hub's locker commands. The transport's command router has already refused expired and
replayed ones; each handler returns (status, plain-language detail) for the ``CommandResult`` event."""

from __future__ import annotations

from edge_agent.events import CommandHandler, CommandOutcome
from edge_agent.lockers.machine import LockerMachine
from hub_protocol.commands import LockerOpen, LockerSetService, ReservationCancel, ReservationSet
from hub_protocol.envelope import ResultStatus


def _status(ok: bool, detail: str) -> CommandOutcome:
    return (ResultStatus.DONE if ok else ResultStatus.FAILED), detail


def locker_handlers(machine: LockerMachine) -> dict[str, CommandHandler]:
    """One handler per locker ``action`` of ``hub_protocol.commands``."""

    def locker_open(command: LockerOpen) -> CommandOutcome:
        return _status(*machine.open_for_maintenance(command.compartment, command.operator))

    def locker_service(command: LockerSetService) -> CommandOutcome:
        return _status(*machine.set_service(command.compartment, command.in_service, command.operator))

    def reservation_set(command: ReservationSet) -> CommandOutcome:
        code = command.code
        return _status(
            *machine.set_reservation(
                command.compartment,
                command.reservation,
                command.purpose,
                code.salt,
                code.sha256,
                code.expires_at,
                command.operator,
            )
        )

    def reservation_cancel(command: ReservationCancel) -> CommandOutcome:
        return _status(*machine.cancel_reservation(command.reservation, command.operator))

    def typed(kind: type[object], handler: CommandHandler) -> CommandHandler:
        def run(command: object) -> CommandOutcome:
            if not isinstance(command, kind):
                return ResultStatus.REFUSED_INVALID, f"expected {kind.__name__}, got {type(command).__name__}"
            return handler(command)

        return run

    return {
        "locker-open": typed(LockerOpen, locker_open),
        "locker-service": typed(LockerSetService, locker_service),
        "reservation-set": typed(ReservationSet, reservation_set),
        "reservation-cancel": typed(ReservationCancel, reservation_cancel),
    }
