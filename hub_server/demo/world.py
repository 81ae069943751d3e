"""What the demo puts around the real programs: configs for a small street, and people using the lockers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from hub_server.appkeys import DB_KEY
from hub_server.config import HubConfig
from hub_server.demo.agents import AgentProcess
from hub_server.fleet.broker import PrivateBroker
from hub_server.logistics.service import LOGISTICS_KEY, DeliveryRequest, DeliveryStatus, LockerSpec, Logistics
from hub_server.store.summary import fleet_summary

log = logging.getLogger(__name__)

SCENE_WIDTH, SCENE_HEIGHT = 320, 240
CYCLE_S = 12.0
"""Seconds between two deliveries at the demo's locker bank."""
FIRST_DELIVERY_S = 5.0


def demo_hub_config(
    folder: Path, broker: PrivateBroker, mqtt_password: Path, session_key: Path, port: int, prefix: str
) -> HubConfig:
    return HubConfig.model_validate(
        {
            "mqtt": {"port": broker.port, "prefix": prefix, "username": "hub", "password_file": str(mqtt_password)},
            "http": {
                "port": port,
                "public_url": f"http://127.0.0.1:{port}",
                "session_key_file": str(session_key),
            },
            "store": {"path": str(folder / "hub.sqlite3")},
            # Short timers so a one-minute demo shows devices going offline and flow windows closing.
            "ingest": {"offline_after_s": 30},
            "provisioning": {
                "passwd_file": str(broker.folder / "passwd"),
                "acl_file": str(broker.folder / "acl"),
                "pid_file": str(broker.pid_path),
                "output_dir": str(folder / "provisioned"),
                "agent_mqtt_host": broker.host,
                "agent_mqtt_port": broker.device_port,
                "agent_tls": False,
            },
        }
    )


def _lockers_section() -> dict[str, Any]:
    sizes = ["S", "S", "M", "M", "L", "L"]
    compartments = [
        {
            "number": n + 1,
            "size": size,
            "accessible": n in (0, 2),
            "lock_pin": f"GPIO{12 + n}",  # GPIO9-27: not pulled up at boot, so a relay stays off
            "door_pin": f"GPIO{5 + n}",
            "occupancy_pin": f"GPIO{18 + n}",
            "pulse_s": 1.0,
        }
        for n, size in enumerate(sizes)
    ]
    return {
        "compartments": compartments,
        "keypad": {"rows": ["GPIO24", "GPIO25", "GPIO26", "GPIO27"], "cols": ["GPIO2", "GPIO3", "GPIO4"]},
        "buzzer_pin": "GPIO11",
        "timing": {"door_left_open_s": 30},
        "kiosk": {"enabled": False},
    }


def frame_size(video: Path | None) -> tuple[int, int]:
    """The generated scene's size, or the video's (the demo's lines are placed relative to it)."""
    if video is None:
        return SCENE_WIDTH, SCENE_HEIGHT
    import cv2  # only the demo with a video needs OpenCV in the hub's process

    capture = cv2.VideoCapture(str(video))
    try:
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise ValueError(f"cannot read the frame size of {video}: is it a video file?")
    return width, height


