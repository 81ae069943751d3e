"""What ``edge-agent run`` does around the agent so that pushed configs are tried and kept or rolled back.

Wiring (``edge-agent run`` and ``edge_agent.agent.Agent``)::

    lifecycle = ServiceLifecycle(args.config)
    config = lifecycle.load_config()          # the pushed config on trial, or the good one
    agent = Agent(config, lifecycle=lifecycle)  # registers handlers(), calls report() at start, tick() each second
    ...
    return lifecycle.exit_code                # 75 makes systemd start the agent again
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.config import AgentConfig, load_agent_config
from edge_agent.deploy.config_update import (
    DEFAULT_TRIAL_TIMEOUT_S,
    RESTART_EXIT_CODE,
    ConfigCommands,
    ConfigStore,
    StartDecision,
    TrialOutcome,
)
from edge_agent.events import CommandHandler, EventSink
from hub_protocol.envelope import ResultStatus
from hub_protocol.topics import Channel
from hub_protocol.validation import ConfigError

log = logging.getLogger(__name__)


class ServiceLifecycle:
    """One agent process: which config to load, when to restart, what to tell the hub about a trial."""

    def __init__(self, installed: Path, trial_timeout_s: float = DEFAULT_TRIAL_TIMEOUT_S) -> None:
        self.store = ConfigStore.for_installed(installed, trial_timeout_s)
        self.decision: StartDecision | None = None
        self.restart_reason: str | None = None
        self._started = time.monotonic()

    def load_config(self) -> AgentConfig:
        """The config to run with; a pushed config that no longer loads is rolled back at once."""
        self.decision = self.store.begin_start()
        try:
            config = load_agent_config(self.decision.config_path)
        except ConfigError as exc:
            if not self.decision.trial:
                raise
            self.store.rollback("it does not load: " + "; ".join(exc.problems))
            self.decision = self.store.begin_start()
            config = load_agent_config(self.decision.config_path)
        if self.decision.trial:
            log.warning("running pushed config %s on trial", self.decision.config_path)
        if self.decision.rolled_back:
            log.error("%s", self.decision.rolled_back)
        self._started = time.monotonic()
        return config

    def handlers(self, current: Callable[[], AgentConfig]) -> dict[str, CommandHandler]:
        """``push-config`` and ``reload-config`` for the command router."""
        return ConfigCommands(self.store, current, self._request_restart).handlers()

    def _request_restart(self, reason: str) -> None:
        log.info("restart requested: %s", reason)
        self.restart_reason = reason

    def request_restart(self, reason: str) -> None:
        """Ask the main loop to stop and exit with ``RESTART_EXIT_CODE`` (lines saved on the setup page)."""
        self._request_restart(reason)

    def report(self, sink: EventSink) -> None:
        """After start: a roll-back that happened before this start becomes a ``failed`` result of its push."""
        decision = self.decision
        if decision is not None and decision.rolled_back and decision.command:
            _result(sink, decision.command, ResultStatus.FAILED, decision.rolled_back)

    def tick(self, healthy: bool, sink: EventSink | None = None) -> bool:
        """Call once a second from the main loop; True when the agent should stop now to be restarted."""
        on_trial = self.decision is not None and self.decision.trial
        command = self.decision.command if self.decision is not None else None
        # Only the process started with the pushed config may judge it (not the one that received the push).
        outcome = self.store.settle(healthy, time.monotonic() - self._started) if on_trial else TrialOutcome.NONE
        if outcome is TrialOutcome.CONFIRMED:
            log.info("pushed config confirmed")
            if sink is not None and command:
                _result(sink, command, ResultStatus.DONE, "the agent runs healthy with the pushed config")
        elif outcome is TrialOutcome.ROLLED_BACK:
            self._request_restart(f"pushed config {command or ''} not healthy in time: rolling back")
        return self.restart_reason is not None

    @property
    def exit_code(self) -> int:
        return RESTART_EXIT_CODE if self.restart_reason is not None else 0


def _result(sink: EventSink, command: str, status: ResultStatus, detail: str) -> None:
    sink.emit(
        Channel.RESULT,
        {"command_id": command, "status": status.value, "detail": detail[:500], "at": datetime.now(UTC)},
    )
