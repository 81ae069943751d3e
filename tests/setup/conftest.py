"""A setup page built from real parts: grant file, tally, validator with the real protection, config store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edge_agent.config import load_agent_config
from edge_agent.counting.config import CountingConfig
from edge_agent.deploy.config_update import ConfigStore
from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.protection import Protector
from edge_agent.setup.access import Access
from edge_agent.setup.app import SetupParts, lines_of
from edge_agent.setup.calibration import CalibrationBackground
from edge_agent.setup.saving import StagedLinesSaver
from edge_agent.setup.tally import Tally
from edge_agent.setup.validation import Validator
from tests.deploy.conftest import write_agent_config

COUNTING = """
[counting]
source = "synthetic"
fps = 30

[[counting.lines]]
name = "entrance"
points = [100, 240, 540, 240]

[[counting.lines]]
name = "side"
points = [320, 50, 320, 400]
"""


@dataclass
class Rig:
    installed: Path
    state_dir: Path
    parts: SetupParts
    sink: MemorySink
    store: ConfigStore
    restarts: list[str] = field(default_factory=list)


@pytest.fixture
def make_setup(tmp_path: Path) -> Callable[..., Rig]:
    def factory(policy: str = "none", k: int = 3) -> Rig:
        installed = write_agent_config(tmp_path / "agent", host="127.0.0.1", port=1883, extra=COUNTING)
        config = load_agent_config(installed)
        assert config.counting is not None
        counting: CountingConfig = config.counting
        state_dir = Path(config.device.state_dir)
        store = ConfigStore.for_installed(installed)
        sink = MemorySink("dev-a")
        protector = Protector(PrivacyConfig(policy=policy, k=k))  # type: ignore[arg-type]
        restarts: list[str] = []
        parts = SetupParts(
            access=Access(state_dir),
            tally=Tally(),
            validator=Validator(
                Tally(), lambda: [ln.name for ln in counting.lines], sink, protector.protect, state_dir
            ),
            background=CalibrationBackground(counting, 50, 120),
            lines=lambda: lines_of(counting.lines),
            saver=StagedLinesSaver(store, lambda: config, restarts.append),
            language="en",
        )
        parts.validator.tally = parts.tally  # one tally feeds the page and the validation, as in the agent
        return Rig(installed, state_dir, parts, sink, store, restarts)

    return factory


def wait_picture(parts: SetupParts, timeout: float = 120) -> None:
    # "unsettled" is a retry, not an answer: on a loaded machine a round can end before the scene settles.
    deadline = time.monotonic() + timeout
    while parts.background.state() in ("learning", "unsettled") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert parts.background.state() == "ready"
