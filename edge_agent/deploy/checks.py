"""The doctor's checks: each one looks at one thing and says, in plain words, what is wrong and how to fix it.

Everything that touches hardware or the system clock goes through the probes in ``probes.py``; the broker
checks talk to the real broker (``network.py``). ``run_checks`` runs them in an order where a later check can
lean on an earlier one (no broker check without a valid config and a readable credential).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig, parse_agent_config
from edge_agent.deploy.config_update import active_config_path
from edge_agent.deploy.network import BrokerOutcome, probe_broker, probe_tls
from edge_agent.deploy.probes import (
    CameraProbe,
    ClockProbe,
    CountingCamera,
    GpiozeroPins,
    OpenCvCamera,
    PinFactoryProbe,
    SystemClock,
)
from edge_agent.transport.outbox import OUTBOX_FILENAME, OUTBOX_TABLE
from hub_protocol.topics import Channel, device_topic
from hub_protocol.validation import ConfigError, read_toml

CREDENTIAL_STORE = Path("/etc/edge-agent/credentials")
"""Where the install script puts credentials; the unit hands them to the agent with LoadCredential."""


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    summary: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "fix": self.fix,
            **self.details,
        }


@dataclass
class DoctorEnv:
    """What the checks need from the outside world; tests swap in fakes for hardware and clock."""

    clock: ClockProbe = field(default_factory=SystemClock)
    camera: CameraProbe | None = None
    """None: the agent's counting sources when the config has [counting], else plain cv2.VideoCapture."""
    pins: PinFactoryProbe = field(default_factory=GpiozeroPins)
    disk_free: Callable[[Path], int] = field(default=lambda path: shutil.disk_usage(path).free)
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    credential_dirs: Sequence[Path] = (CREDENTIAL_STORE,)
    network_timeout_s: float = 5.0
    camera_frames: int = 30
    camera_timeout_s: float = 10.0
    min_fps: float = 5.0
    disk_fail_bytes: int = 100 * 1024 * 1024
    disk_warn_bytes: int = 500 * 1024 * 1024
    cert_warn_days: float = 30.0


# --- config -------------------------------------------------------------------------------------------------


def check_config(path: Path) -> tuple[CheckResult, AgentConfig | None]:
    notices: list[str] = []
    try:
        config = parse_agent_config(read_toml(path), str(path), notices)
    except ConfigError as exc:
        return CheckResult(
            "config",
            Status.FAIL,
            f"{path} is not a valid agent config: " + "; ".join(exc.problems),
            "correct the keys named above (edge-agent check-config FILE shows them one per line), "
            "or copy the config 'hub-server device add' produced again",
            {"problems": exc.problems},
        ), None
    where = f"device {config.device.id} at site {config.device.site}"
    outside = config.counting.lines_outside_frame() if config.counting else []
    if notices or outside:
        said, fixes = [], []
        if notices:
            said.append(f"valid after upgrading an older layout ({where}): " + "; ".join(notices))
            fixes.append("rewrite the file in the current layout (docs/deploy.md, 'Config versions')")
        if outside:
            said.append(("" if notices else f"valid ({where}), but ") + "; ".join(outside))
            fixes.append("redraw the line on the setup page (edge-agent setup) or give points within the frame")
        details = {"notices": notices, "lines_outside_frame": outside}
        return CheckResult("config", Status.WARN, "; ".join(said), "; ".join(fixes), details), config
    return CheckResult("config", Status.OK, f"valid ({where})"), config


# --- credential ---------------------------------------------------------------------------------------------


def locate_secret(reference: str, search_dirs: Sequence[Path]) -> Path:
    """A path as given, or a credential name looked up where systemd would find it, then in ``search_dirs``."""
    if "/" in reference:
        return Path(reference)
    candidates = [Path(d) / reference for d in (os.environ.get("CREDENTIALS_DIRECTORY"),) if d]
    candidates += [Path(d) / reference for d in search_dirs]
    return next((c for c in candidates if c.exists()), candidates[0] if candidates else Path(reference))


