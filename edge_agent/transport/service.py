"""The transport as one piece for the agent's composition root: outbox, MQTT link, commands, health."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from edge_agent import __version__
from edge_agent.config import AgentConfig
from edge_agent.events import EventSink
from edge_agent.health import CameraStatsProvider, HealthSampler
from edge_agent.storage import StorageWatch, is_disk_full
from edge_agent.timekeeping import Ticker
from edge_agent.transport.commands import CommandRouter
from edge_agent.transport.mqtt import Identity, MqttLink
from edge_agent.transport.outbox import OUTBOX_FILENAME, Outbox
from hub_protocol.codec import encode
from hub_protocol.register import RegisterEntry
from hub_protocol.secrets import read_secret
from hub_protocol.topics import Channel

log = logging.getLogger(__name__)

COMMANDS_FILE = "commands.sqlite3"
SUPERVISE_S = 1.0
LINK_STALL_S = 30.0
"""A link thread that has not gone round its loop for this long is taken for hung (its loop turns every 50 ms;
a connect attempt is bounded by paho's connect timeout)."""


class Transport:
    """``sink`` takes events, ``router`` takes command handlers; ``start()`` connects, ``stop()`` says goodbye.

    Construction reads the broker password (raises ``ConfigError`` if it is missing or readable by others)
    and opens the outbox, so a misconfigured device fails at start, not at its first event.
    """

    def __init__(
        self,
        config: AgentConfig,
        camera_stats: CameraStatsProvider | None = None,
        *,
        version: str = __version__,
        boot: str | None = None,
        watch: StorageWatch | None = None,
    ) -> None:
        device = config.device
        password = read_secret(config.mqtt.password_file, "mqtt.password_file")
        state_dir = Path(device.state_dir)
        self.config = config
        self.watch = watch or StorageWatch()
        self.outbox = Outbox(state_dir / OUTBOX_FILENAME, device.id, config.outbox, boot=boot, watch=self.watch)
        self.boot = self.outbox.boot
        self.router = CommandRouter(device.id, self.outbox, state_dir / COMMANDS_FILE)
        identity = Identity(device.id, device.site, self.boot, config.mqtt.username or device.id, password)
        self.link = MqttLink(config.mqtt, identity, self.outbox, self.router.submit)
        self.health = HealthSampler(
            device.id,
            self.boot,
            version,
            state_dir,
            self.outbox.stats,
            camera_stats,
            disk_full=lambda: self.watch.disk_full,
        )
        self._stop = threading.Event()
        self._health_thread: threading.Thread | None = None

    @property
    def sink(self) -> EventSink:
        return self.outbox

    def set_register(self, entry: RegisterEntry) -> None:
        """The device's sensor-register entry, retained on ``register`` and re-sent at every connect."""
        self.link.set_retained(Channel.REGISTER, encode(entry))

    def sync_storage_alarm(self) -> None:
        """Raise or clear the ``disk-full`` alarm as the writers' reports say (retried until it is stored)."""
        try:
            self.outbox.sync_disk_alarm(self.watch.disk_full, self.watch.detail())
        except Exception as exc:
            if not is_disk_full(exc):
                log.exception("disk-full alarm not stored; retrying")

    def send_health_now(self) -> None:
        self.link.publish_soon(Channel.HEALTH, encode(self.health.sample()), qos=1)

    def start(self) -> None:
        self.router.start()
        self.link.start()
        self._health_thread = threading.Thread(target=self._health_loop, name="health", daemon=True)
        self._health_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._health_thread is not None:
            self._health_thread.join(timeout)
        self.link.stop(timeout)
        self.router.close()
        self.outbox.close()

    def progressing(self) -> bool:
        """The link thread is turning (connected or patiently reconnecting): part of the watchdog's test."""
        return self.link.alive(LINK_STALL_S)

    def supervise(self) -> None:
        """A link thread that died or hung is replaced; the outbox resends whatever was not acknowledged."""
        if not self._stop.is_set() and not self.link.alive(LINK_STALL_S):
            self.link.revive()

    def _health_loop(self) -> None:
        # First sample soon after connecting, so a new device shows its figures at once.
        first = time.monotonic() + min(10.0, self.config.health.interval_s)
        next_sample: float | None = None
        # On fixed grids (edge_agent.timekeeping.Ticker), like the agent's ticks: a report's send time must not
        # carry how late the ticks before it were, which grows while the counter works on people in view.
        ticker = Ticker(SUPERVISE_S)
        while not self._stop.wait(ticker.delay()):
            try:
                self.supervise()
            except Exception:
                log.exception("could not revive the MQTT link; the watchdog will restart the agent")
            now = time.monotonic()
            if next_sample is None and (self.link.connected or now >= first):
                next_sample = now
            if next_sample is not None and now >= next_sample:
                self._safe_health()
                interval = self.config.health.interval_s
                next_sample += interval * (1 + (now - next_sample) // interval)

    def _safe_health(self) -> None:
        try:
            self.send_health_now()
        except Exception:
            log.exception("health sample failed")
