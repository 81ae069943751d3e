"""The install scripts: the plan they print in --dry-run, and their refusals without the files they need."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write_secret

ROOT = Path(__file__).resolve().parents[2]
EDGE = ROOT / "scripts" / "install-edge-agent.sh"
HUB = ROOT / "scripts" / "install-hub.sh"
SECRET = "do-not-print-this-secret"

AGENT_TOML = """config_version = 1
[device]
id = "lamp-post-3"
site = "oosterpark"
[mqtt]
host = "hub.example.org"
port = 8883
prefix = "cot"
username = "lamp-post-3"
password_file = "mqtt-password"
tls = true
ca_file = "/etc/edge-agent/ca.pem"
"""

HUB_TOML = """config_version = 1
[mqtt]
host = "127.0.0.1"
port = 1883
password_file = "mqtt-password"
[http]
port = 8080
session_key_file = "session-key"
"""


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def provisioned(tmp_path: Path) -> Path:
    """The folder `hub-server device add` writes for the technician."""
    folder = tmp_path / "lamp-post-3"
    folder.mkdir()
    (folder / "agent.toml").write_text(AGENT_TOML)
    write_secret(folder / "mqtt-password", SECRET)
    (folder / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return folder


def steps(output: str) -> list[str]:
    return [line.strip().removeprefix("+ ") for line in output.splitlines() if line.strip().startswith("+ ")]


def test_scripts_are_valid_bash() -> None:
    for script in (EDGE, HUB, ROOT / "scripts" / "install-common.sh"):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
    if shutil.which("shellcheck"):
        done = subprocess.run(
            ["shellcheck", "-x", str(EDGE), str(HUB)], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout


def test_edge_dry_run_prints_the_whole_plan(provisioned: Path) -> None:
    done = run(EDGE, "--from", str(provisioned), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "dry run: nothing is changed" in done.stdout
    plan = steps(done.stdout)
    joined = "\n".join(plan)
    assert SECRET not in done.stdout
    expected_in_order = [
        "usermod --append --groups gpio,video edge-agent",
        "python3 -m venv --system-site-packages /opt/edge-agent/venv",
        f"/opt/edge-agent/venv/bin/python -m pip install --quiet --upgrade {ROOT}",
        f"/opt/edge-agent/venv/bin/edge-agent check-config {provisioned}/agent.toml",
        f"install -m 0640 -o root -g edge-agent {provisioned}/agent.toml /etc/edge-agent/agent.toml",
        f"install -m 0644 -o root -g root {provisioned}/ca.pem /etc/edge-agent/ca.pem",
        "install -d -m 0700 -o root -g root /etc/edge-agent/credentials",
        f"install -m 0600 -o root -g root {provisioned}/mqtt-password /etc/edge-agent/credentials/mqtt-password",
        f"install -m 0644 {ROOT}/systemd/edge-agent.service /etc/systemd/system/edge-agent.service",
        "systemctl enable edge-agent.service",
        "systemctl restart edge-agent.service",
        "/opt/edge-agent/venv/bin/edge-agent doctor --config /etc/edge-agent/agent.toml",
    ]
    positions = [plan.index(step) if step in plan else -1 for step in expected_in_order]
    assert -1 not in positions, (
        f"missing steps: {[s for s, p in zip(expected_in_order, positions, strict=True) if p < 0]}\n{joined}"
    )
    assert positions == sorted(positions), joined


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: (f / "mqtt-password").unlink(), "broker credential (from hub-server device add) not found"),
        (lambda f: (f / "mqtt-password").write_text(""), "broker credential (from hub-server device add) is empty"),
        (lambda f: (f / "agent.toml").unlink(), "agent config (from hub-server device add) not found"),
        (lambda f: (f / "ca.pem").unlink(), "the hub's CA certificate (the config names mqtt.ca_file) not found"),
        (
            lambda f: (f / "agent.toml").write_text(AGENT_TOML.replace('"mqtt-password"', '"/root/pw"')),
            "mqtt.password_file is '/root/pw'; the service provides the credential as 'mqtt-password'",
        ),
        (
            lambda f: (f / "agent.toml").write_text(
                AGENT_TOML.replace('site = "oosterpark"', 'site = "x"\nstate_dir = "/srv/x"')
            ),
            "device.state_dir is '/srv/x'; the service may only write to /var/lib/edge-agent",
        ),
    ],
)
def test_edge_refuses_without_what_it_needs(provisioned: Path, change: object, message: str) -> None:
    change(provisioned)  # type: ignore[operator]
    done = run(EDGE, "--from", str(provisioned), "--dry-run")
    assert done.returncode == 2
    assert message in done.stderr
    assert not steps(done.stdout)  # refused before the first step


def test_edge_needs_the_folder(tmp_path: Path) -> None:
    assert "--from DIR is required" in run(EDGE, "--dry-run").stderr
    missing = run(EDGE, "--from", str(tmp_path / "nope"), "--dry-run")
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    assert run(EDGE, "--bogus").returncode == 2


def test_edge_real_run_needs_root(provisioned: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("running as root: the root check passes here")
    done = run(EDGE, "--from", str(provisioned))
    assert done.returncode == 2 and "run as root" in done.stderr


@pytest.fixture
def hub_config(tmp_path: Path) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(HUB_TOML)
    return path


def test_hub_dry_run_with_a_private_ca(hub_config: Path) -> None:
    done = run(HUB, "--config", str(hub_config), "--self-signed", "hub.example.org", "--dry-run")
    assert done.returncode == 0, done.stderr
    plan = "\n".join(steps(done.stdout))
    assert "install -d -m 2750 -o hub-server -g mosquitto /etc/mosquitto/hub" in plan
    assert f"install -m 0644 {ROOT}/systemd/mosquitto-hub.conf /etc/mosquitto/conf.d/hub.conf" in plan
    assert "write /etc/edge-agent" not in plan
    assert "write /etc/hub-server/credentials/session-key (mode 0600, owner root:root)" in plan
    assert "subjectAltName" in plan and "hub.example.org" in plan
    assert "systemctl enable --now mosquitto-hub-reload.path" in plan
    assert "sudoers" not in plan  # the hub server gets no privilege over the broker
    assert "systemctl enable hub-server.service" in plan
    assert "provisioning.reload_command" in done.stdout  # the note for the missing reload check
    assert "provisioning.agent_ca_file" in done.stdout


def test_hub_refuses_without_config_or_certificate(hub_config: Path, tmp_path: Path) -> None:
    assert "--config hub.toml is required" in run(HUB, "--dry-run").stderr
    if not Path("/etc/mosquitto/hub/certs/server.pem").exists():
        no_cert = run(HUB, "--config", str(hub_config), "--dry-run")
        assert no_cert.returncode == 2 and "needs a TLS certificate" in no_cert.stderr
    missing_key = run(
        HUB, "--config", str(hub_config), "--cert", str(hub_config), "--key", str(tmp_path / "k"), "--dry-run"
    )
    assert missing_key.returncode == 2 and "broker TLS key (--key) not found" in missing_key.stderr
    hub_config.write_text(HUB_TOML.replace('"session-key"', '"/etc/key"'))
    wrong = run(HUB, "--config", str(hub_config), "--self-signed", "h", "--dry-run")
    assert wrong.returncode == 2 and "http.session_key_file must be 'session-key'" in wrong.stderr


def test_edge_update_keeps_the_installed_files(provisioned: Path) -> None:
    both = run(EDGE, "--update", "--from", str(provisioned), "--dry-run")
    assert both.returncode == 2 and "not both" in both.stderr
    if Path("/etc/edge-agent/agent.toml").exists():
        pytest.skip("an agent is installed on this machine: the refusal cannot be shown")
    done = run(EDGE, "--update", "--dry-run")
    assert done.returncode == 2
    assert "installed config (--update keeps it) not found: /etc/edge-agent/agent.toml" in done.stderr