def check_credential(config: AgentConfig, env: DoctorEnv) -> tuple[CheckResult, str | None]:
    path = locate_secret(config.mqtt.password_file, env.credential_dirs)
    try:
        mode = path.stat().st_mode
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return CheckResult(
            "credential",
            Status.FAIL,
            f"cannot read the broker password file {path}: {exc.strerror or exc}",
            f"copy the device's credential file from 'hub-server device add' to {path} "
            f"(sudo install -m 600 mqtt-password {path}), or run the doctor with sudo",
            {"path": str(path)},
        ), None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return CheckResult(
            "credential",
            Status.FAIL,
            f"the broker password file {path} is readable by group or others (mode {stat.S_IMODE(mode):03o}): "
            "anyone on this device could take over its broker identity",
            f"sudo chmod 600 {path}",
            {"path": str(path), "mode": f"{stat.S_IMODE(mode):03o}"},
        ), secret or None
    if not secret:
        return CheckResult(
            "credential",
            Status.FAIL,
            f"the broker password file {path} is empty",
            "copy the credential file 'hub-server device add' produced again",
            {"path": str(path)},
        ), None
    return CheckResult("credential", Status.OK, f"{path} is private (mode 600)", details={"path": str(path)}), secret


# --- broker -------------------------------------------------------------------------------------------------

_BROKER_ADVICE: dict[BrokerOutcome, tuple[str, str]] = {
    BrokerOutcome.NAME_UNKNOWN: (
        "the broker's host name {host} cannot be resolved",
        "check mqtt.host in the config and the device's network and DNS (ping {host})",
    ),
    BrokerOutcome.REFUSED: (
        "nothing accepts connections at {host}:{port}: the broker is down or listens on another port",
        "on the hub: systemctl status mosquitto; check mqtt.port (8883 with TLS, 1883 without) and the hub's firewall",
    ),
    BrokerOutcome.UNREACHABLE: (
        "the broker host {host} cannot be reached from here",
        "check this device's network (Wi-Fi, hotspot, cable), the route to the hub and any firewall",
    ),
    BrokerOutcome.TIMEOUT: (
        "no answer from {host}:{port} in time: a firewall may drop the traffic, or the network is very slow",
        "check that port {port} is open between this device and the hub; try again on a better network",
    ),
    BrokerOutcome.TLS_FAILED: (
        "the TLS handshake with {host}:{port} failed",
        "see the tls check below; check mqtt.tls, mqtt.ca_file and that the port speaks TLS",
    ),
    BrokerOutcome.BAD_CREDENTIALS: (
        "the broker refused user {user} with this password: wrong password, or the device is unknown or "
        "revoked on the hub",
        "on the hub, 'hub-server device list' shows the device's state; copy its password again from the hub's "
        "/var/lib/hub-server/provisioned/{device}/mqtt-password; a revoked device needs a new id "
        "('hub-server device add NEW-ID --site {site}') and a new install",
    ),
    BrokerOutcome.NOT_AUTHORISED: (
        "user {user} logged in but may not use its own topics: the hub provisioned it for another site or topic prefix",
        "make device.site and mqtt.prefix match what 'hub-server device add' used (see hub-server device list)",
    ),
    BrokerOutcome.PROTOCOL: (
        "the broker at {host}:{port} did not accept the session",
        "check mqtt.port points at the MQTT broker and the broker log on the hub (journalctl -u mosquitto)",
    ),
}


def check_broker(config: AgentConfig, password: str | None, env: DoctorEnv) -> CheckResult:
    mqtt = config.mqtt
    user = mqtt.username or config.device.id
    if password is None:
        return CheckResult("broker", Status.SKIP, "not tried: no readable broker password (see credential)")
    own_topic = device_topic(mqtt.prefix, config.device.site, config.device.id, Channel.COMMAND)
    reading = probe_broker(
        mqtt.host,
        mqtt.port,
        user,
        password,
        client_id=f"{config.device.id}-doctor-{secrets.token_hex(3)}",
        tls=mqtt.tls,
        ca_file=mqtt.ca_file,
        own_topic=own_topic,
        timeout_s=env.network_timeout_s,
    )
    details = {"outcome": reading.outcome.value, "host": mqtt.host, "port": mqtt.port, "detail": reading.detail}
    if reading.outcome is BrokerOutcome.OK:
        return CheckResult(
            "broker",
            Status.OK,
            f"logged in to {mqtt.host}:{mqtt.port} as {user} ({reading.seconds:.2f} s)",
            "",
            details,
        )
    summary, fix = (
        text.format(host=mqtt.host, port=mqtt.port, user=user, device=config.device.id, site=config.device.site)
        for text in _BROKER_ADVICE[reading.outcome]
    )
    return CheckResult("broker", Status.FAIL, f"{summary} ({reading.detail})", fix, details)


_NETWORK_DOWN = {BrokerOutcome.NAME_UNKNOWN, BrokerOutcome.REFUSED, BrokerOutcome.UNREACHABLE, BrokerOutcome.TIMEOUT}