def demo_agent_sections(device: str, state_dir: Path, *, with_lockers: bool, video: Path | None) -> dict[str, Any]:
    """The parts of an agent config the demo adds to what provisioning wrote."""
    width, height = frame_size(video)
    mid = round(height * 0.6)
    sections: dict[str, Any] = {
        # A laptop's clock may not report NTP synchronisation; the demo's windows must open regardless.
        "device": {"state_dir": str(state_dir), "clock_sync": "trust"},
        "health": {"interval_s": 10},
        "counting": {
            "source": str(video) if video is not None else "synthetic",
            "width": width,
            "height": height,
            "fps": 5,
            "lines": [
                {"name": "pavement", "points": [0, mid, width, mid]},
                {"name": "crossing", "points": [width // 2, 0, width // 2, height]},
            ],
        },
        "privacy": {"window_seconds": 60, "policy": "threshold", "k": 3},
        "sensor_register": {
            "sensor_type": "optical sensor (camera) with on-device counting",
            "measures": ["pedestrians and cyclists crossing two lines, per direction"],
            "purpose": "Field-lab demo: how many people walk and cycle past the neighbourhood hub",
            "legal_ground": "public task (demo data, no personal data leaves the device)",
            "organisation": "Cities of Things field lab (demo)",
            "contact": "fieldlab@example.org",
            "active_until": (datetime.now(UTC) + timedelta(days=365)).date().isoformat(),
            "street": "Demostraat",
            "city": "Amsterdam",
        },
    }
    if with_lockers:
        sections["lockers"] = _lockers_section()
    return sections


class DemoResidents:
    """A courier and residents at the locker bank: create a delivery, type the codes the hub issued."""

    def __init__(
        self,
        app: web.Application,
        agents: list[AgentProcess],
        configs: list[tuple[str, dict[str, Any]]],
        errors: list[str],
    ) -> None:
        self.app = app
        self.errors = errors
        lockers = {name for name, data in configs if "lockers" in data}
        self.agents = [a for a in agents if a.device in lockers]
        self.configs = {name: data for name, data in configs if name in lockers}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.agents:
            self._task = asyncio.create_task(self._run(), name="demo-residents")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        for agent in self.agents:
            register_compartments(self.app, agent.device, self.configs[agent.device]["lockers"])
        await asyncio.sleep(FIRST_DELIVERY_S)  # the banks report their compartments once connected
        turn = 0
        while True:
            agent = self.agents[turn % len(self.agents)]
            turn += 1
            try:
                await deliver_and_collect(self.app, agent, size=["S", "M", "L"][turn % 3])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors.append(f"demo delivery at {agent.device} did not complete: {exc}")
            await asyncio.sleep(CYCLE_S)


def _logistics(app: web.Application) -> Logistics:
    return app[LOGISTICS_KEY]


def register_compartments(app: web.Application, device: str, lockers: dict[str, Any]) -> None:
    """What a technician enters once per locker bank: its compartments, sizes and reach."""
    spec = LockerSpec.model_validate(
        {
            "compartments": [
                {"number": c["number"], "size": c["size"], "accessible": c["accessible"]}
                for c in lockers["compartments"]
            ]
        }
    )
    _logistics(app).set_compartments(device, spec)


async def _until(check: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(0.5)


async def deliver_and_collect(app: web.Application, agent: AgentProcess, size: str) -> None:
    """One parcel: the operator creates it, the courier drops it off, the resident picks it up."""
    logistics = _logistics(app)
    request = DeliveryRequest.model_validate({"size": size, "device": agent.device, "resident_name": "Demo Resident"})
    created = await asyncio.to_thread(logistics.create, request, "demo-operator")
    delivery = created.delivery.id
    await asyncio.sleep(2)  # the reservation travels to the device
    agent.type_code(created.dropoff_code)
    await _until(lambda: logistics.get(delivery).status is DeliveryStatus.READY, 30, f"drop-off of delivery {delivery}")
    token = created.resident_link.rsplit("/", 1)[-1]
    pickup_code = await asyncio.to_thread(logistics.reveal_pickup_code, token)
    await asyncio.sleep(2)  # the pickup code travels to the device
    agent.type_code(pickup_code)
    await _until(
        lambda: logistics.get(delivery).status is DeliveryStatus.COLLECTED, 30, f"pickup of delivery {delivery}"
    )


def hub_figures(app: web.Application, errors: list[str]) -> dict[str, Any]:
    """The demo's closing summary, read from the hub's own store; refused messages count as errors."""
    summary = fleet_summary(app[DB_KEY].conn)
    errors.extend(summary.invalid_messages)
    return {
        "devices_online": summary.devices_online,
        "flow_windows": summary.flow_windows,
        "locker_events": summary.locker_events,
        "alarms": summary.alarms,
    }
