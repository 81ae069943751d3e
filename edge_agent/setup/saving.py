"""Saving drawn lines into the agent's config: validated like ``check-config``, tried like a config push.

The new config is the active one with only ``[[counting.lines]]`` replaced. It goes through the same
``ConfigStore.stage`` as a config the hub pushes: written atomically beside the previous one, on trial after
the restart that applies it, and rolled back to the previous config when the agent is not healthy with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from edge_agent.config import AgentConfig, parse_agent_config
from edge_agent.deploy.config_update import ConfigStore
from hub_protocol import tomlwrite
from hub_protocol.validation import ConfigError, read_toml


class LinesSaver(Protocol):
    def save(self, lines: Sequence[dict[str, Any]]) -> str:
        """Validate and store the lines; returns what happens next. Raises ConfigError (nothing changed)."""
        ...


def with_lines(data: dict[str, Any], lines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A copy of a config's TOML dictionary whose counting lines are ``lines``."""
    counting = data.get("counting")
    if not isinstance(counting, dict):
        raise ConfigError("setup", ["this device's config has no [counting] section to put lines in"])
    return {**data, "counting": {**counting, "lines": [{"name": ln["name"], "points": ln["points"]} for ln in lines]}}


class StagedLinesSaver:
    """Stages the new config through the config store, then asks the agent to restart with it."""

    def __init__(
        self, store: ConfigStore, current: Callable[[], AgentConfig], request_restart: Callable[[str], None]
    ) -> None:
        self.store = store
        self.current = current
        self.request_restart = request_restart

    def save(self, lines: Sequence[dict[str, Any]]) -> str:
        if self.store.in_trial():
            raise ConfigError("setup", ["a new config is still on trial; save again once the agent has settled"])
        source = "lines from the setup page"
        data = with_lines(read_toml(self.store.active_path()), lines)
        text = tomlwrite.dumps(data)
        parse_agent_config(data, source, [])  # every problem with its key path, like check-config
        self.store.stage(text, self.current(), "setup-page")
        self.request_restart("lines saved on the setup page")
        return "saved"