def check_tls(config: AgentConfig, env: DoctorEnv, broker: CheckResult | None = None) -> CheckResult:
    mqtt = config.mqtt
    if broker is not None and broker.details.get("outcome") in _NETWORK_DOWN:
        return CheckResult("tls", Status.SKIP, "not checked: the broker cannot be reached (see broker)")
    if not mqtt.tls:
        return CheckResult(
            "tls",
            Status.WARN,
            "TLS is off: the password and the counts travel unencrypted",
            "use TLS (mqtt.tls = true, port 8883) unless the broker is on this device's own network segment",
        )
    reading = probe_tls(mqtt.host, mqtt.port, mqtt.ca_file, env.network_timeout_s)
    if not reading.ok:
        return CheckResult(
            "tls",
            Status.FAIL,
            f"the broker's certificate is not accepted: {reading.error}",
            "check mqtt.ca_file is the hub's CA (copy ca.pem from the hub), that mqtt.host matches the name in the "
            "certificate, and that the clock is right (see clock); renew the certificate on the hub if it expired",
            {"error": reading.error},
        )
    days = reading.days_left(env.now())
    details = {"not_after": reading.not_after.isoformat() if reading.not_after else None, "days_left": days}
    if days is not None and days < env.cert_warn_days:
        return CheckResult(
            "tls",
            Status.WARN,
            f"certificate valid, but expires in {days:.0f} days ({reading.subject})",
            "renew the broker certificate on the hub before it expires (devices will lose the connection)",
            details,
        )
    return CheckResult("tls", Status.OK, f"certificate valid for {days:.0f} more days ({reading.subject})", "", details)


# --- clock, camera, GPIO, disk, outbox ----------------------------------------------------------------------


def check_clock(env: DoctorEnv) -> CheckResult:
    state = env.clock.read()
    now = env.now().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    details = {"source": state.source, "detail": state.detail, "now": now}
    if state.synchronized:
        return CheckResult("clock", Status.OK, f"synchronised ({now})", "", details)
    fix = (
        "give the device internet access to an NTP server (UDP port 123), then: sudo timedatectl set-ntp true; "
        "wait a minute and run the doctor again (timedatectl timesync-status shows progress)"
    )
    if state.synchronized is None:
        return CheckResult(
            "clock", Status.WARN, f"cannot tell whether the clock is synchronised ({state.detail})", fix, details
        )
    return CheckResult(
        "clock",
        Status.FAIL,
        f"the clock is not synchronised (it says {now}): count windows get wrong times, hub commands are "
        "refused as expired and TLS certificates may look invalid",
        fix,
        details,
    )


def camera_source(config: AgentConfig) -> str | None:
    return None if config.counting is None else str(config.counting.source)


def check_camera(source: str | None, env: DoctorEnv, counting: Any = None) -> CheckResult:
    if source is None:
        return CheckResult("camera", Status.SKIP, "no camera configured (this device does not count)")
    camera = env.camera or (CountingCamera(counting) if counting is not None else OpenCvCamera())
    reading = camera.measure(source, env.camera_frames, env.camera_timeout_s)
    if not reading.opened:
        return CheckResult(
            "camera",
            Status.FAIL,
            f"cannot read frames from the camera source {source!r}: {reading.error}",
            "check the camera cable or ribbon and that it is enabled; for USB: ls /dev/video* and that the agent's "
            "user is in group video; for a file or URL: that the path or address in the config is right",
            {"source": source},
        )
    details = {"source": source, "fps": round(reading.fps, 1), "width": reading.width, "height": reading.height}
    summary = f"{reading.width}x{reading.height} at {reading.fps:.1f} frames/s ({reading.frames} frames read)"
    if reading.fps < env.min_fps:
        return CheckResult(
            "camera",
            Status.WARN,
            f"camera works but slowly: {summary}",
            "lower the camera resolution, check lighting (long exposure slows cameras) and CPU load (uptime)",
            details,
        )
    return CheckResult("camera", Status.OK, summary, "", details)


