"""The setup page inside the agent: opened and closed by its grant file, fed by the counter's crossings.

The agent calls ``tick()`` from its main loop each second: when a grant is open (``edge-agent setup --for``
or the hub's ``open-setup`` command) the page starts listening; when the grant expires it stops.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.config import AgentConfig
from edge_agent.events import CommandHandler, CommandOutcome, EventSink
from edge_agent.setup.access import Access, open_setup
from edge_agent.setup.app import SetupParts, create_setup_app, lines_of
from edge_agent.setup.calibration import BackgroundSource, CalibrationBackground
from edge_agent.setup.saving import LinesSaver
from edge_agent.setup.server import SetupServer
from edge_agent.setup.tally import Tally
from edge_agent.setup.validation import Protect, Validator
from hub_protocol.commands import OpenSetup
from hub_protocol.envelope import ResultStatus

log = logging.getLogger(__name__)


class SetupService:
    def __init__(
        self,
        config: AgentConfig,
        sink: EventSink,
        protect: Protect,
        saver: LinesSaver | None,
        background: BackgroundSource | None = None,
    ) -> None:
        if config.counting is None:
            raise ValueError("the setup page needs a [counting] section")
        counting = config.counting
        state_dir = Path(config.device.state_dir)
        self.config = config
        self._given_background = background
        self.tally = Tally()
        self.access = Access(state_dir)
        settings = config.setup
        self.parts = SetupParts(
            access=self.access,
            tally=self.tally,
            validator=Validator(
                self.tally, lambda: [ln.name for ln in counting.lines], sink, protect, state_dir / "setup"
            ),
            background=self._fresh_background(),
            lines=lambda: lines_of(counting.lines),
            saver=saver,
            language=settings.language,
        )
        self.server: SetupServer | None = None
        self._failed = False
        self.state_dir = state_dir

    def _fresh_background(self) -> BackgroundSource:
        counting = self.config.counting
        assert counting is not None  # checked in __init__
        return self._given_background or CalibrationBackground(counting, self.config.setup.background_frames)

    def handlers(self) -> dict[str, CommandHandler]:
        """``open-setup`` from the hub: the operator was shown the code, the device gets its hash."""
        return {"open-setup": self._open_from_hub}

    def _open_from_hub(self, command: OpenSetup) -> CommandOutcome:
        try:
            open_setup(self.state_dir, command.minutes * 60, hashed_code=command.code_sha256, origin="hub")
        except OSError as exc:
            return ResultStatus.FAILED, f"cannot write the setup grant: {exc.strerror or exc}"
        until = (datetime.now(UTC) + timedelta(minutes=command.minutes)).strftime("%H:%M")
        return ResultStatus.DONE, f"setup page open until {until} UTC on port {self.config.setup.port}"

    @property
    def port(self) -> int | None:
        return self.server.port if self.server is not None else None

    def on_crossing(self, line: str, direction: str, object_class: str) -> None:
        self.tally.add(line, direction, object_class)

    def tick(self) -> None:
        """Start the page when its grant is open, stop it when the grant is gone."""
        is_open = self.access.is_open()
        if is_open and self.server is None and not self._failed:
            server = SetupServer(create_setup_app(self.parts), self.config.setup.host, self.config.setup.port)
            try:
                server.start()
            except RuntimeError as exc:
                log.error("setup page not available: %s", exc)
                self._failed = True  # not retried every second; a new grant after a restart tries again
                return
            self.server = server
            log.info("setup page open on port %d", server.port)
        elif not is_open:
            self._failed = False
            if self.server is not None:
                self.stop()
                self.parts.background = self._fresh_background()  # the picture is not kept once the page closes
                log.info("setup page closed")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.parts.background is not self._given_background:
            self.parts.background.close()  # stops learning: the camera is not held for a closed page
