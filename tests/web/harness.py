"""A hub running for the browser tests (its own thread and event loop) and devices speaking the contract.

The devices are real MQTT clients with their own broker credentials: they publish availability (with the
last will), register entries, health, flow windows, locker events and alarms exactly as an agent would.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from hub_protocol.alarms import AlarmKind, DeviceAlarm
from hub_protocol.codec import encode
from hub_protocol.envelope import Availability, AvailabilityState, CameraState, Health
from hub_protocol.flows import FlowCell, FlowTotal, FlowWindow, PolicyKind, PrivacyPolicy, WindowQuality
from hub_protocol.lockers import CompartmentState, LockerEvent
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import Channel, device_topic
from hub_server.fleet.broker import free_port


@dataclass
class RunningHub:
    """``create_app``'s app served on 127.0.0.1 from a thread of its own, as ``hub-server serve`` would."""

    app: web.Application
    port: int = field(default_factory=free_port)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, name="hub-under-test", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=3)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self.loop.close()


class Device:
    """One device's MQTT session: its own credentials, its last will, numbered events."""

    def __init__(self, host: str, port: int, prefix: str, site: str, device: str, password: str) -> None:
        self.prefix, self.site, self.device = prefix, site, device
        self.boot = secrets.token_hex(4)
        self.seq = 0
        self.connected = threading.Event()
        self.host, self.port = host, port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{device}-{self.boot}")
        self.client.username_pw_set(device, password)
        offline = Availability(device=device, boot=self.boot, state=AvailabilityState.OFFLINE)
        self.client.will_set(self.topic(Channel.STATUS), encode(offline), qos=1, retain=True)
        self.client.on_connect = lambda c, u, f, reason, p: self.connected.set() if not reason.is_failure else None

    def topic(self, channel: Channel) -> str:
        return device_topic(self.prefix, self.site, self.device, channel)

    def connect(self) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), f"{self.device} could not connect"
        online = Availability(device=self.device, boot=self.boot, state=AvailabilityState.ONLINE)
        self.publish(Channel.STATUS, online, retain=True)

    def publish(self, channel: Channel, message: BaseModel, retain: bool = False) -> None:
        info = self.client.publish(self.topic(channel), encode(message), qos=1, retain=retain)
        info.wait_for_publish(10)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def crash(self) -> None:
        """The agent dies (power cut, kill -9): no goodbye, the broker publishes the last will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # what an agent sends

    def health(self, **changes: Any) -> None:
        values: dict[str, Any] = {
            "device": self.device,
            "boot": self.boot,
            "at": datetime.now(UTC),
            "uptime_s": 3600.0,
            "version": "0.1.0",
            "cpu_temp_c": 48.5,
            "load1": 0.42,
            "mem_used_fraction": 0.37,
            "disk_free_bytes": 12_000_000_000,
            "outbox_depth": 0,
            "outbox_oldest_age_s": 0.0,
            "dropped_total": 0,
            "camera_state": CameraState.OK,
            "fps": 9.5,
        }
        values.update(changes)
        self.publish(Channel.HEALTH, Health(**values))

    def flow(
        self,
        start: datetime,
        counts: dict[tuple[str, str, str], int | None],
        seconds: int = 900,
        hidden: int = 0,
        policy: PrivacyPolicy | None = None,
    ) -> None:
        """One window; ``None`` cells were suppressed on the device, ``hidden`` is what they held together
        (the device publishes each line's total, which includes them)."""
        cells = [FlowCell(line=ln, direction=d, object_class=c, count=n) for (ln, d, c), n in counts.items()]  # type: ignore[arg-type]
        line_sums: dict[str, int] = {}
        for (ln, _, _), n in counts.items():
            line_sums[ln] = line_sums.get(ln, 0) + (n or 0)
        totals = [FlowTotal(line=ln, count=n + hidden) for ln, n in line_sums.items()]
        window = FlowWindow(
            device=self.device,
            boot=self.boot,
            seq=self.next_seq(),
            window_start=start,
            window_seconds=seconds,
            cells=cells,
            totals=totals,
            quality=WindowQuality(observed_fraction=0.97, mean_fps=9.5, dropped_frames=2),
            policy=policy or PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=3),
        )
        self.publish(Channel.FLOW, window)

    def locker(
        self,
        compartment: int,
        state: CompartmentState,
        previous: CompartmentState | None,
        cause: str,
        reservation: str | None = None,
    ) -> None:
        event = LockerEvent(
            device=self.device,
            boot=self.boot,
            seq=self.next_seq(),
            at=datetime.now(UTC),
            compartment=compartment,
            state=state,
            previous=previous,
            cause=cause,
            reservation=reservation,
            door_open=False,
        )
        self.publish(Channel.LOCKER, event)

    def alarm(self, kind: AlarmKind, active: bool, compartment: int | None = None, detail: str = "") -> None:
        event = DeviceAlarm(
            device=self.device,
            boot=self.boot,
            seq=self.next_seq(),
            alarm=kind,
            active=active,
            at=datetime.now(UTC),
            compartment=compartment,
            detail=detail,
        )
        self.publish(Channel.ALARM, event)

    def register(self, counts: bool, policy: PrivacyPolicy | None = None) -> None:
        entry = RegisterEntry(
            device=self.device,
            site=self.site,
            sensor_type="optical sensor (camera), on-device counting" if counts else "parcel locker bank",
            measures=["pedestrians and cyclists crossing two lines, per direction"]
            if counts
            else ["compartment states"],
            purpose="Know how busy the street is, to plan the neighbourhood hub's opening hours.",
            legal_ground="Public task (GDPR art. 6(1)(e))",
            organisation="Cities of Things field lab",
            contact="sensors@example.org",
            website=None,
            leaves_device=["counts per 15 minutes, line, direction and class"] if counts else ["compartment states"],
            never_leaves=["camera images", "tracks and positions of people", "times of single crossings"],
            privacy=(policy or PrivacyPolicy(kind=PolicyKind.THRESHOLD, k=3)) if counts else None,
            retention="90 days as received, then hourly totals",
            active_until=date.today() + timedelta(days=365),
            location="Voorbeeldstraat, Amsterdam",
        )
        self.publish(Channel.REGISTER, entry, retain=True)


def window_start(moment: datetime, seconds: int = 900) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def hourly_history(now: datetime, days: int = 7) -> list[datetime]:
    """Starts of hourly 15-minute windows over the last ``days`` days, up to and including the current window.

    The pages' "today" begins at local midnight (Europe/Amsterdam), not UTC midnight. History that stopped an
    hour before ``now`` left the local day empty for its first hour (23:00-00:00 UTC in winter), so the
    browser tests failed at that time of day. The current window always lies in the local day, whatever the
    zone's offset (offsets are whole quarter hours), so the day and week charts always have something to draw.
    """
    current = window_start(now)
    return [current - timedelta(hours=h) for h in range(days * 24 - 1, -1, -1)]
