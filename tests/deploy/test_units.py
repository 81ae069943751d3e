"""The systemd units and the broker config: valid for systemd and Mosquitto, hardened, consistent with the code."""

from __future__ import annotations

import importlib
import re
import shutil
import socket
import ssl
import subprocess
import threading
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_agent.commands.doctor import DEFAULT_CONFIG
from edge_agent.deploy.checks import CREDENTIAL_STORE
from edge_agent.deploy.config_update import RESTART_EXIT_CODE
from hub_protocol.topics import device_acl, hub_acl
from hub_server.fleet.broker import find_binary, free_port, write_password_file
from tests.deploy.conftest import TlsFiles

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNITS = ("edge-agent.service", "hub-server.service")

Directives = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Directives:
    """systemd's INI dialect: repeated keys accumulate, '#' and ';' start comments, no interpolation."""
    sections: Directives = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"{path.name}:{number}: not a directive: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: Directives, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key} should be set exactly once, found {values}"
    return values[0]


@pytest.fixture(scope="module")
def units() -> dict[str, Directives]:
    return {name: parse_unit(SYSTEMD / name) for name in UNITS}


@pytest.mark.parametrize("name", UNITS)
def test_units_are_hardened(units: dict[str, Directives], name: str) -> None:
    unit = units[name]
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
    }
    for key, value in expected.items():
        assert one(unit, "Service", key) == value, key
    user = one(unit, "Service", "User")
    assert user == name.removesuffix(".service") and user != "root"
    assert one(unit, "Service", "StateDirectory") == user
    assert one(unit, "Service", "ConfigurationDirectory") == user
    assert unit["Service"]["LoadCredential"], "secrets must come through LoadCredential"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_edge_agent_has_only_the_groups_it_needs_and_a_watchdog(units: dict[str, Directives]) -> None:
    unit = units["edge-agent.service"]
    assert set(one(unit, "Service", "SupplementaryGroups").split()) <= {"gpio", "video"}
    assert one(unit, "Service", "Type") == "notify"
    assert int(one(unit, "Service", "WatchdogSec")) >= 10
    # Device access would be cut off by these (camera, GPIO chip).
    for key in ("PrivateDevices", "DeviceAllow", "ProtectClock"):
        assert key not in unit["Service"], key
    assert one(unit, "Service", "RestartForceExitStatus") == str(RESTART_EXIT_CODE)


def _credentials(unit: Directives) -> dict[str, Path]:
    return {name: Path(source) for name, _, source in (v.partition(":") for v in unit["Service"]["LoadCredential"])}


def test_credential_names_match_the_configs(units: dict[str, Directives]) -> None:
    agent = tomllib.loads((ROOT / "configs" / "agent.example.toml").read_text())
    edge_credentials = _credentials(units["edge-agent.service"])
    assert agent["mqtt"]["password_file"] in edge_credentials
    # The doctor looks where the unit takes the credential from.
    assert {path.parent for path in edge_credentials.values()} == {CREDENTIAL_STORE}
    hub_example = ROOT / "configs" / "hub.example.toml"
    if not hub_example.exists():
        pytest.skip(f"{hub_example} does not exist yet: hub credential names not compared")
    hub = tomllib.loads(hub_example.read_text())
    hub_credentials = _credentials(units["hub-server.service"])
    assert hub["mqtt"]["password_file"] in hub_credentials
    assert hub["http"]["session_key_file"] in hub_credentials


PROGRAMS = {"edge-agent": "edge_agent.cli", "hub-server": "hub_server.cli"}


