"""Doctor fixtures: an agent config pointing at a real broker, fakes for clock, camera and pins, TLS material."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.deploy.checks import DoctorEnv
from edge_agent.deploy.probes import CameraReading, ClockState, PinFactoryState
from tests.conftest import write_secret


@dataclass
class FakeClock:
    synchronized: bool | None = True

    def read(self) -> ClockState:
        return ClockState(self.synchronized, "fake", "test clock")


@dataclass
class FakeCamera:
    reading: CameraReading
    asked: list[str]

    def measure(self, source: str, frames: int, timeout_s: float) -> CameraReading:
        self.asked.append(source)
        return self.reading


@dataclass
class FakePins:
    name: str | None = "LGPIOFactory"

    def load(self) -> PinFactoryState:
        return PinFactoryState(self.name, "" if self.name else "Unable to load any default pin factory!")


def good_env(**overrides: object) -> DoctorEnv:
    env = DoctorEnv(
        clock=FakeClock(True),
        camera=FakeCamera(CameraReading(True, 30, 2.0, width=640, height=480), []),
        pins=FakePins("LGPIOFactory"),
        disk_free=lambda _path: 20 * 1024**3,
        credential_dirs=(),
        network_timeout_s=3.0,
    )
    for key, value in overrides.items():
        setattr(env, key, value)
    return env


def write_agent_config(
    folder: Path,
    *,
    host: str,
    port: int,
    device: str = "dev-a",
    site: str = "test-street",
    password: str = "secret",
    tls: bool = False,
    ca_file: Path | None = None,
    extra: str = "",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    secret = write_secret(folder / "mqtt-password", password)
    (folder / "state").mkdir(exist_ok=True)
    ca_line = f'ca_file = "{ca_file}"' if ca_file else ""
    path = folder / "agent.toml"
    path.write_text(
        f"""config_version = 1
[device]
id = "{device}"
site = "{site}"
state_dir = "{folder / "state"}"

[mqtt]
host = "{host}"
port = {port}
prefix = "cot"
password_file = "{secret}"
tls = {"true" if tls else "false"}
{ca_line}
{extra}
"""
    )
    return path


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def make_tls(tmp_path: Path) -> Callable[..., TlsFiles]:
    """A private CA and a server certificate for 127.0.0.1 / localhost, valid ``days`` days."""

    def factory(name: str = "tls", days: int = 365) -> TlsFiles:
        folder = tmp_path / name
        folder.mkdir()
        ca_key, ca, key, csr, cert = (
            folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(
            "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "3650", "-subj", "/CN=Test hub CA"
        )
        _openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
        ext = folder / "ext.cnf"
        ext.write_text("subjectAltName = IP:127.0.0.1, DNS:localhost\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", str(days), "-extfile", str(ext),
        )  # fmt: skip
        return TlsFiles(ca, cert, key)

    return factory
