"""The compartment state machine: free, reserved, occupied, out of service.

Codes, door sensor edges, hub commands and timers drive it. Each change is written to SQLite together with
the events describing it (``LockerStore.record``), then the events go to the sink. One lock serialises
everything, because door callbacks, the keypad, the kiosk and the command router run on different threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from edge_agent.events import EventSink, HandoffSink
from edge_agent.lockers.alarms import AlarmBook, due_alarms
from edge_agent.lockers.clock import Clock
from edge_agent.lockers.codes import Lockout, find_code
from edge_agent.lockers.config import LockersConfig
from edge_agent.lockers.hardware import Signal
from edge_agent.lockers.store import CompartmentRow, LockerStore, PendingOpen
from hub_protocol.alarms import AlarmKind
from hub_protocol.commands import PURPOSE_STATE
from hub_protocol.lockers import CodePurpose, CompartmentState
from hub_protocol.topics import Channel

log = logging.getLogger(__name__)

FREE, RESERVED, OCCUPIED, OUT = (
    CompartmentState.FREE,
    CompartmentState.RESERVED,
    CompartmentState.OCCUPIED,
    CompartmentState.OUT_OF_SERVICE,
)
KEEP_EXPIRED = timedelta(days=7)
"""Expired codes are kept this long so a resident is told "expired" rather than "wrong"."""
PRUNE_EVERY = timedelta(hours=1)
"""How often door and state history older than ``timing.history_days`` is deleted."""


class BankIO(Protocol):
    """What the machine needs from the hardware (``LockerHardware`` in the field)."""

    def release(self, number: int, seconds: float) -> None: ...
    def relock(self, number: int) -> None: ...
    def door_closed(self, number: int) -> bool: ...
    def occupied(self, number: int) -> bool | None: ...
    def indicate(self, number: int, on: bool) -> None: ...
    def signal(self, kind: Signal) -> None: ...


Result = Literal[
    "opened", "wrong", "expired", "used", "not-ready", "out-of-service", "locked-out", "busy", "unavailable"
]


@dataclass(frozen=True, slots=True)
class CodeOutcome:
    """What happened to a typed code; the keypad beeps and the kiosk words it for the resident."""

    result: Result
    compartment: int | None = None
    purpose: CodePurpose | None = None
    attempts_left: int | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class CompartmentView:
    number: int
    state: CompartmentState
    reservation: str | None
    door_open: bool
    opening: bool


class LockerMachine:
    def __init__(self, config: LockersConfig, store: LockerStore, io: BankIO, sink: EventSink, clock: Clock) -> None:
        self.config = config
        self.store = store
        self.io = io
        self.sink = sink
        self.clock = clock
        self.lockout = Lockout(store, config.lockout)
        self.alarms = AlarmBook(store)
        self._lock = threading.RLock()
        self._started = False
        self._pruned_at: datetime | None = None
        self._handed: set[int] = set()
        self.listeners: list[Callable[[CodeOutcome], None]] = []
        """Told every code outcome (the kiosk shows keypad entries too; the scripted resident waits on it)."""

    # ----- helpers
    def _row(self, number: int) -> CompartmentRow:
        row = self.store.compartment(number)
        if row is None:
            raise KeyError(number)
        return row

    def _event(
        self,
        now: datetime,
        row: CompartmentRow,
        previous: CompartmentState | None,
        cause: str,
        reservation: str | None = None,
        operator: str | None = None,
    ) -> None:
        self.store.record(
            Channel.LOCKER,
            {
                # Whole seconds: the hub's door timers start at 10 s and events are ordered by sequence
                # number, so sub-second times would only say more about when a person stood at the locker.
                "at": now.replace(microsecond=0).isoformat(),
                "compartment": row.number,
                "state": row.state.value,
                "previous": None if previous is None else previous.value,
                "cause": cause,
                "reservation": reservation if reservation is not None else row.reservation,
                "operator": operator,
                "door_open": row.door_open,
            },
        )

    def _alarm(self, now: datetime, kind: AlarmKind, number: int | None, active: bool, detail: str = "") -> None:
        self.alarms.set(now, kind, number, active, detail)

    def flush(self) -> None:
        """Hand stored events to the sink in order; keep any it refuses for the next try.

        Exactly once with the outbox: each event goes with its id as hand-over key, written in the outbox's
        transaction; after a crash between that and ``delete_event``, the outbox's mark says it was taken."""
        with self._lock:
            try:
                self._flush()
            except Exception as exc:
                if not self.store.watch.failed("lockers", exc):
                    log.exception("locker events not handed over; kept for the next try")

    def _flush(self) -> None:
        handed_upto = getattr(self.sink, "handed_upto", None)
        source = self.store.handoff_source
        upto = handed_upto(source) if callable(handed_upto) else None
        for event_id, channel, fields in self.store.pending_events():
            # At or below ``upto``: taken before a crash (or a failed delete) cut this loop short.
            if event_id not in self._handed and (upto is None or event_id > upto):
                try:
                    if upto is None:
                        self.sink.emit(channel, fields)
                    else:
                        cast(HandoffSink, self.sink).emit(channel, fields, handoff=(source, event_id))
                except Exception as exc:
                    if not self.store.watch.failed("outbox", exc):
                        log.exception("locker event not accepted by the sink; kept for the next try")
                    return
                # Stored by the sink: never again, even if the delete below fails (a full disk).
                self._handed.add(event_id)
            self.store.delete_event(event_id)
            self._handed.discard(event_id)

    # ----- start
    def recover(self) -> None:
        """Load state, reconcile it with what the door sensors read now, and report every compartment."""
        with self._lock:
            now = self.clock.now()
            with self.store.transaction():
                for c in self.config.compartments:
                    self._recover_one(now, c.number)
                if self.lockout.ended(now):
                    self._alarm(now, AlarmKind.LOCKOUT, None, False, "keypad open again")
                damage = self.store.damage_report()
                if damage is not None:
                    # Loud and left to the operator to acknowledge: codes and states may be gone with the file.
                    # Raised anew even when a row copied from the damaged file says it is active.
                    self.alarms.store.set_alarm(AlarmKind.STATE_DAMAGED.value, None, False, now)
                    self._alarm(now, AlarmKind.STATE_DAMAGED, None, True, damage)
            self._started = True
        self.flush()

    def _recover_one(self, now: datetime, number: int) -> None:
        door_open = not self.io.door_closed(number)
        stored = self.store.compartment(number)
        if stored is None:
            row = CompartmentRow(number, FREE, None, None, door_open, now, 0)
            self.store.put_compartment(row)
            self._event(now, row, None, "recovered")
            if door_open:
                self._alarm(now, AlarmKind.FORCED_OPEN, number, True, "door found open at start")
            return
        previous = stored.state
        row = stored
        if row.door_open != door_open:
            row = replace(row, door_open=door_open, door_changed_at=now, opens_without_change=0)
        self.store.put_compartment(row)
        pending = self.store.pending(number)
        cause = "recovered"
        if pending is not None:
            if door_open:
                # The power went while someone had the door open: let the close finish the interaction.
                self.store.put_pending(replace(pending, door_opened=True))
                self.io.indicate(number, True)
            elif pending.door_opened or self.io.occupied(number) is not None:
                row, finished = self._finish(row, pending)
                cause = "recovered-" + finished
            else:
                # Unknown whether the door moved while the power was off: assume not, the code stays valid.
                if pending.code_id is not None:
                    self.store.set_code_used(pending.code_id, None)
                self.store.delete_pending(number)
                cause = "recovered-open-interrupted"
        elif door_open and not stored.door_open:
            self._alarm(now, AlarmKind.FORCED_OPEN, number, True, "door found open at start, no open was commanded")
        if not door_open:
            self._alarm(now, AlarmKind.FORCED_OPEN, number, False, "door closed")
            self._alarm(now, AlarmKind.DOOR_LEFT_OPEN, number, False, "door closed")
        self._event(now, row, previous, cause)

    # ----- residents
    def enter_code(self, code: str) -> CodeOutcome:
        with self._lock:
            try:
                outcome = self._enter_code(code.strip())
            except Exception as exc:
                # The state file refused the write (a full disk): nothing was opened or used up; say so and
                # let the resident try again rather than leave the keypad or the kiosk without an answer.
                if not self.store.watch.failed("lockers", exc):
                    log.exception("code check failed")
                outcome = CodeOutcome("unavailable")
        self.io.signal("ok" if outcome.result == "opened" else "lockout" if outcome.retry_after_s else "error")
        self.flush()
        for listener in list(self.listeners):
            listener(outcome)
        return outcome

    def _enter_code(self, code: str) -> CodeOutcome:
        now = self.clock.now()
        wait = self.lockout.retry_after(now)
        if wait is not None:
            return CodeOutcome("locked-out", retry_after_s=wait)
        with self.store.transaction():
            row = find_code(self.store, code)
            if row is None:
                change = self.lockout.failed(now)
                if change.recent >= self.config.lockout.guessing_alarm_codes:
                    hours = self.config.lockout.guessing_window_s / 3600
                    self._alarm(
                        now,
                        AlarmKind.CODE_GUESSING,
                        None,
                        True,
                        f"{change.recent} wrong codes within {hours:g} h: someone may be guessing codes slowly",
                    )
                if change.started_s is not None:
                    self._alarm(
                        now,
                        AlarmKind.LOCKOUT,
                        None,
                        True,
                        f"{self.store.lockout().failures} wrong codes in a row; keypad locked for "
                        f"{change.started_s:.0f} s",
                    )
                    return CodeOutcome("locked-out", attempts_left=0, retry_after_s=change.started_s)
                return CodeOutcome("wrong", attempts_left=change.attempts_left)
            # Only an open resets the count: a known old code must not let a guesser start afresh.
            if row.used_at is not None:
                return CodeOutcome("used", row.compartment, row.purpose)
            if now >= row.expires_at:
                return CodeOutcome("expired", row.compartment, row.purpose)
            comp = self.store.compartment(row.compartment)
            if comp is None:
                return CodeOutcome("not-ready", row.compartment, row.purpose)
            if comp.state is OUT:
                return CodeOutcome("out-of-service", row.compartment, row.purpose)
            if comp.state is not PURPOSE_STATE[row.purpose] or comp.reservation != row.reservation:
                return CodeOutcome("not-ready", row.compartment, row.purpose)
            if self.store.pending(row.compartment) is not None:
                return CodeOutcome("busy", row.compartment, row.purpose)
            self.lockout.succeeded()
            self.store.set_code_used(row.id, now)
            # A door already open (forced, or never shut) counts as opened: closing it completes the visit.
            self.store.put_pending(PendingOpen(row.compartment, "code", row.id, None, now, comp.door_open))
            self._event(now, comp, comp.state, f"unlock-{row.purpose.value}")
        if comp.door_open:
            self.io.indicate(row.compartment, True)  # nothing to release: just show which door to close
        else:
            self._release(row.compartment)
        return CodeOutcome("opened", row.compartment, row.purpose)

    def _release(self, number: int) -> None:
        self.io.release(number, self.config.compartment(number).pulse_s)
        self.io.indicate(number, True)

    # ----- doors
    def on_door(self, number: int, closed: bool) -> None:
        """A door sensor edge (from the hardware callback or the tick's poll); repeated readings are ignored."""
        with self._lock:
            if not self._started:
                return
            now = self.clock.now()
            with self.store.transaction():
                row = self._row(number)
                if row.door_open == (not closed):
                    return
                row = replace(row, door_open=not closed, door_changed_at=now, opens_without_change=0)
                self.store.put_compartment(row)
                self._alarm(now, AlarmKind.SENSOR_FAULT, number, False, "door sensor changed again")
                pending = self.store.pending(number)
                if not closed:
                    self._door_opened(now, row, pending)
                else:
                    self._door_closed(now, row, pending)
        self.flush()

    def _door_opened(self, now: datetime, row: CompartmentRow, pending: PendingOpen | None) -> None:
        if pending is None:
            self._alarm(now, AlarmKind.FORCED_OPEN, row.number, True, "door opened while locked")
            self._event(now, row, row.state, "forced-open")
            return
        if not pending.door_opened:
            self.store.put_pending(replace(pending, door_opened=True))
            self.io.relock(row.number)  # the latch has done its job; do not keep the coil energised
            self._alarm(now, AlarmKind.OPEN_NOT_OPENED, row.number, False, "door opened")
        self._event(now, row, row.state, "door-opened", operator=pending.operator)

    def _door_closed(self, now: datetime, row: CompartmentRow, pending: PendingOpen | None) -> None:
        self._alarm(now, AlarmKind.DOOR_LEFT_OPEN, row.number, False, "door closed")
        self._alarm(now, AlarmKind.FORCED_OPEN, row.number, False, "door closed")
        if pending is None or not pending.door_opened:
            self._event(now, row, row.state, "door-closed")
            return
        previous = row.state
        reservation = row.reservation
        row, cause = self._finish(row, pending)
        self._event(now, row, previous, cause, reservation=reservation, operator=pending.operator)

    def _finish(self, row: CompartmentRow, pending: PendingOpen) -> tuple[CompartmentRow, str]:
        """The door closed after an authorised open: apply what the open was for."""
        self.store.delete_pending(row.number)
        self.io.indicate(row.number, False)
        self.io.relock(row.number)
        code = None if pending.code_id is None else self.store.code(pending.code_id)
        if code is None:
            return row, "maintenance-closed" if pending.kind == "maintenance" else "door-closed"
        occupied = self.io.occupied(row.number)
        if code.purpose is CodePurpose.DROPOFF:
            if occupied is False:
                self.store.set_code_used(code.id, None)  # nothing went in: the courier may try again
                return row, "dropoff-empty"
            target, reservation = OCCUPIED, row.reservation
        else:
            if occupied is True:
                self.store.set_code_used(code.id, None)
                return row, f"{code.purpose.value}-not-emptied"
            self.store.delete_codes(code.reservation)
            target, reservation = FREE, None
        if row.state is OUT:
            # Taken out of service while the door was open: the visit still counts, the service mark stays.
            row = replace(row, before_service=target, reservation=reservation)
        else:
            row = replace(row, state=target, reservation=reservation)
        self.store.put_compartment(row)
        return row, code.purpose.value

    # ----- timers
    def tick(self) -> None:
        """Poll the doors (in case an edge was missed) and run every timer; called a few times a second."""
        with self._lock:
            if not self._started:
                return
            for c in self.config.compartments:
                closed = self.io.door_closed(c.number)
                if self._row(c.number).door_open == closed:
                    self.on_door(c.number, closed)
            now = self.clock.now()
            with self.store.transaction():
                for c in self.config.compartments:
                    self._tick_one(now, c.number)
                if self.lockout.ended(now):
                    self._alarm(now, AlarmKind.LOCKOUT, None, False, "keypad open again")
                if not self.lockout.guessing(now):
                    self._alarm(now, AlarmKind.CODE_GUESSING, None, False, "wrong codes back to a normal level")
                self.store.purge_codes(now - KEEP_EXPIRED)
                if self._pruned_at is None or not timedelta(0) <= now - self._pruned_at < PRUNE_EVERY:
                    self.store.prune_transitions(now - timedelta(days=self.config.timing.history_days))
                    self._pruned_at = now
        self.flush()

    def _tick_one(self, now: datetime, number: int) -> None:
        timing = self.config.timing
        row = self._row(number)
        pending = self.store.pending(number)
        waited = None if pending is None else (now - pending.started_at).total_seconds()
        if (
            pending is not None
            and not pending.door_opened
            and waited is not None
            and waited >= timing.open_not_opened_s
        ):
            self.io.relock(number)
            self.io.indicate(number, False)
            self.store.delete_pending(number)
            if pending.code_id is not None:
                self.store.set_code_used(pending.code_id, None)  # nobody got in: the code stays valid
            row = replace(row, opens_without_change=row.opens_without_change + 1)
            self.store.put_compartment(row)
            self._alarm(
                now,
                AlarmKind.OPEN_NOT_OPENED,
                number,
                True,
                f"released but the door did not open within {timing.open_not_opened_s:.0f} s; locked again",
            )
            self._event(now, row, row.state, "not-opened", operator=pending.operator)
        for kind, detail in due_alarms(now, row, timing):
            self._alarm(now, kind, number, True, detail)

    # ----- hub commands (each returns done/failed and a plain-language detail)
    def open_for_maintenance(self, number: int, operator: str | None) -> tuple[bool, str]:
        with self._lock:
            now = self.clock.now()
            with self.store.transaction():
                row = self.store.compartment(number)
                if row is None:
                    return False, f"there is no compartment {number}"
                if row.door_open:
                    return True, f"compartment {number} is already open"
                pending = self.store.pending(number)
                if pending is not None and pending.code_id is not None:
                    self.store.set_code_used(pending.code_id, None)
                self.store.put_pending(PendingOpen(number, "maintenance", None, operator, now, False))
                self._event(now, row, row.state, "unlock-maintenance", operator=operator)
            self._release(number)
        self.flush()
        return True, f"compartment {number} released for {self.config.compartment(number).pulse_s:g} s"

    def set_service(self, number: int, in_service: bool, operator: str | None) -> tuple[bool, str]:
        with self._lock:
            now = self.clock.now()
            with self.store.transaction():
                row = self.store.compartment(number)
                if row is None:
                    return False, f"there is no compartment {number}"
                previous = row.state
                if not in_service:
                    if row.state is OUT:
                        return True, f"compartment {number} is already out of service"
                    row = replace(row, state=OUT, before_service=row.state)
                    cause = "service"
                else:
                    if row.state is not OUT:
                        return True, f"compartment {number} is already in service"
                    back = row.before_service or FREE
                    row = replace(row, state=back, before_service=None)
                    cause = "back-in-service"
                self.store.put_compartment(row)
                self._event(now, row, previous, cause, operator=operator)
        self.flush()
        return True, f"compartment {number} is now {row.state.value}"

    def set_reservation(
        self,
        number: int,
        reservation: str,
        purpose: CodePurpose,
        salt: str,
        sha256: str,
        expires_at: datetime,
        operator: str | None,
    ) -> tuple[bool, str]:
        with self._lock:
            now = self.clock.now()
            if expires_at <= now:
                return False, "the code has already expired"
            target = PURPOSE_STATE[purpose]
            with self.store.transaction():
                row = self.store.compartment(number)
                if row is None:
                    return False, f"there is no compartment {number}"
                if row.state is OUT:
                    return False, f"compartment {number} is out of service"
                if row.reservation not in (None, reservation):
                    return False, f"compartment {number} holds another reservation"
                # A drop-off may start from free; pickup and return codes only make sense for a filled compartment
                # (a late pickup code must not turn a free compartment back into an occupied one).
                allowed = (FREE, RESERVED) if purpose is CodePurpose.DROPOFF else (OCCUPIED,)
                if row.state not in allowed:
                    return (
                        False,
                        f"compartment {number} is {row.state.value}; a {purpose.value} code needs {target.value}",
                    )
                others = [n for n in self.store.holding(reservation) if n != number]
                if others:
                    return False, f"reservation {reservation} is in compartment {others[0]}"
                self.store.add_code(reservation, number, purpose, salt, sha256, expires_at)
                if purpose is CodePurpose.RETURN:
                    self.store.delete_code(reservation, CodePurpose.PICKUP)  # uncollected: the resident's code ends
                previous = row.state
                row = replace(row, state=target, reservation=reservation)
                self.store.put_compartment(row)
                self._event(now, row, previous, f"reservation-{purpose.value}", operator=operator)
        self.flush()
        return True, f"compartment {number} {target.value} for {reservation}; {purpose.value} code stored"

    def cancel_reservation(self, reservation: str, operator: str | None) -> tuple[bool, str]:
        with self._lock:
            now = self.clock.now()
            with self.store.transaction():
                numbers = self.store.holding(reservation)
                self.store.delete_codes(reservation)
                if not numbers:
                    return False, f"no compartment holds reservation {reservation}"
                number = numbers[0]
                row = self._row(number)
                pending = self.store.pending(number)
                if pending is not None and pending.code_id is not None:
                    self.store.delete_pending(number)
                    self.io.relock(number)
                    self.io.indicate(number, False)
                previous = row.state
                was = row.state if row.state is not OUT else row.before_service
                if row.state is OUT:
                    row = replace(row, reservation=None, before_service=FREE)
                else:
                    row = replace(row, state=FREE, reservation=None)
                self.store.put_compartment(row)
                self._event(now, row, previous, "cancel", reservation=reservation, operator=operator)
        self.flush()
        warning = "; something may still be inside: open it for maintenance" if was is OCCUPIED else ""
        return True, f"reservation {reservation} cancelled, compartment {number} freed{warning}"

    # ----- views
    def views(self) -> list[CompartmentView]:
        with self._lock:
            result = []
            for c in self.config.compartments:
                row = self._row(c.number)
                opening = self.store.pending(c.number) is not None
                result.append(CompartmentView(c.number, row.state, row.reservation, row.door_open, opening))
            return result

    def view(self, number: int) -> CompartmentView | None:
        return next((v for v in self.views() if v.number == number), None)

    def history(self, number: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return self.store.history(number)