@pytest.mark.parametrize("name", UNITS)
def test_exec_start_names_a_real_program_and_command(units: dict[str, Directives], name: str) -> None:
    exec_start = one(units[name], "Service", "ExecStart").split()
    binary, command = Path(exec_start[0]), exec_start[1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert binary.name in scripts, f"{binary.name} is not a console script of the package"
    assert binary.parent.name == "bin" and binary.parent.parent.name == "venv"  # what the install scripts create
    config = Path(exec_start[exec_start.index("--config") + 1])
    if name == "edge-agent.service":
        assert config == DEFAULT_CONFIG  # the doctor checks the file the service runs with
    commands = {module.NAME for module in importlib.import_module(PROGRAMS[binary.name]).COMMANDS}
    if command not in commands:
        pytest.skip(f"'{binary.name} {command}' is not registered yet in {PROGRAMS[binary.name]}.COMMANDS")
    assert command in commands


def test_broker_reload_watches_the_files_the_hub_edits(units: dict[str, Directives]) -> None:
    from hub_server.config import ProvisioningConfig

    path_unit = parse_unit(SYSTEMD / "mosquitto-hub-reload.path")
    reload_unit = parse_unit(SYSTEMD / "mosquitto-hub-reload.service")
    defaults = ProvisioningConfig(agent_mqtt_host="hub.example.org")
    broker_conf = (SYSTEMD / "mosquitto-hub.conf").read_text()
    assert Path(one(path_unit, "Path", "PathChanged")) == defaults.acl_file
    assert f"acl_file {defaults.acl_file}\n" in broker_conf
    assert f"password_file {defaults.passwd_file}\n" in broker_conf
    assert one(path_unit, "Path", "Unit") == "mosquitto-hub-reload.service"
    assert one(reload_unit, "Service", "ExecStart").endswith("systemctl reload mosquitto.service")
    # The hub server may edit exactly that folder (optional: a hub without provisioning starts too).
    assert units["hub-server.service"]["Service"]["ReadWritePaths"] == [f"-{defaults.acl_file.parent}"]
    assert defaults.passwd_file.parent == defaults.acl_file.parent


def test_systemd_accepts_the_units(tmp_path: Path, units: dict[str, Directives]) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed: the units were only parsed")
    # verify insists that ExecStart's binary exists: point it at a stand-in in a temporary tree.
    fake = tmp_path / "bin" / "program"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copies = []
    for name in UNITS:
        binary = one(units[name], "Service", "ExecStart").split()[0]
        copy = tmp_path / name
        copy.write_text((SYSTEMD / name).read_text().replace(binary, str(fake)))
        copies.append(str(copy))
    for name in ("mosquitto-hub-reload.path", "mosquitto-hub-reload.service"):
        shutil.copy(SYSTEMD / name, tmp_path / name)
        copies.append(str(tmp_path / name))
    done = subprocess.run([tool, "verify", *copies], capture_output=True, text=True, timeout=60, check=False)
    complaints = [line for line in done.stderr.splitlines() if any(Path(c).name in line for c in copies)]
    assert done.returncode == 0 and not complaints, done.stderr


def test_paths_the_scripts_and_docs_name_exist() -> None:
    """Every unit, config and script the install scripts and the deployment guide name is in the repository."""
    sources = [
        ROOT / "scripts" / "install-edge-agent.sh",
        ROOT / "scripts" / "install-hub.sh",
        ROOT / "docs" / "deploy.md",
    ]
    named: set[str] = set()
    for source in sources:
        assert source.exists(), source
        # Files of this domain; docs of other parts (docs/counting.md ...) are checked by their owners.
        named |= set(re.findall(r"(?<![\w/.-])((?:systemd|scripts)/[\w./-]+\w)", source.read_text()))
    assert named, "expected the scripts to name repository files"
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"named but missing: {missing}"


# --- the broker config ------------------------------------------------------------------------------------


@pytest.fixture
def hub_broker(
    tmp_path: Path, make_tls: Callable[..., TlsFiles]
) -> Iterator[tuple[int, int, TlsFiles, dict[str, str]]]:
    """Mosquitto with systemd/mosquitto-hub.conf, its paths and ports moved into a temporary folder."""
    tls = make_tls()
    folder = tmp_path / "mosquitto"
    (folder / "certs").mkdir(parents=True)
    (folder / "data").mkdir()
    shutil.copy(tls.cert, folder / "certs" / "server.pem")
    shutil.copy(tls.key, folder / "certs" / "server.key")
    users = {"dev-a": "device-secret", "hub": "hub-secret"}
    write_password_file(folder / "passwd", users)
    (folder / "acl").write_text("\n".join(hub_acl("cot", "hub") + device_acl("cot", "s1", "dev-a")) + "\n")
    device_port, local_port = free_port(), free_port()
    text = (SYSTEMD / "mosquitto-hub.conf").read_text()
    assert "listener 8883\n" in text and "listener 1883 127.0.0.1\n" in text
    text = text.replace("/etc/mosquitto/hub/", f"{folder}/")
    text = text.replace("listener 8883\n", f"listener {device_port} 127.0.0.1\n")
    text = text.replace("listener 1883 127.0.0.1\n", f"listener {local_port} 127.0.0.1\n")
    # What Debian's main mosquitto.conf provides around the drop-in.
    text += f"persistence_location {folder}/data/\nlog_dest stderr\n" + ("user root\n" if _is_root() else "")
    config = folder / "mosquitto.conf"
    config.write_text(text)
    process = subprocess.Popen([find_binary("mosquitto"), "-c", str(config)], stderr=subprocess.PIPE)
    try:
        _wait_listening(local_port, process)
        yield device_port, local_port, tls, users
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"mosquitto refused the config: {err}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("mosquitto did not start listening")


def _connect(port: int, user: str | None, password: str | None, ca: Path | None, wait: float = 5) -> str:
    """The CONNACK reason as text, or the exception's name when no session came about."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    answer: list[str] = []
    done = threading.Event()

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        answer.append(str(reason))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{port}", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    if user:
        client.username_pw_set(user, password)
    if ca:
        client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return type(exc).__name__
    client.loop_start()
    try:
        return answer[0] if done.wait(wait) else "no answer"
    finally:
        client.disconnect()
        client.loop_stop()


def test_broker_config_requires_tls_and_credentials(hub_broker: tuple[int, int, TlsFiles, dict[str, str]]) -> None:
    device_port, local_port, tls, users = hub_broker
    assert _connect(device_port, "dev-a", users["dev-a"], tls.ca) == "Success"
    assert _connect(device_port, "dev-a", "wrong", tls.ca) == "Not authorized"
    assert _connect(device_port, None, None, tls.ca) == "Not authorized"  # no anonymous access
    assert _connect(device_port, "dev-a", users["dev-a"], None, wait=1.5) != "Success"  # plain MQTT on the TLS port
    assert _connect(local_port, "hub", users["hub"], None) == "Success"  # the hub, on loopback
    assert _connect(local_port, None, None, None) == "Not authorized"


def test_broker_config_binds_device_sessions_to_their_accounts(
    hub_broker: tuple[int, int, TlsFiles, dict[str, str]],
) -> None:
    """dev-a's credentials with the hub's client id (over TLS, as from the street) leave the hub connected."""
    import time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    device_port, local_port, tls, users = hub_broker
    hub_dropped = threading.Event()
    hub_up = threading.Event()
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-ingest", clean_session=False)
    hub.username_pw_set("hub", users["hub"])
    hub.on_connect = lambda *_: hub_up.set()
    hub.on_disconnect = lambda *_: hub_dropped.set()
    hub.connect("127.0.0.1", local_port, keepalive=10)
    hub.loop_start()
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hub-ingest", protocol=mqtt.MQTTv5)
    attacker.username_pw_set("dev-a", users["dev-a"])
    attacker.tls_set_context(ssl.create_default_context(cafile=str(tls.ca)))
    attacker_up = threading.Event()
    attacker.on_connect = lambda _c, _u, _f, reason, _p: None if reason.is_failure else attacker_up.set()
    try:
        assert hub_up.wait(5), "the hub did not connect"
        attacker.connect("127.0.0.1", device_port, keepalive=10)
        attacker.loop_start()
        assert attacker_up.wait(5), "dev-a's own credentials were refused"
        time.sleep(1.0)
        assert not hub_dropped.is_set(), "a device's credentials pushed the hub off the broker"
    finally:
        for client in (attacker, hub):
            client.disconnect()
            client.loop_stop()
