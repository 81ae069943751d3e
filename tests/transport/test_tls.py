"""TLS to the broker: the agent and the hub verify the broker's certificate against the configured CA."""

from __future__ import annotations

import secrets
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig
from edge_agent.transport.service import Transport
from hub_protocol.topics import Channel, device_acl, hub_acl
from hub_server.config import HubMqttConfig, IngestConfig
from hub_server.fleet.broker import PrivateBroker
from hub_server.ingest.service import Ingest
from hub_server.store.db import Database
from tests.conftest import wait_until, write_secret
from tests.transport.helpers import alarm_fields

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make test certificates")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(folder: Path, name: str) -> Path:
    """A CA of its own and a server certificate for 127.0.0.1 signed by it; returns the CA file."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=folder)  # fmt: skip
    return folder / "ca.pem"


class TlsBroker(PrivateBroker):
    def write_config(self) -> None:
        super().write_config()
        pki = self.folder.parent / "pki"
        with self.config_path.open("a") as config:
            config.write(f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n")


def test_agent_and_hub_speak_tls_and_refuse_an_unknown_ca(tmp_path: Path) -> None:
    ca = _certificates(tmp_path / "pki", "hub")
    stranger = _certificates(tmp_path / "other-pki", "stranger")
    prefix, site = "cot", "tls-street"
    passwords = {"hub": secrets.token_urlsafe(18), "dev-a": secrets.token_urlsafe(18)}
    broker = TlsBroker(tmp_path / "broker", passwords, hub_acl(prefix, "hub") + device_acl(prefix, site, "dev-a"))
    broker.start()
    db = tmp_path / "hub.sqlite3"
    Database(db)
    hub_config = HubMqttConfig(
        host="127.0.0.1", port=broker.port, prefix=prefix, password_file="unused", tls=True, ca_file=ca
    )
    ingest = Ingest(db, hub_config, IngestConfig(writer_process=False), password=passwords["hub"])

    def agent(ca_file: Path, folder: str) -> Transport:
        secret = write_secret(tmp_path / f"{folder}.password", passwords["dev-a"])
        config = AgentConfig.model_validate(
            {
                "device": {"id": "dev-a", "site": site, "state_dir": str(tmp_path / folder)},
                "mqtt": {"host": "127.0.0.1", "port": broker.port, "password_file": str(secret), "tls": True,
                         "ca_file": str(ca_file), "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
            }
        )  # fmt: skip
        return Transport(config)

    try:
        ingest.start()
        assert ingest.mqtt is not None and ingest.mqtt.wait_connected(10), "hub did not connect over TLS"
        impostor = agent(stranger, "impostor")
        impostor.start()
        assert not impostor.link.wait_connected(3), "connected although the broker's CA is not trusted"
        impostor.stop()
        device = agent(ca, "device")
        device.sink.emit(Channel.ALARM, alarm_fields(1))
        device.start()
        try:
            assert wait_until(lambda: device.outbox.stats().depth == 0, 15), "event not acknowledged over TLS"
        finally:
            device.stop()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    finally:
        ingest.stop()
        broker.stop()
