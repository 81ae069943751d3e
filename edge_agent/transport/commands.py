"""Commands from the hub: validated, refused when expired or replayed, executed at most once, answered.

A command id is written to disk (synchronous=FULL) *before* its handler runs: a crash during execution
leaves the id marked as seen, so the command is never executed twice, even across restarts; it may be
executed zero times, which the hub learns from the missing result. Ids are forgotten a day after their
expiry, when an expired command would be refused anyway.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.events import CommandHandler, EventSink
from edge_agent.storage import copy_readable, open_database
from hub_protocol.codec import ProtocolError, decode
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import Channel, check_identifier

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(days=1)
"""Margin beyond a command's expiry for clocks that disagree; after it the id is dropped from disk."""


def _create(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS seen_commands (id TEXT PRIMARY KEY, expires_at REAL NOT NULL, seen_at REAL NOT NULL)"
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    command_id: str | None
    status: ResultStatus
    detail: str


class CommandRouter:
    """Dispatches ``Command`` payloads by ``action`` to the registered handlers; answers through ``sink``."""

    def __init__(
        self, device: str, sink: EventSink, state_path: Path, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.device = device
        self.sink = sink
        self._clock = clock
        self._handlers: dict[str, CommandHandler] = {}
        self._lock = threading.Lock()
        self._conn, damage = open_database(state_path, _create)
        if damage is not None:
            # Lost: the ids of recent commands, so one still unexpired could run a second time if replayed.
            kept = copy_readable(self._conn, damage.moved_to, ["seen_commands"]).get("seen_commands", 0)
            detail = f"{state_path.name} was damaged; moved to {damage.moved_to.name}; {kept} command ids recovered"
            sink.emit(Channel.ALARM, {"alarm": "state-damaged", "active": True, "at": clock(), "detail": detail})
        self._forget_old()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=100)
        self._thread: threading.Thread | None = None

    def register(self, action: str, handler: CommandHandler) -> None:
        """One handler per action (``hub_protocol.commands``); registering twice is a programming error."""
        if action in self._handlers:
            raise ValueError(f"a handler for {action!r} is already registered")
        self._handlers[action] = handler

    # -- asynchronous use: the network thread submits, a worker executes ---------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="commands", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, payload: bytes) -> None:
        """Called from the MQTT thread: handlers may be slow (a lock pulse), so they run elsewhere."""
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.warning("command queue full: command ignored (the hub sees no result and may retry with a new id)")

    def _work(self) -> None:
        while (payload := self._queue.get()) is not None:
            try:
                self.handle(payload)
            except Exception:
                log.exception("command handling failed")

    # -- the decision --------------------------------------------------------------------------------------

    def handle(self, payload: bytes) -> Outcome:
        """Decide, execute at most once, answer with a CommandResult event; returns what was answered."""
        try:
            command = decode(Channel.COMMAND, payload)
        except ProtocolError as exc:
            return self._answer(_salvage_id(payload), ResultStatus.REFUSED_INVALID, exc.reason)
        command_id: str = command.id
        if command.device != self.device:
            return self._answer(command_id, ResultStatus.REFUSED_INVALID, f"command is for device {command.device}")
        now = self._clock()
        with self._lock:
            if self._seen(command_id):
                return self._answer(command_id, ResultStatus.REFUSED_REPLAY, "this command id was already received")
            if command.expires_at <= now:
                return self._answer(
                    command_id, ResultStatus.REFUSED_EXPIRED, f"expired at {command.expires_at.isoformat()}"
                )
            self._remember(command_id, command.expires_at, now)
        handler = self._handlers.get(command.action)
        if handler is None:
            return self._answer(
                command_id, ResultStatus.REFUSED_INVALID, f"this device has no {command.action} function"
            )
        try:
            status, detail = handler(command)
        except Exception as exc:
            log.exception("handler for %s failed", command.action)
            status, detail = ResultStatus.FAILED, f"{type(exc).__name__}: {exc}"
        return self._answer(command_id, status, detail)

    def _answer(self, command_id: str | None, status: ResultStatus, detail: str) -> Outcome:
        outcome = Outcome(command_id, status, detail[:500])
        if command_id is None:
            log.warning("unanswerable command (no valid id): %s", detail)
            return outcome
        log.info("command %s: %s %s", command_id, status.value, detail)
        self.sink.emit(
            Channel.RESULT, {"command_id": command_id, "status": status, "detail": outcome.detail, "at": self._clock()}
        )
        return outcome

    def _seen(self, command_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM seen_commands WHERE id = ?", (command_id,)).fetchone() is not None

    def _remember(self, command_id: str, expires_at: datetime, now: datetime) -> None:
        self._conn.execute(
            "INSERT INTO seen_commands (id, expires_at, seen_at) VALUES (?, ?, ?)",
            (command_id, expires_at.timestamp(), now.timestamp()),
        )
        self._forget_old()

    def _forget_old(self) -> None:
        cutoff = (self._clock() - FORGET_AFTER).timestamp()
        self._conn.execute("DELETE FROM seen_commands WHERE expires_at < ?", (cutoff,))

    def close(self) -> None:
        self.stop()
        self._conn.close()


def _salvage_id(payload: bytes) -> str | None:
    """The id of an invalid command, when it has a usable one, so the refusal can name it."""
    try:
        data: Any = json.loads(payload)
        value = data.get("id") if isinstance(data, dict) else None
        return check_identifier(value, "id") if isinstance(value, str) else None
    except (ValueError, UnicodeDecodeError):
        return None