def check_gpio(config: AgentConfig, env: DoctorEnv) -> CheckResult:
    state = env.pins.load()
    lockers = config.lockers is not None
    if state.name is not None and not state.is_mock:
        return CheckResult("gpio", Status.OK, f"pin factory {state.name} loaded", "", {"factory": state.name})
    what = "mock pins only (GPIOZERO_PIN_FACTORY=mock)" if state.is_mock else f"no GPIO: {state.detail}"
    if not lockers:
        return CheckResult("gpio", Status.WARN, f"{what}; fine, no lockers are configured", "", {"factory": state.name})
    return CheckResult(
        "gpio",
        Status.FAIL,
        f"{what}, but this device drives a locker bank",
        "on a Raspberry Pi: sudo apt-get install python3-lgpio (the venv needs --system-site-packages or "
        "pip install lgpio), add the agent's user to group gpio, and unset GPIOZERO_PIN_FACTORY",
        {"factory": state.name},
    )


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(config: AgentConfig, env: DoctorEnv) -> CheckResult:
    state_dir = config.device.state_dir
    free = env.disk_free(_existing(state_dir))
    text = f"{free / 1024**3:.1f} GiB free for {state_dir}"
    details = {"free_bytes": free, "state_dir": str(state_dir)}
    fix = "free space (sudo journalctl --vacuum-size=50M; sudo apt-get clean) or use a larger SD card"
    if free < env.disk_fail_bytes:
        return CheckResult("disk", Status.FAIL, f"almost no space left: {text}; events cannot be stored", fix, details)
    if free < env.disk_warn_bytes:
        return CheckResult("disk", Status.WARN, f"space is getting short: {text}", fix, details)
    return CheckResult("disk", Status.OK, text, "", details)


def outbox_path(config: AgentConfig) -> Path:
    return config.device.state_dir / OUTBOX_FILENAME


def check_outbox(config: AgentConfig) -> CheckResult:
    path = outbox_path(config)
    if not path.exists():
        return CheckResult("outbox", Status.OK, f"no outbox yet at {path}: the agent creates it at its first start")
    try:
        # Read-only: the doctor may run beside the agent and must never change its store.
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
            depth = _outbox_depth(db)
    except sqlite3.OperationalError as exc:
        return CheckResult(
            "outbox",
            Status.FAIL,
            f"the outbox {path} cannot be opened: {exc}",
            f"run the doctor with sudo, or give the state directory back to the agent: sudo chown -R edge-agent: "
            f"{path.parent}",
            {"path": str(path)},
        )
    except sqlite3.DatabaseError as exc:
        integrity = [str(exc)]
    if integrity != ["ok"]:
        return CheckResult(
            "outbox",
            Status.FAIL,
            f"the outbox {path} is damaged: {'; '.join(integrity[:3])}",
            "stop the agent, move the file aside (events in it that the hub has not acknowledged are lost: tell "
            "the hub operator), start the agent again",
            {"path": str(path), "integrity": integrity[:10]},
        )
    details = {"path": str(path), "depth": depth}
    if depth > 0.8 * config.outbox.max_events:
        return CheckResult(
            "outbox",
            Status.WARN,
            f"{depth} events wait to be sent, close to the cap of {config.outbox.max_events}",
            "fix the broker connection (see broker); at the cap the outbox starts dropping (and reports it)",
            details,
        )
    return CheckResult("outbox", Status.OK, f"intact, {depth} events waiting to be acknowledged", "", details)


def _outbox_depth(db: sqlite3.Connection) -> int:
    # The table name is the transport's constant, never input.
    return int(db.execute(f'SELECT count(*) FROM "{OUTBOX_TABLE}"').fetchone()[0])  # noqa: S608


# --- all together -------------------------------------------------------------------------------------------


def run_checks(config_path: Path, env: DoctorEnv, camera_override: str | None = None) -> list[CheckResult]:
    """``config_path`` is the installed config; a config the hub pushed since then is checked instead."""
    active = active_config_path(config_path)
    config_result, config = check_config(active)
    if active != config_path:
        pushed = f"the hub pushed {active} (installed file: {config_path}); "
        config_result = replace(config_result, summary=pushed + config_result.summary)
    results = [config_result]
    if config is None:
        needs = "not checked: needs a valid config"
        results += [CheckResult(name, Status.SKIP, needs) for name in ("credential", "broker", "tls")]
        results.append(check_clock(env))
        results.append(
            check_camera(camera_override, env) if camera_override else CheckResult("camera", Status.SKIP, needs)
        )
        results += [CheckResult(name, Status.SKIP, needs) for name in ("gpio", "disk", "outbox")]
        return results
    credential_result, password = check_credential(config, env)
    broker_result = check_broker(config, password, env)
    results += [credential_result, broker_result, check_tls(config, env, broker_result), check_clock(env)]
    results.append(check_camera(camera_override or camera_source(config), env, config.counting))
    results += [check_gpio(config, env), check_disk(config, env), check_outbox(config)]
    return results
