"""Config changes without SSH: the hub pushes a config, the device validates it, tries it, keeps or rolls back.

Files, all in ``<state_dir>/config/`` (the installed ``/etc/edge-agent/agent.toml`` is never written):

- ``agent.toml``: the pushed config; when present it is the active one, else the installed file is.
- ``agent.last-good.toml``: the config that was active before the push (for the roll-back).
- ``trial.json``: present while a pushed config is on trial: which command, since when, how many starts.
- ``rollback.json``: why the last trial was rolled back, until the agent has reported it.

The life of a push:

1. ``push-config`` arrives: ``ConfigCommands.push`` validates (migration included), refuses a change of the
   device's identity, stores the text atomically with a trial marker, answers ``done`` and asks the agent to
   restart (the agent exits with ``RESTART_EXIT_CODE`` and systemd starts it again).
2. At start the agent calls ``ConfigStore.begin_start()``: it gets the path to load. A trial marker that has
   already seen a start means the previous start with this config died before it was confirmed: roll back.
3. While running, the agent calls ``ConfigStore.settle(healthy, uptime_s)`` from its main loop: once healthy
   the trial is confirmed; if not healthy within ``trial_timeout_s`` the config is rolled back and the agent
   restarts with the previous one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig, load_agent_config, parse_agent_config
from edge_agent.events import CommandHandler, CommandOutcome
from hub_protocol.atomic import write_atomic
from hub_protocol.commands import PushConfig, ReloadConfig
from hub_protocol.envelope import ResultStatus
from hub_protocol.validation import ConfigError, parse_toml, read_toml

RESTART_EXIT_CODE = 75
"""Exit status asking systemd for a restart (EX_TEMPFAIL; the unit restarts on failure)."""

DEFAULT_TRIAL_TIMEOUT_S = 120.0
_DETAIL_MAX = 500  # CommandResult.detail's cap


class TrialOutcome(StrEnum):
    NONE = "none"
    """No trial running, or still within its time."""
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled-back"
    """The agent must restart now (exit with ``RESTART_EXIT_CODE``)."""


@dataclass(frozen=True)
class StartDecision:
    config_path: Path
    """The file to load."""
    trial: bool
    """True when ``config_path`` is a pushed config that has not proven itself yet."""
    rolled_back: str | None = None
    """Why a pushed config was rolled back before this start, for the agent to report once."""
    command: str | None = None
    """Id of the push command on trial, or of the one rolled back."""


class ConfigStore:
    """The active, last-good and trial state of the agent's config on disk."""

    def __init__(self, installed: Path, state_dir: Path, trial_timeout_s: float = DEFAULT_TRIAL_TIMEOUT_S) -> None:
        self.installed = installed
        self.folder = state_dir / "config"
        self.pushed = self.folder / "agent.toml"
        self.last_good = self.folder / "agent.last-good.toml"
        self.trial_marker = self.folder / "trial.json"
        self.rollback_note = self.folder / "rollback.json"
        self.trial_timeout_s = trial_timeout_s

    @classmethod
    def for_installed(cls, installed: Path, trial_timeout_s: float = DEFAULT_TRIAL_TIMEOUT_S) -> ConfigStore:
        """The store of the installed config: its state dir says where pushed configs live."""
        quiet: list[str] = []  # upgrade notices are shown when the config itself is loaded
        return cls(
            installed, parse_agent_config(read_toml(installed), str(installed), quiet).device.state_dir, trial_timeout_s
        )

    def active_path(self) -> Path:
        return self.pushed if self.pushed.exists() else self.installed

    def in_trial(self) -> bool:
        return self.trial_marker.exists()

    # --- the push ------------------------------------------------------------------------------------------

    def stage(self, toml_text: str, current: AgentConfig, command_id: str = "") -> tuple[AgentConfig, list[str]]:
        """Validate ``toml_text`` and make it the active config on trial; returns it and any upgrade notices.

        Raises ConfigError (nothing changed) when it is invalid or changes who or where the device is.
        """
        source = f"pushed config {command_id}".strip()
        notices: list[str] = []
        new = parse_agent_config(parse_toml(toml_text, source), source, notices)
        changed = [
            f"{key}: a pushed config may not change it (is {old!r}, push says {value!r})"
            for key, old, value in (
                ("device.id", current.device.id, new.device.id),
                ("device.site", current.device.site, new.device.site),
                ("device.state_dir", str(current.device.state_dir), str(new.device.state_dir)),
            )
            if old != value
        ]
        if changed:
            raise ConfigError(source, [*changed, "re-provision the device with hub-server device add instead"])
        previous = self.active_path()
        write_atomic(self.last_good, previous.read_bytes())
        write_atomic(self.pushed, toml_text.encode("utf-8"))
        self._write_json(
            self.trial_marker,
            {"command": command_id, "since": time.time(), "starts": 0, "previous": _origin(previous, self.installed)},
        )
        return new, notices

    # --- at start and while running ------------------------------------------------------------------------

    def begin_start(self) -> StartDecision:
        """Call once at every start, before loading the config; load ``config_path`` of the answer."""
        marker = self._read_json(self.trial_marker)
        if marker is not None:
            if int(marker.get("starts", 0)) >= 1:
                self.rollback("the agent stopped before it became healthy with the pushed config")
            else:
                self._write_json(self.trial_marker, {**marker, "starts": int(marker.get("starts", 0)) + 1})
                return StartDecision(self.pushed, trial=True, command=str(marker.get("command", "")) or None)
        note = self._read_json(self.rollback_note)
        if note is None:
            return StartDecision(self.active_path(), trial=False)
        self.rollback_note.unlink(missing_ok=True)
        command = str(note.get("command", "")) or None
        reason = f"pushed config {command or ''} rolled back: {note.get('reason')}".replace("  ", " ")
        return StartDecision(self.active_path(), trial=False, rolled_back=reason, command=command)

    def settle(self, healthy: bool, uptime_s: float) -> TrialOutcome:
        """Call from the main loop of a process started on trial (``StartDecision.trial``): confirms the pushed
        config once healthy, rolls it back after ``trial_timeout_s``."""
        if not self.trial_marker.exists():
            return TrialOutcome.NONE
        if healthy:
            self.trial_marker.unlink(missing_ok=True)
            return TrialOutcome.CONFIRMED
        if uptime_s >= self.trial_timeout_s:
            self.rollback(f"not healthy within {self.trial_timeout_s:g} s")
            return TrialOutcome.ROLLED_BACK
        return TrialOutcome.NONE

    def rollback(self, reason: str) -> None:
        """Make the config that was active before the push active again; note why for the next start."""
        marker = self._read_json(self.trial_marker) or {}
        if marker.get("previous") == "pushed" and self.last_good.exists():
            write_atomic(self.pushed, self.last_good.read_bytes())
        else:
            self.pushed.unlink(missing_ok=True)  # the installed file was active before: it is again
        self._write_json(
            self.rollback_note, {"command": marker.get("command", ""), "reason": reason, "at": time.time()}
        )
        self.trial_marker.unlink(missing_ok=True)

    def reset(self) -> None:
        """Forget pushed configs (the installer does this when it installs a new config from the hub)."""
        if self.folder.exists():
            shutil.rmtree(self.folder)

    # --- helpers -------------------------------------------------------------------------------------------

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        write_atomic(path, json.dumps(data).encode("utf-8"))

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable marker: treat as present but empty (a crash mid-write cannot happen: atomic)
        return data if isinstance(data, dict) else {}


