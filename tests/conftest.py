"""Shared fixtures. The broker is always a real, private Mosquitto: no test mocks it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import AgentConfig
from hub_protocol.topics import device_acl, hub_acl
from hub_server.fleet.broker import PrivateBroker
from hub_server.fleet.dynsec import find_plugin
from tests import postgres

PREFIX = "cot"
ADMIN = "hub-accounts"
"""The dynamic-security plugin's admin account on the tests' brokers that use it."""
SITE = "test-street"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@dataclass
class BrokerSetup:
    """A running private broker and the credentials of everyone allowed on it."""

    broker: PrivateBroker
    prefix: str
    site: str
    hub_user: str
    hub_password: str
    device_passwords: dict[str, str]
    admin_password: str | None = None
    """The dynamic-security plugin's admin (``ADMIN``), on a broker that keeps its accounts there."""

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    @property
    def device_port(self) -> int:
        """The devices' listener: the broker takes the client id from the user name there."""
        return self.broker.device_port

    def add_device(self, device: str, site: str | None = None) -> str:
        password = secrets.token_urlsafe(18)
        self.broker.add_user(device, password, device_acl(self.prefix, site or self.site, device))
        self.device_passwords[device] = password
        return password


@pytest.fixture(autouse=True)
def _postgres_databases_dropped() -> Iterator[None]:
    """Each test's PostgreSQL databases (``HUB_TEST_STORE=postgresql``) go when the test ends."""
    yield
    postgres.drop_created()


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., BrokerSetup]]:
    """Start a private mosquitto with a hub user and the given devices (each with its own password and ACL)."""
    started: list[PrivateBroker] = []

    def factory(
        devices: tuple[str, ...] = ("dev-a", "dev-b"),
        site: str = SITE,
        *,
        dynsec: bool = False,
        hub_user: bool = True,
        prepare: Callable[[PrivateBroker], None] | None = None,
    ) -> BrokerSetup:
        """``dynsec``: accounts in the dynamic-security plugin, with an admin; ``hub_user`` False: the hub's
        account is left for the hub to create; ``prepare`` runs on the broker's folder before it starts."""
        hub_password = secrets.token_urlsafe(18)
        device_passwords = {d: secrets.token_urlsafe(18) for d in devices}
        acl = hub_acl(PREFIX, "hub")
        for device in devices:
            acl += device_acl(PREFIX, site, device)
        users = {"hub": hub_password, **device_passwords} if hub_user else dict(device_passwords)
        admin = secrets.token_urlsafe(18) if dynsec else None
        if dynsec and find_plugin() is None:
            pytest.skip("Mosquitto's dynamic-security plugin is not installed here")
        broker = PrivateBroker(
            tmp_path / f"broker-{len(started)}", users, acl, dynsec_admin=(ADMIN, admin) if admin else None
        )
        if prepare is not None:
            broker.folder.mkdir(parents=True, exist_ok=True)
            prepare(broker)
        broker.start()
        started.append(broker)
        return BrokerSetup(broker, PREFIX, site, "hub", hub_password, device_passwords, admin)

    yield factory
    for broker in started:
        broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., BrokerSetup]) -> BrokerSetup:
    return make_broker()


def write_secret(path: Path, value: str) -> Path:
    """A secret file as the programs require it: readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def agent_config(setup: BrokerSetup, device: str, folder: Path, **sections: dict[str, Any]) -> AgentConfig:
    """An agent config for ``device`` on the test broker's device listener: own password, plaintext, short timers.

    ``sections`` adds config sections (``lockers=...``); an ``mqtt`` entry overrides single MQTT settings.
    """
    secret = write_secret(folder / f"{device}.password", setup.device_passwords[device])
    mqtt = {
        "host": setup.host,
        "port": setup.device_port,
        "prefix": setup.prefix,
        "password_file": str(secret),
        "tls": False,
        "keepalive_s": 5,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 2.0,
        "ack_timeout_s": 3.0,
        **sections.pop("mqtt", {}),
    }
    data = {"device": {"id": device, "site": setup.site, "state_dir": str(folder / device)}, "mqtt": mqtt, **sections}
    return AgentConfig.model_validate(data)


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass; one last look at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def wait_for(
    condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """Like ``wait_until``, but fails the test with ``what`` on timeout and returns the condition's value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or a clear skip when this checkout has no ../shared beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"evaluation data {path} is absent (../shared is not beside this checkout)")
    return path
