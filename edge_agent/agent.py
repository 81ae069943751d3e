"""The agent's composition root: builds every part from the config, starts them in a safe order, stops them.

Order matters. Lock outputs are claimed (de-energised) before anything else, so a restart never shows a
transient unlock; then the outbox and the link; then the producers (locker bank, counter) that emit into
the outbox. Stopping goes the other way, and the link says ``offline`` last.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.counting.runner import CounterRunner
from edge_agent.deploy.sdnotify import SystemdNotifier
from edge_agent.deploy.service import ServiceLifecycle
from edge_agent.events import HandoffSink
from edge_agent.lockers.bank import LockerBank
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.quality import camera_fps
from edge_agent.privacy.register import build_register_entry
from edge_agent.privacy.reporter import FlowReporter
from edge_agent.setup.saving import StagedLinesSaver
from edge_agent.setup.service import SetupService
from edge_agent.storage import StorageWatch
from edge_agent.timekeeping import ClockWatch, Ticker, TimeSource
from edge_agent.transport.service import Transport
from hub_protocol.envelope import CameraState
from hub_protocol.topics import Channel

log = logging.getLogger(__name__)

TICK_S = 1.0
STALL_S = 30.0
"""A part whose thread has not come back for this long is stuck: the watchdog is no longer fed, and systemd
restarts the agent WatchdogSec later. Waiting to reconnect or to reopen an absent camera is not stuck."""
LOCKER_LEAVES = (
    "locker events: compartment states, door and lock events and alarms, to the second; an event of a delivery "
    "carries its reservation id, a pseudonym that the hub links to the delivery and so to the resident's name "
    "and contact"
)


class _SinkSlot:
    """Stands in for the outbox while the locks are claimed first; nothing emits before the outbox is set."""

    def __init__(self) -> None:
        self.target: HandoffSink | None = None

    def _sink(self) -> HandoffSink:
        if self.target is None:
            raise RuntimeError("event emitted before the outbox was opened")
        return self.target

    def emit(self, channel: Channel, fields: dict[str, Any], *, handoff: tuple[str, int] | None = None) -> int:
        return self._sink().emit(channel, fields, handoff=handoff)

    def handed_upto(self, source: str) -> int:
        return self._sink().handed_upto(source)


class Agent:
    """One running device: ``start()``, then ``serve()`` until ``request_stop()`` (a signal handler calls it)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        pin_factory: Any = None,
        notifier: SystemdNotifier | None = None,
        lifecycle: ServiceLifecycle | None = None,
        stall_s: float = STALL_S,
        time_source: TimeSource | None = None,
    ) -> None:
        self.config = config
        self.stall_s = stall_s
        self._stuck: list[str] = []
        self._last_status = ""
        self.notifier = notifier or SystemdNotifier()
        self.lifecycle = lifecycle
        self._stopping = threading.Event()
        state_dir = Path(config.device.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)

        sink = _SinkSlot()
        self.watch = StorageWatch()  # every writer reports a full disk here: one alarm, one health flag
        self.lockers: LockerBank | None = None
        if config.lockers is not None:
            self.lockers = LockerBank(config.lockers, sink, state_dir, pin_factory=pin_factory, watch=self.watch)

        self.counter: CounterRunner | None = None
        self.transport = Transport(
            config, self._camera_stats if config.counting is not None else None, watch=self.watch
        )
        sink.target = self.transport.outbox  # the outbox itself: the locker bank hands over with a key

        self.reporter: FlowReporter | None = None
        self.setup: SetupService | None = None
        # The register must describe the protection actually applied, defaults included.
        privacy = None
        if config.counting is not None:
            privacy = config.privacy or PrivacyConfig()
            active_until = config.sensor_register.active_until if config.sensor_register is not None else None
            lines = [line.name for line in config.counting.lines]
            self.clock = ClockWatch(time_source, require_sync=config.device.clock_sync == "required")
            self.transport.health.clock_sync = lambda: self.clock.state().value
            self.reporter = FlowReporter(
                self.transport.sink,
                privacy,
                lines,
                state_dir,
                active_until=active_until,
                clock=self.clock,
                watch=self.watch,
            )
            saver = None
            if lifecycle is not None:
                saver = StagedLinesSaver(lifecycle.store, lambda: self.config, lifecycle.request_restart)
            self.setup = SetupService(config, self.transport.sink, self.reporter.protect_counts, saver)
            self.counter = CounterRunner(config.counting, self._crossed)

        if self.lockers is not None:
            for action, handler in self.lockers.handlers().items():
                self.transport.router.register(action, handler)
        if self.setup is not None:
            for action, handler in self.setup.handlers().items():
                self.transport.router.register(action, handler)
        if lifecycle is not None:
            for action, handler in lifecycle.handlers(lambda: self.config).items():
                self.transport.router.register(action, handler)

        if config.sensor_register is not None:
            extra = [LOCKER_LEAVES] if config.lockers is not None else []
            entry = build_register_entry(
                config.device.id, config.device.site, config.sensor_register, privacy, extra_leaves=extra
            )
            self.transport.set_register(entry)
        self._last_frames = (0, 0, 0.0)
        self._health_frames = (0, 0.0)

    def _crossed(self, line: str, direction: str, object_class: str, track: Hashable) -> None:
        if self.reporter is not None:
            self.reporter.on_crossing(line, direction, object_class, track)
        if self.setup is not None:
            self.setup.on_crossing(line, direction, object_class)  # the setup page's live tally

    def _camera_stats(self) -> tuple[CameraState, float]:
        if self.counter is None:
            return CameraState.ABSENT, 0.0
        stats = self.counter.stats()
        # Like the windows' quality (edge_agent/privacy/quality.py): the rate at which the camera delivered
        # frames since the last health report, in whole frames per second, not the counter's processed rate,
        # which drops while people are in view.
        delivered = stats.frames_processed + stats.frames_dropped
        frames, observing = self._health_frames
        self._health_frames = (delivered, stats.seconds_observing)
        live = stats.fps > 0  # the runner's own test for a camera that stopped delivering
        fps = camera_fps(delivered - frames, stats.seconds_observing - observing) if live else 0.0
        return CameraState(stats.camera_state.value), fps

    def request_stop(self) -> None:
        self._stopping.set()

    def start(self) -> None:
        if self.lockers is not None:
            self.lockers.start()  # recovers state from SQLite and reconciles with the door sensors
        self.transport.start()
        if self.counter is not None:
            if self._counting_allowed(datetime.now(UTC)):
                self.counter.start()
            else:
                log.warning("register active_until has passed: this device does not count")
        if self.lifecycle is not None:
            self.lifecycle.report(self.transport.sink)  # a pushed config rolled back before this start
        self._last_status = self._running_status()
        self.notifier.notify("READY=1", f"STATUS={self._last_status}")

    def serve(self) -> None:
        """The main loop of a started agent, until ``request_stop()``; then everything is stopped."""
        ticker = Ticker(TICK_S)  # on a fixed grid: when windows leave must not follow how busy the ticks were
        try:
            while not self._stopping.wait(ticker.delay()):
                self.tick(datetime.now(UTC))
        finally:
            self.stop()

    def tick(self, now: datetime) -> None:
        """Once a second: window bookkeeping, the end-of-registration rule, the disk-full alarm, and the watchdog
        (fed only while camera, counter, outbox and MQTT link all make progress)."""
        try:
            self._tick_counting(now)
        except Exception as exc:
            # A window that could not be stored stays pending in the reporter; the agent keeps running.
            if not self.watch.failed("counting", exc):
                log.exception("counting bookkeeping failed; retrying at the next tick")
        self.transport.sync_storage_alarm()
        if self.setup is not None:
            self.setup.tick()  # opens or closes the setup page as its grant says
        if self.lifecycle is not None and self.lifecycle.tick(self.healthy(), self.transport.sink):
            self.request_stop()  # a config push or reload wants a restart, or a trial config was rolled back
        self._feed_watchdog()

    def _tick_counting(self, now: datetime) -> None:
        if self.counter is not None and self.reporter is not None:
            stats = self.counter.stats()
            processed, dropped, observing = self._last_frames
            self.reporter.note_frames(
                stats.frames_processed - processed, stats.frames_dropped - dropped, stats.seconds_observing - observing
            )
            self._last_frames = (stats.frames_processed, stats.frames_dropped, stats.seconds_observing)
            self.reporter.tick()  # on the reporter's own clock: it watches for steps
            if not self._counting_allowed(now):
                log.warning("register active_until has passed: counting stops")
                self.counter.stop()
                self.counter = None

    def healthy(self) -> bool:
        """What confirms a pushed config (docs/deploy.md: "its parts running"): the broker link is up, the
        camera delivers frames, the locker bank's parts started, and no part is stuck."""
        if not self.transport.link.connected or self._stuck:
            return False
        # The state only: _camera_stats() starts a new fps interval for the health report.
        if self.counter is not None and CameraState(self.counter.stats().camera_state.value) is not CameraState.OK:
            return False
        return self.lockers is None or self.lockers.parts_running()

    def progress(self) -> dict[str, bool]:
        """Which parts went round their loops lately; the watchdog is fed only while all of them did."""
        parts = {"mqtt": self.transport.progressing(), "outbox": self._outbox_answers()}
        if self.counter is not None:
            parts["counter"] = self.counter.progressing(self.stall_s)
            parts["camera"] = self.counter.camera_progressing(self.stall_s)
        return parts

    def _outbox_answers(self) -> bool:
        # Asked on the main loop on purpose: an outbox stuck in a write blocks this call, and the watchdog.
        try:
            self.transport.outbox.stats()
        except Exception:
            log.exception("the outbox does not answer")
            return False
        return True

    def _feed_watchdog(self) -> None:
        stuck = sorted(name for name, ok in self.progress().items() if not ok)
        if stuck != self._stuck and stuck:
            log.error("no progress from %s: the watchdog is no longer fed", ", ".join(stuck))
        self._stuck = stuck
        self._status("stuck: " + ", ".join(stuck) if stuck else self._running_status())
        if not stuck:
            self.notifier.notify("WATCHDOG=1")

    def _running_status(self) -> str:
        if self.reporter is not None and not self.reporter.windows_open:
            return f"device {self.config.device.id} running; flow windows wait for the clock to be synchronised"
        return f"device {self.config.device.id} running"

    def _status(self, text: str) -> None:
        """``systemctl status`` shows it; sent when it changes."""
        if text != self._last_status:
            self.notifier.notify(f"STATUS={text}")
            self._last_status = text

    def _counting_allowed(self, now: datetime) -> bool:
        return self.reporter is None or self.reporter.is_active(now)

    def stop(self) -> None:
        self.notifier.notify("STOPPING=1")
        if self.counter is not None:
            self.counter.stop()
        if self.setup is not None:
            self.setup.stop()
        if self.lockers is not None:
            self.lockers.stop()
        if self.reporter is not None:
            self.reporter.close()
        self.transport.stop()