def active_config_path(installed: Path) -> Path:
    """The config the service runs with: the pushed one when there is one, else the installed file."""
    try:
        return ConfigStore.for_installed(installed).active_path()
    except ConfigError:
        return installed


def _origin(path: Path, installed: Path) -> str:
    return "installed" if path == installed else "pushed"


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 3] + "..."


class ConfigCommands:
    """Handlers for ``push-config`` and ``reload-config``.

    ``current`` returns the config the agent runs with; ``request_restart(reason)`` must only ask the main
    loop to stop and exit with ``RESTART_EXIT_CODE`` after the command's result is stored: it must not exit
    by itself.
    """

    def __init__(
        self, store: ConfigStore, current: Callable[[], AgentConfig], request_restart: Callable[[str], None]
    ) -> None:
        self.store = store
        self.current = current
        self.request_restart = request_restart

    def push(self, command: PushConfig) -> CommandOutcome:
        if self.store.in_trial():
            return ResultStatus.FAILED, "another pushed config is still on trial; push again once it settled"
        try:
            _config, notices = self.store.stage(command.config_toml, self.current(), command.id)
        except ConfigError as exc:
            return ResultStatus.REFUSED_INVALID, _clip("; ".join(exc.problems))
        self.request_restart(f"push-config {command.id}")
        note = f" (upgraded: {'; '.join(notices)})" if notices else ""
        detail = (
            f"config valid and stored; restarting with it, back to the previous config if not healthy within "
            f"{self.store.trial_timeout_s:g} s{note}"
        )
        return ResultStatus.DONE, _clip(detail)

    def reload(self, command: ReloadConfig) -> CommandOutcome:
        path = self.store.active_path()
        try:
            load_agent_config(path)
        except ConfigError as exc:
            problems = "; ".join(exc.problems)
            return ResultStatus.REFUSED_INVALID, _clip(f"{path} is not valid, keeping the running config: {problems}")
        self.request_restart(f"reload-config {command.id}")
        return ResultStatus.DONE, f"{path} is valid; restarting to apply it"

    def handlers(self) -> dict[str, CommandHandler]:
        return {"push-config": self.push, "reload-config": self.reload}
